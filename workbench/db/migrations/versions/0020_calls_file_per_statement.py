"""PostgreSQL: a call's file checked once per statement instead of once per call

Revision ID: 0020_calls_file_per_statement
Revises: 0019_rated_calls_by_period
Create Date: 2026-12-02 00:30:00

The foreign key ``cdrs.file_id -> cdr_files.id`` made PostgreSQL look up and lock the file's row
once for every call stored: about 10 of the 16 seconds of copying a million calls into
``cdrs``, though every call of a load has the same file. On PostgreSQL the key is replaced by
triggers that give the same guarantee per statement:

* ``cdrs_file_known`` (after each ``INSERT`` or ``UPDATE`` statement on ``cdrs``, with the
  statement's new rows as a transition table): the distinct files of the new rows are locked
  ``FOR KEY SHARE`` (as the key's check does: a file cannot be deleted until the transaction that
  stored its calls ends) and any that is not in ``cdr_files`` is refused with SQLSTATE 23503
  (``foreign_key_violation``, as the key did), naming the file;
* ``cdr_files_keep_calls`` (before deleting a file or changing its id, each row; after a
  ``TRUNCATE``, which may empty ``cdrs`` in the same statement): refused with SQLSTATE 23503
  while calls refer to the file.

SQLite keeps the foreign key (its check costs little there). The schema (``Cdr.file_id``) still
declares the key; the schema comparison leaves it out on PostgreSQL
(:func:`workbench.db.comparison.comparison_options`).
"""

from alembic import op

revision = '0020_calls_file_per_statement'
down_revision = '0019_rated_calls_by_period'
branch_labels = None
depends_on = None

_KEY = 'fk_cdrs_file_id_cdr_files'

_UPGRADE = [
    """
CREATE FUNCTION cdrs_file_known() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    PERFORM 1 FROM cdr_files f WHERE f.id IN (SELECT DISTINCT file_id FROM added) FOR KEY SHARE OF f;
    SELECT a.file_id INTO missing
      FROM (SELECT DISTINCT file_id FROM added) a
     WHERE a.file_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM cdr_files f WHERE f.id = a.file_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "cdrs" violates the file check "cdrs_file_known"',
            DETAIL = format('Key (file_id)=(%s) is not present in table "cdr_files".', missing),
            TABLE = 'cdrs', COLUMN = 'file_id';
    END IF;
    RETURN NULL;
END
$$""",
    """CREATE TRIGGER cdrs_file_known_insert AFTER INSERT ON cdrs REFERENCING NEW TABLE AS added
       FOR EACH STATEMENT EXECUTE FUNCTION cdrs_file_known()""",
    """CREATE TRIGGER cdrs_file_known_update AFTER UPDATE ON cdrs REFERENCING NEW TABLE AS added
       FOR EACH STATEMENT EXECUTE FUNCTION cdrs_file_known()""",
    """
CREATE FUNCTION cdr_files_keep_calls() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    referred bigint;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN  -- after TRUNCATE: any call left names a file gone
        SELECT file_id INTO referred FROM cdrs LIMIT 1;
    ELSIF TG_OP = 'UPDATE' AND NEW.id IS NOT DISTINCT FROM OLD.id THEN
        RETURN NEW;
    ELSE
        SELECT file_id INTO referred FROM cdrs WHERE file_id = OLD.id LIMIT 1;
    END IF;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'update or delete on table "cdr_files" violates the file check "cdrs_file_known" on table "cdrs"',
            DETAIL = format('Key (id)=(%s) is still referenced from table "cdrs".', referred),
            TABLE = 'cdr_files', COLUMN = 'id';
    END IF;
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$""",
    """CREATE TRIGGER cdr_files_keep_calls BEFORE DELETE OR UPDATE OF id ON cdr_files
       FOR EACH ROW EXECUTE FUNCTION cdr_files_keep_calls()""",
    """CREATE TRIGGER cdr_files_keep_calls_truncate AFTER TRUNCATE ON cdr_files
       FOR EACH STATEMENT EXECUTE FUNCTION cdr_files_keep_calls()""",
]

_DOWNGRADE = [
    "DROP TRIGGER cdr_files_keep_calls_truncate ON cdr_files",
    "DROP TRIGGER cdr_files_keep_calls ON cdr_files",
    "DROP FUNCTION cdr_files_keep_calls()",
    "DROP TRIGGER cdrs_file_known_update ON cdrs",
    "DROP TRIGGER cdrs_file_known_insert ON cdrs",
    "DROP FUNCTION cdrs_file_known()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_constraint(_KEY, 'cdrs', type_='foreignkey')
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for statement in _DOWNGRADE:
        op.execute(statement)
    op.create_foreign_key(_KEY, 'cdrs', 'cdr_files', ['file_id'], ['id'])

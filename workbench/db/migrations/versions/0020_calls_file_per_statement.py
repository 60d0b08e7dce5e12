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
  while calls refer to the file. A foreign key looks for the calls with the latest snapshot,
  which PL/pgSQL cannot take: a transaction at ``REPEATABLE READ`` or ``SERIALIZABLE`` could
  miss calls committed after its snapshot, so deleting or renumbering a file is refused at
  those levels (SQLSTATE 55000); the workbench never deletes a file.

The functions name the tables with their schema (the migration's current schema), so that a
session's ``search_path`` does not change what is checked. What differs from the foreign key:
``cdrs_file_known`` runs after every ``UPDATE`` of ``cdrs``, whatever columns change (a trigger
with a transition table takes no column list); ``TRUNCATE cdr_files CASCADE`` no longer empties
``cdrs`` with it (refused while calls are left).

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

# {schema}: the schema of the tables (quoted), written into the functions, so that a session's
# search_path (another schema, a temporary table) never decides which table is checked
_UPGRADE = [
    """
CREATE FUNCTION {schema}.cdrs_file_known() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    locked integer[];
    missing bigint;
BEGIN
    -- lock the files named and learn which exist in one statement (one snapshot)
    SELECT array_agg(f.id) INTO locked FROM (
        SELECT id FROM {schema}.cdr_files WHERE id IN (SELECT DISTINCT file_id FROM added) FOR KEY SHARE
    ) f;
    SELECT a.file_id INTO missing
      FROM (SELECT DISTINCT file_id FROM added) a
     WHERE a.file_id IS NOT NULL AND a.file_id <> ALL (coalesce(locked, '{{}}'))
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
    """CREATE TRIGGER cdrs_file_known_insert AFTER INSERT ON {schema}.cdrs REFERENCING NEW TABLE AS added
       FOR EACH STATEMENT EXECUTE FUNCTION {schema}.cdrs_file_known()""",
    """CREATE TRIGGER cdrs_file_known_update AFTER UPDATE ON {schema}.cdrs REFERENCING NEW TABLE AS added
       FOR EACH STATEMENT EXECUTE FUNCTION {schema}.cdrs_file_known()""",
    """
CREATE FUNCTION {schema}.cdr_files_keep_calls() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    referred bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id IS NOT DISTINCT FROM OLD.id THEN
        RETURN NEW;
    END IF;
    -- a snapshot older than the statement could miss calls committed since: the foreign key
    -- checks against the latest one, which PL/pgSQL cannot take, so only READ COMMITTED may
    -- delete or renumber a file
    IF TG_LEVEL = 'ROW' AND current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE object_not_in_prerequisite_state USING
            MESSAGE = format('a CDR file (id %s) is deleted or renumbered at the isolation level %s: '
                             'only READ COMMITTED may, so that its calls are all seen',
                             OLD.id, current_setting('transaction_isolation'));
    END IF;
    IF TG_LEVEL = 'STATEMENT' THEN  -- after TRUNCATE: any call left names a file gone
        SELECT file_id INTO referred FROM {schema}.cdrs LIMIT 1;
    ELSE
        SELECT file_id INTO referred FROM {schema}.cdrs WHERE file_id = OLD.id LIMIT 1;
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
    """CREATE TRIGGER cdr_files_keep_calls BEFORE DELETE OR UPDATE OF id ON {schema}.cdr_files
       FOR EACH ROW EXECUTE FUNCTION {schema}.cdr_files_keep_calls()""",
    """CREATE TRIGGER cdr_files_keep_calls_truncate AFTER TRUNCATE ON {schema}.cdr_files
       FOR EACH STATEMENT EXECUTE FUNCTION {schema}.cdr_files_keep_calls()""",
]

_DOWNGRADE = [
    "DROP TRIGGER cdr_files_keep_calls_truncate ON {schema}.cdr_files",
    "DROP TRIGGER cdr_files_keep_calls ON {schema}.cdr_files",
    "DROP FUNCTION {schema}.cdr_files_keep_calls()",
    "DROP TRIGGER cdrs_file_known_update ON {schema}.cdrs",
    "DROP TRIGGER cdrs_file_known_insert ON {schema}.cdrs",
    "DROP FUNCTION {schema}.cdrs_file_known()",
]


def _schema() -> str:
    """The schema the tables are in (the first of the migration's search path), quoted."""
    return op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_constraint(_KEY, 'cdrs', type_='foreignkey')
    schema = _schema()
    for statement in _UPGRADE:
        op.execute(statement.format(schema=schema))


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    schema = _schema()
    for statement in _DOWNGRADE:
        op.execute(statement.format(schema=schema))
    op.create_foreign_key(_KEY, 'cdrs', 'cdr_files', ['file_id'], ['id'])

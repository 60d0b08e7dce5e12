"""sepa 2019: the payment means an invoice was issued with, the debtor account of each debit, the
mandate a mandate replaces

Revision ID: 0014_sepa_2019
Revises: 0014_faults
Create Date: 2026-12-01 11:00:00

* ``invoices.payment_means`` (``direct_debit`` or ``transfer``): what the issued document says; only
  invoices issued ``direct_debit`` are debited. Documents issued before this revision get
  ``direct_debit`` when they were debited already, or when their customer pays by direct debit
  and has an active mandate signed on or before the invoice date (what their PDF printed);
  ``transfer`` otherwise. Drafts keep none.
* ``sepa_debits.iban``: the debtor account a debit was made from (the mandate's amendments are
  told from it). Debits made before this revision get their mandate's IBAN as it is at the
  upgrade, the best record there is.
* ``mandates.original_reference``: the reference of the mandate this one continues under a new
  reference (an amendment, not a new mandate); none for most.
* ``mandates.last_collection_date``: the latest collection made under the mandate outside the
  workbench (before it), from which, with its debits here, its 36-month expiry counts. Mandates
  stored before this revision get none: reload ``mandates.csv`` with that column for mandates
  signed more than 36 months ago and collected by the previous system, or they count as unused.
"""

import sqlalchemy as sa
from alembic import op

revision = '0014_sepa_2019'
down_revision = '0014_faults'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invoices') as batch:
        batch.add_column(sa.Column('payment_means', sa.String(length=20), nullable=True))
    with op.batch_alter_table('sepa_debits') as batch:
        batch.add_column(sa.Column('iban', sa.String(length=34), nullable=True))
    with op.batch_alter_table('mandates') as batch:
        batch.add_column(sa.Column('original_reference', sa.String(length=35), nullable=True))
        batch.add_column(sa.Column('last_collection_date', sa.Date(), nullable=True))
    op.execute(
        "UPDATE invoices SET payment_means = CASE WHEN "
        "EXISTS (SELECT 1 FROM sepa_debits WHERE sepa_debits.invoice_id = invoices.id) OR ("
        "EXISTS (SELECT 1 FROM customers WHERE customers.id = invoices.customer_id "
        "AND customers.payment_method = 'direct_debit') AND "
        "EXISTS (SELECT 1 FROM mandates WHERE mandates.customer_id = invoices.customer_id "
        "AND mandates.status = 'active' AND mandates.signature_date <= invoices.invoice_date)) "
        "THEN 'direct_debit' ELSE 'transfer' END WHERE status = 'issued'")
    op.execute("UPDATE sepa_debits SET iban = (SELECT mandates.iban FROM mandates "
               "WHERE mandates.reference = sepa_debits.mandate_reference)")


def _drop_columns() -> None:
    with op.batch_alter_table('mandates') as batch:
        batch.drop_column('last_collection_date')
        batch.drop_column('original_reference')
    with op.batch_alter_table('sepa_debits') as batch:
        batch.drop_column('iban')
    with op.batch_alter_table('invoices') as batch:
        batch.drop_column('payment_means')


def downgrade() -> None:
    """Drop the columns. On SQLite the tables are rebuilt with foreign keys off (as in
    ``0007_precision_and_runs``), else dropping the old ``invoices`` would delete their items and
    VAT (``ON DELETE CASCADE``); the references are checked after."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        _drop_columns()
        return
    dbapi = bind.connection.dbapi_connection
    dbapi.commit()  # PRAGMA foreign_keys is ignored inside a transaction
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        _drop_columns()
        broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"tables rebuilt with broken references: {broken[:5]}")
        dbapi.commit()
    except BaseException:
        dbapi.rollback()
        raise
    finally:
        bind.exec_driver_sql("PRAGMA foreign_keys=ON")

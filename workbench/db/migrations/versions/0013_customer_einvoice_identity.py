"""customer e-invoicing identity: SIREN, business or consumer, service address, masking of called
numbers; issued documents keep them, and record their VAT category and the VAT-on-debits option

Revision ID: 0013_customer_einvoice_identity
Revises: 0014_faults
Create Date: 2026-12-01 11:00:00

Customers loaded before this revision have no SIREN, are businesses when they have a VAT number
(``business`` empty), have their service at their billing address, with called numbers masked in the call detail annex. Documents issued
before it keep no SIREN nor service address (they printed none), are ``S`` (French VAT, as they
were built) and were not under the VAT-on-debits option; their 0 % VAT rows and lines are ``E``.
"""

import sqlalchemy as sa
from alembic import op

revision = '0013_customer_einvoice_identity'
down_revision = '0014_faults'
branch_labels = None
depends_on = None

#: snapshot column -> (customers column, length)
SERVICE_ADDRESS = {
    'service_address_line1': 200, 'service_address_line2': 200, 'service_postcode': 20,
    'service_city': 100, 'service_country': 2,
}


def upgrade() -> None:
    # plain ADD COLUMN (no batch): SQLite adds them in place, without rebuilding ``customers``,
    # which every billing table refers to
    op.add_column('customers', sa.Column('siren', sa.String(length=9), nullable=True))
    op.add_column('customers', sa.Column('business', sa.Boolean(), nullable=True))
    for column, length in SERVICE_ADDRESS.items():
        op.add_column('customers', sa.Column(column, sa.String(length=length), nullable=True))
    op.add_column('customers', sa.Column('mask_called_numbers', sa.Boolean(), server_default=sa.true(),
                                         nullable=False))
    op.add_column('invoices', sa.Column('customer_siren', sa.String(length=9), nullable=True))
    for column, length in SERVICE_ADDRESS.items():
        op.add_column('invoices', sa.Column(f'customer_{column}', sa.String(length=length), nullable=True))
    op.add_column('invoices', sa.Column('vat_category', sa.String(length=2), nullable=True))
    op.add_column('invoices', sa.Column('vat_on_debits', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('invoice_items', sa.Column('vat_category', sa.String(length=2), nullable=True))
    op.add_column('invoice_vat', sa.Column('vat_category', sa.String(length=2), server_default='S', nullable=False))
    op.add_column('invoice_vat', sa.Column('exemption_reason_code', sa.String(length=30), nullable=True))
    op.execute("UPDATE invoices SET vat_category = 'S'")
    op.execute("UPDATE invoice_vat SET vat_category = 'E' WHERE vat_rate = 0")
    op.execute("UPDATE invoice_items SET vat_category = CASE WHEN vat_rate = 0 THEN 'E' ELSE 'S' END "
               "WHERE vat_rate IS NOT NULL")


def downgrade() -> None:
    # plain DROP COLUMN (SQLite >= 3.35 drops in place, without rebuilding the tables)
    for column in ('exemption_reason_code', 'vat_category'):
        op.drop_column('invoice_vat', column)
    op.drop_column('invoice_items', 'vat_category')
    for column in ('vat_on_debits', 'vat_category', *(f'customer_{c}' for c in reversed(SERVICE_ADDRESS)),
                   'customer_siren'):
        op.drop_column('invoices', column)
    for column in ('mask_called_numbers', *reversed(SERVICE_ADDRESS), 'business', 'siren'):
        op.drop_column('customers', column)

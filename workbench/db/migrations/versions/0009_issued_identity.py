"""issued identity: issued documents keep the customer's billing identity; credit notes record
what they set against their invoice's collection

Revision ID: 0006_issued_identity
Revises: 0010_unbilled_ratings_index
Create Date: 2026-12-01 08:00:00

Documents issued before this revision get the customer's identity as it is at the upgrade
(the best record there is); their credit notes set nothing against a collection (they became
account credit, as they did then).
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_issued_identity'
down_revision = '0010_unbilled_ratings_index'
branch_labels = None
depends_on = None

#: snapshot column -> customers column
IDENTITY = {
    'customer_name': ('name', 200),
    'customer_address_line1': ('address_line1', 200),
    'customer_address_line2': ('address_line2', 200),
    'customer_postcode': ('postcode', 20),
    'customer_city': ('city', 100),
    'customer_country': ('country', 2),
    'customer_vat_number': ('vat_number', 20),
}


def upgrade() -> None:
    with op.batch_alter_table('invoices') as batch:
        batch.add_column(sa.Column('collection_offset_cents', sa.BigInteger(), server_default='0', nullable=False))
        for column, (_, length) in IDENTITY.items():
            batch.add_column(sa.Column(column, sa.String(length=length), nullable=True))
    assignments = ', '.join(f'{column} = (SELECT customers.{source} FROM customers '
                            'WHERE customers.id = invoices.customer_id)'
                            for column, (source, _) in IDENTITY.items())
    op.execute(f"UPDATE invoices SET {assignments} WHERE status = 'issued'")


def downgrade() -> None:
    with op.batch_alter_table('invoices') as batch:
        for column in reversed(IDENTITY):
            batch.drop_column(column)
        batch.drop_column('collection_offset_cents')

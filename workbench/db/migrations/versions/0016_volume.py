"""an index of the billed ratings by invoice

Revision ID: 0016_volume
Revises: 0013_customer_einvoice_identity
Create Date: 2026-12-01 11:00:00

The call details of an invoice (its PDF, its checks) and the calls already billed that a rating
keeps are read by ``rated_calls.invoice_id``: without an index, each read goes through the
whole table (every call of every month). Partial: unbilled ratings (``invoice_id`` NULL), the
bulk of a month's rows until production, are not in it, so rating stores them at the same speed.
"""

import sqlalchemy as sa
from alembic import op

revision = '0016_volume'
down_revision = '0013_customer_einvoice_identity'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_rated_calls_invoice_id', 'rated_calls', ['invoice_id'],
                    sqlite_where=sa.text('invoice_id IS NOT NULL'), postgresql_where=sa.text('invoice_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_rated_calls_invoice_id', table_name='rated_calls')

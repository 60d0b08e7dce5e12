"""service periods: invoice lines name the subscription whose days they bill

Revision ID: 0005_service_periods
Revises: 0007_precision_and_runs
Create Date: 2026-12-01 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_service_periods'
down_revision = '0007_precision_and_runs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invoice_items') as batch:
        batch.add_column(sa.Column('subscription_id', sa.Integer(), nullable=True))
        batch.create_index('ix_invoice_items_subscription_id', ['subscription_id'])


def downgrade() -> None:
    with op.batch_alter_table('invoice_items') as batch:
        batch.drop_index('ix_invoice_items_subscription_id')
        batch.drop_column('subscription_id')

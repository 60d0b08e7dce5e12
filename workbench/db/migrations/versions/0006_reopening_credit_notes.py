"""reopening credit notes: a cancelled invoice's period can be invoiced again

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('invoices', sa.Column('reopens_period', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('invoices') as batch:
        batch.drop_column('reopens_period')

"""reject start times, and an index of the unbilled ratings

Revision ID: 0010_reject_start_times
Revises: 0006
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_reject_start_times'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cdr_rejects') as batch:
        batch.add_column(sa.Column('start_utc', sa.DateTime(), nullable=True))
    op.create_index('ix_rated_calls_unbilled', 'rated_calls', ['period', 'customer_id'],
                    sqlite_where=sa.text('invoice_id IS NULL'), postgresql_where=sa.text('invoice_id IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_rated_calls_unbilled', table_name='rated_calls')
    with op.batch_alter_table('cdr_rejects') as batch:
        batch.drop_column('start_utc')

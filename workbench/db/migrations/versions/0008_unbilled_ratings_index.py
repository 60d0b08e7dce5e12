"""an index of the unbilled ratings

Revision ID: 0010_unbilled_ratings_index
Revises: 0004_cdr_rejects
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010_unbilled_ratings_index'
down_revision = '0004_cdr_rejects'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_rated_calls_unbilled', 'rated_calls', ['period', 'customer_id'],
                    sqlite_where=sa.text('invoice_id IS NULL'), postgresql_where=sa.text('invoice_id IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_rated_calls_unbilled', table_name='rated_calls')

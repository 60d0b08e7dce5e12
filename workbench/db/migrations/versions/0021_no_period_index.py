"""PostgreSQL: no index of rated calls by period (each month is its own partition)

Revision ID: 0021_no_period_index
Revises: 0020_calls_file_per_statement
Create Date: 2026-12-02 04:00:00

On PostgreSQL ``rated_calls`` is partitioned by period (migration ``0019``): a query of one
period or of the periods before one reads the partitions of those periods only, whole, and an
index of ``period`` within a partition, where every row has the same period, finds nothing a
scan of the partition does not. Building it cost about half a second for each million ratings
stored (:func:`workbench.db.partitions.replace_partition` builds a month's indexes anew at each
rating). It is dropped on PostgreSQL; SQLite, with one table for every month, keeps it. The
schema (``RatedCall``) still declares it; the schema comparison leaves it out on PostgreSQL
(:func:`workbench.db.comparison.comparison_options`).
"""

from alembic import op

revision = '0021_no_period_index'
down_revision = '0020_calls_file_per_statement'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index('ix_rated_calls_period', table_name='rated_calls')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.create_index('ix_rated_calls_period', 'rated_calls', ['period'])

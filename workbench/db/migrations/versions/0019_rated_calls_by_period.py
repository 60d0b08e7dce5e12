"""rated calls partitioned by period on PostgreSQL; the unbilled ratings indexed by customer first

Revision ID: 0019_rated_calls_by_period
Revises: 0018_volume_keys
Create Date: 2026-12-01 21:30:00

PostgreSQL: ``rated_calls`` becomes a table partitioned by ``period`` (``PARTITION BY LIST``), one
partition per month (``rated_calls_pYYYY_MM``) and a default one. Rating a month then writes a
new partition and builds its indexes once (:mod:`workbench.db.partitions`) instead of updating
every index at every row. A partitioned table's primary key must hold the partition key: it is
(cdr_id, period); that a call has ratings in one period only is checked when a month is stored
(:mod:`workbench.db.partitions`). The existing ratings are copied into the partitions once, and
the key and indexes built after.

The migration recreates ``rated_calls`` on PostgreSQL: privileges granted on the old table to
other roles are to be granted again. Rating now creates and attaches tables: the workbench's
database user owns ``rated_calls`` (as it must to run the migrations).

Both back-ends: the index of unbilled ratings is (customer_id, period) instead of (period,
customer_id). What needs it asks for customers' ratings up to a period (the production's marking
of what each invoice bills, a run of some customers, the late calls of the period balance); led
by the customer it answers that as well, and PostgreSQL builds it more than twice as fast (the
period, the same on every row of a month, made each comparison of the sort a comparison of
text). A run of all customers reads the table in key order, as before.
"""

import re

import sqlalchemy as sa
from alembic import op

revision = '0019_rated_calls_by_period'
down_revision = '0018_volume_keys'
branch_labels = None
depends_on = None

_UNBILLED = sa.text('invoice_id IS NULL')


def _unbilled(columns: list[str]) -> None:
    op.drop_index('ix_rated_calls_unbilled', table_name='rated_calls')
    op.create_index('ix_rated_calls_unbilled', 'rated_calls', columns, sqlite_where=_UNBILLED,
                    postgresql_where=_UNBILLED)


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        _unbilled(['customer_id', 'period'])
        return
    op.execute('ALTER TABLE rated_calls RENAME TO rated_calls_unpartitioned')
    op.execute('ALTER TABLE rated_calls_unpartitioned DROP CONSTRAINT pk_rated_calls')
    for index in ('ix_rated_calls_period', 'ix_rated_calls_unbilled', 'ix_rated_calls_invoice_id'):
        op.execute(f'DROP INDEX {index}')
    op.execute('CREATE TABLE rated_calls (LIKE rated_calls_unpartitioned INCLUDING DEFAULTS) '
               'PARTITION BY LIST (period)')
    op.execute('CREATE TABLE rated_calls_default PARTITION OF rated_calls DEFAULT')
    periods = op.get_bind().execute(sa.text('SELECT DISTINCT period FROM rated_calls_unpartitioned')).scalars()
    for period in periods:  # a month has its partition; anything else goes to the default one
        if re.fullmatch(r'[0-9]{4}-(0[1-9]|1[0-2])', period):
            op.execute(f"CREATE TABLE rated_calls_p{period.replace('-', '_')} PARTITION OF rated_calls "
                       f"FOR VALUES IN ('{period}')")
    op.execute('INSERT INTO rated_calls SELECT * FROM rated_calls_unpartitioned')
    op.execute('DROP TABLE rated_calls_unpartitioned')
    # the key and indexes built once over the rows copied, not row by row
    op.execute('ALTER TABLE rated_calls ADD CONSTRAINT pk_rated_calls PRIMARY KEY (cdr_id, period)')
    op.execute('CREATE INDEX ix_rated_calls_period ON rated_calls (period)')
    op.execute('CREATE INDEX ix_rated_calls_unbilled ON rated_calls (customer_id, period) WHERE invoice_id IS NULL')
    op.execute('CREATE INDEX ix_rated_calls_invoice_id ON rated_calls (invoice_id) WHERE invoice_id IS NOT NULL')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        _unbilled(['period', 'customer_id'])
        return
    op.execute('ALTER TABLE rated_calls RENAME TO rated_calls_partitioned')
    op.execute('CREATE TABLE rated_calls (LIKE rated_calls_partitioned INCLUDING DEFAULTS)')
    op.execute('INSERT INTO rated_calls SELECT * FROM rated_calls_partitioned')
    op.execute('DROP TABLE rated_calls_partitioned')  # its partitions and indexes with it
    op.execute('ALTER TABLE rated_calls ADD CONSTRAINT pk_rated_calls PRIMARY KEY (cdr_id)')
    op.execute('CREATE INDEX ix_rated_calls_period ON rated_calls (period)')
    op.execute('CREATE INDEX ix_rated_calls_unbilled ON rated_calls (period, customer_id) WHERE invoice_id IS NULL')
    op.execute('CREATE INDEX ix_rated_calls_invoice_id ON rated_calls (invoice_id) WHERE invoice_id IS NOT NULL')

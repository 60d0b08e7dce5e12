"""unbilled ratings stored as blocks of columns (``rating_blocks``); ``rated_calls`` keeps the billed

Revision ID: 0023_rating_blocks
Revises: 0022_call_blocks
Create Date: 2026-12-02 16:00:00

A period's unbilled ratings are replaced whole at each of its ratings; writing them as rows of
``rated_calls`` with their indexes was most of a rating's time. They are now blocks of a period's
ratings (:mod:`workbench.db.ratings`): up to 200,000 ratings by customer and call as a Parquet
file in a binary column, with the range of their customers and call ids and the time of their
rating. ``rated_calls`` keeps the billed ratings, which a production run moves there from the
blocks with their invoice (and a credit note that reopens a period moves back).

The unbilled rows of ``rated_calls`` are moved into blocks (by period and time of rating), and
back by the downgrade.
"""

import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic import op

from workbench.db import ratings as rating_store

revision = '0023_rating_blocks'
down_revision = '0022_call_blocks'
branch_labels = None
depends_on = None

_COLUMNS = ['cdr_id', 'period', 'customer_id', 'destination_prefix', 'zone_code', 'band', 'duration_s',
            'allowance_s', 'price_units', 'rate_id', 'rule', 'rated_at']


def _blocks_table():
    return sa.table('rating_blocks', *(sa.column(c) for c in (
        'period', 'customer_min', 'customer_max', 'cdr_min', 'cdr_max', 'ratings', 'rated_at', 'data')))


def _write_blocks(bind, rows: pd.DataFrame) -> None:
    """Unbilled rows of ``rated_calls`` into blocks, by period and time of rating."""
    blocks = []
    for (period, rated_at), ratings in rows.groupby(['period', 'rated_at'], sort=True):
        for column in ('cdr_id', 'customer_id', 'duration_s', 'allowance_s', 'price_units'):
            ratings[column] = ratings[column].astype(np.int64)
        blocks.append(rating_store.block_row(str(period), ratings.sort_values(['customer_id', 'cdr_id'],
                                                                             ignore_index=True),
                                             pd.Timestamp(rated_at).to_pydatetime()))
    if blocks:
        bind.execute(sa.insert(_blocks_table()), blocks)


def upgrade() -> None:
    op.create_table(
        'rating_blocks',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('period', sa.String(length=7), nullable=False),
        sa.Column('customer_min', sa.Integer(), nullable=False),
        sa.Column('customer_max', sa.Integer(), nullable=False),
        sa.Column('cdr_min', sa.BigInteger(), nullable=False),
        sa.Column('cdr_max', sa.BigInteger(), nullable=False),
        sa.Column('ratings', sa.Integer(), nullable=False),
        sa.Column('rated_at', sa.DateTime(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rating_blocks')),
    )
    op.create_index('ix_rating_blocks_period', 'rating_blocks', ['period', 'customer_min'])
    op.create_index('ix_rating_blocks_ids', 'rating_blocks', ['cdr_min', 'cdr_max'])
    bind = op.get_bind()
    # a fetch at a time (a server-side cursor on PostgreSQL): a period's ratings over two fetches
    # make two sets of blocks, which its readers take together
    result = bind.execute(sa.text(
        f"SELECT {', '.join(_COLUMNS)} FROM rated_calls WHERE invoice_id IS NULL "
        "ORDER BY period, rated_at, customer_id, cdr_id").execution_options(stream_results=True))
    while fetched := result.fetchmany(rating_store.BLOCK_RATINGS):
        _write_blocks(bind, pd.DataFrame(fetched, columns=_COLUMNS))
    bind.execute(sa.text("DELETE FROM rated_calls WHERE invoice_id IS NULL"))


def downgrade() -> None:
    bind = op.get_bind()
    table = sa.table('rated_calls', *(sa.column(c) for c in _COLUMNS))
    for period, rated_at, data in bind.execute(sa.text(
            "SELECT period, rated_at, data FROM rating_blocks ORDER BY id")).all():
        ratings = rating_store.decode(data)
        bind.execute(sa.insert(table), [
            {**{c: (None if pd.isna(v) else int(v) if isinstance(v, (int, np.integer)) else v)
                for c, v in zip(ratings.columns, row, strict=True)},
             'period': str(period), 'rated_at': pd.Timestamp(rated_at).to_pydatetime()}
            for row in ratings.itertuples(index=False, name=None)])
    op.drop_index('ix_rating_blocks_ids', table_name='rating_blocks')
    op.drop_index('ix_rating_blocks_period', table_name='rating_blocks')
    op.drop_table('rating_blocks')

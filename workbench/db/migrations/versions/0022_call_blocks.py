"""calls stored as blocks of columns (``call_blocks``) instead of a row per call (``cdrs``)

Revision ID: 0022_call_blocks
Revises: 0021_no_period_index
Create Date: 2026-12-02 15:00:00

A call never changes once accepted, and calls are read many at a time (a month to rate, a
period to balance). Storing them a row per call cost most of a load's time on SQLite and on
PostgreSQL: a million rows, the call key's unique index and, on PostgreSQL, the file's check
(migration ``0020``). They are now stored a block at a time (:mod:`workbench.db.calls`): up to
a chunk of one file's calls of one UTC month as a Parquet file in a binary column, with the
block's file, range of call ids and range of start times. The call ids are kept, so ratings,
rating errors and cured rejects still name their calls.

The calls of ``cdrs`` are moved into blocks (by file, UTC month and start, 200,000 calls at
most a block), then ``cdrs`` is dropped, with, on PostgreSQL, the triggers that checked its
files per statement (migration ``0020``): a block's file is checked by an ordinary foreign key,
once per block. The downgrade moves the calls back into ``cdrs``, with its key and its checks.
Moving calls reads them through Python: about a minute for 10 million calls.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic import op

from workbench.db import calls as call_store

revision = '0022_call_blocks'
down_revision = '0021_no_period_index'
branch_labels = None
depends_on = None

#: the calls fetched from ``cdrs`` at a time (a block holds at most as many)
_FETCH = call_store.BLOCK_CALLS


def _blocks_table():
    return sa.table('call_blocks', *(sa.column(c) for c in (
        'file_id', 'first_id', 'last_id', 'calls', 'start_min', 'start_max', 'data')))


def _per_statement_checks():
    """Migration ``0020``'s module (its trigger statements), read from its file."""
    path = Path(__file__).with_name('0020_calls_file_per_statement.py')
    spec = importlib.util.spec_from_file_location('_calls_file_per_statement', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_blocks(bind, calls: pd.DataFrame) -> None:
    """Calls of ``cdrs`` (with ``file_id``, by file and start) into blocks of one file and UTC month."""
    calls['start_utc'] = pd.to_datetime(calls['start_utc']).astype('datetime64[s]')
    for column in ('id', 'file_id', 'line_no', 'calling', 'called', 'duration_s'):
        calls[column] = calls[column].astype(np.int64)
    calls['switch_id'] = calls['switch_id'].astype(object)
    month = calls['start_utc'].to_numpy().astype('datetime64[M]')
    rows = [call_store.block_row(int(file_id), block.sort_values('start_utc', kind='stable'))
            for (file_id, _), block in calls.groupby([calls['file_id'], month], sort=True)]
    if rows:
        bind.execute(sa.insert(_blocks_table()), rows)


def upgrade() -> None:
    op.create_table(
        'call_blocks',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('file_id', sa.Integer(), nullable=False),
        sa.Column('first_id', sa.BigInteger(), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.Column('calls', sa.Integer(), nullable=False),
        sa.Column('start_min', sa.DateTime(), nullable=False),
        sa.Column('start_max', sa.DateTime(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['file_id'], ['cdr_files.id'], name=op.f('fk_call_blocks_file_id_cdr_files')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_call_blocks')),
    )
    op.create_index('ix_call_blocks_start', 'call_blocks', ['start_min', 'start_max'])
    op.create_index('ix_call_blocks_ids', 'call_blocks', ['first_id', 'last_id'])
    op.create_index('ix_call_blocks_file_id', 'call_blocks', ['file_id'])
    bind = op.get_bind()
    columns = ['id', 'file_id', 'line_no', 'start_utc', 'calling', 'called', 'duration_s', 'switch_id']
    # a fetch at a time: a file's calls of a month over two fetches make two blocks
    result = bind.execute(sa.text(f"SELECT {', '.join(columns)} FROM cdrs ORDER BY file_id, start_utc, id")
                          .execution_options(stream_results=True))  # a server-side cursor on PostgreSQL
    while rows := result.fetchmany(_FETCH):
        _write_blocks(bind, pd.DataFrame(rows, columns=columns))
    if bind.dialect.name == 'postgresql':
        schema = _per_statement_checks()._schema()
        op.execute(f"DROP TRIGGER cdr_files_keep_calls_truncate ON {schema}.cdr_files")
        op.execute(f"DROP TRIGGER cdr_files_keep_calls ON {schema}.cdr_files")
        op.execute(f"DROP FUNCTION {schema}.cdr_files_keep_calls()")
        op.drop_table('cdrs')
        op.execute(f"DROP FUNCTION {schema}.cdrs_file_known()")
    else:
        op.drop_table('cdrs')


def downgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == 'postgresql'
    op.create_table(
        'cdrs',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('file_id', sa.Integer(), nullable=False),
        sa.Column('line_no', sa.Integer(), nullable=False),
        sa.Column('start_utc', sa.DateTime(), nullable=False),
        sa.Column('calling', sa.BigInteger(), nullable=False),
        sa.Column('called', sa.BigInteger(), nullable=False),
        sa.Column('duration_s', sa.Integer(), nullable=False),
        sa.Column('switch_id', sa.String(length=64), nullable=False),
        *([] if postgresql else [sa.ForeignKeyConstraint(['file_id'], ['cdr_files.id'],
                                                         name=op.f('fk_cdrs_file_id_cdr_files'))]),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cdrs')),
        sa.UniqueConstraint('start_utc', 'calling', 'called', 'duration_s', name='uq_cdrs_call'),
    )
    cdrs = sa.table('cdrs', *(sa.column(c) for c in (
        'id', 'file_id', 'line_no', 'start_utc', 'calling', 'called', 'duration_s', 'switch_id')))
    for (file_id, data) in bind.execute(sa.text('SELECT file_id, data FROM call_blocks ORDER BY id')).all():
        calls = call_store.decode(data)
        bind.execute(sa.insert(cdrs), [
            {'id': int(i), 'file_id': int(file_id), 'line_no': int(n), 'start_utc': start.to_pydatetime(),
             'calling': int(a), 'called': int(b), 'duration_s': int(d), 'switch_id': str(w)}
            for i, n, start, a, b, d, w in zip(calls['id'], calls['line_no'], pd.to_datetime(calls['start_utc']),
                                               calls['calling'], calls['called'], calls['duration_s'],
                                               calls['switch_id'], strict=True)])
    if postgresql:
        bind.execute(sa.text("SELECT setval(pg_get_serial_sequence('cdrs', 'id'), "
                             "coalesce((SELECT max(id) FROM cdrs), 0) + 1, false)"))
        checks = _per_statement_checks()
        schema = checks._schema()
        for statement in checks._UPGRADE:
            op.execute(statement.format(schema=schema))
    op.drop_index('ix_call_blocks_file_id', table_name='call_blocks')
    op.drop_index('ix_call_blocks_ids', table_name='call_blocks')
    op.drop_index('ix_call_blocks_start', table_name='call_blocks')
    op.drop_table('call_blocks')

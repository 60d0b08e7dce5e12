"""per-minute rates in micro units; run numbers never reused

* ``rate_intervals.price_per_minute_units`` (1/10,000) becomes ``price_per_minute_micros``
  (1/1,000,000): the stored values are multiplied by 100, the prices are unchanged.
* ``billing_runs`` is recreated on SQLite with ``AUTOINCREMENT``, so the number of a deleted run
  is never given again (PostgreSQL's sequence never gives a number twice already). The rows,
  with their numbers, and the invoices referring to them are kept.

Revision ID: 0007_precision_and_runs
Revises: 0006_issued_identity
Create Date: 2026-12-01 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0007_precision_and_runs'
down_revision = '0006_issued_identity'
branch_labels = None
depends_on = None


def _rescale(old: str, new: str, factor_up: bool) -> None:
    if not factor_up:  # back to 1/10,000: refused when a rate has more than 4 decimals
        finer = op.get_bind().execute(sa.text(f"SELECT count(*) FROM rate_intervals WHERE {old} % 100 <> 0")).scalar()
        if finer:
            raise RuntimeError(f"{finer} rate interval(s) priced to more than 4 decimals: not stored in 1/10,000")
    op.execute(f"ALTER TABLE rate_intervals RENAME COLUMN {old} TO {new}")  # SQLite >= 3.25 and PostgreSQL
    op.execute(f"UPDATE rate_intervals SET {new} = {new} {'*' if factor_up else '/'} 100")


def _recreate_runs(autoincrement: bool) -> None:
    """Rebuild ``billing_runs`` on SQLite with or without AUTOINCREMENT. Its rows are copied with
    their ids; foreign keys are off meanwhile, else dropping the old table would delete the
    invoices referring to it (``ON DELETE CASCADE``), and checked after."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    dbapi = bind.connection.dbapi_connection
    dbapi.commit()  # PRAGMA foreign_keys is ignored inside a transaction
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        with op.batch_alter_table('billing_runs', recreate='always',
                                  table_kwargs={'sqlite_autoincrement': autoincrement}) as batch:
            batch.alter_column('id', existing_type=sa.Integer(), autoincrement=True)
        broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"billing_runs rebuilt with broken references: {broken[:5]}")
        dbapi.commit()
    except BaseException:
        dbapi.rollback()
        raise
    finally:
        bind.exec_driver_sql("PRAGMA foreign_keys=ON")


def upgrade() -> None:
    _rescale('price_per_minute_units', 'price_per_minute_micros', factor_up=True)
    _recreate_runs(autoincrement=True)


def downgrade() -> None:
    _recreate_runs(autoincrement=False)
    _rescale('price_per_minute_micros', 'price_per_minute_units', factor_up=False)

"""Rated calls partitioned by period on PostgreSQL: a month's partition replaced in one
transaction, and the migration both ways."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import text

from workbench.db.partitions import is_partition, partition_name, replace_partition

RATED_AT = datetime(2026, 11, 2, 8, 0)


def ratings(period: str, rows: list[tuple[int, int]], invoice_id: int | None = None) -> pd.DataFrame:
    """Ratings of ``period``: (cdr_id, price_units) each, for customer 1."""
    frame = pd.DataFrame({
        "cdr_id": [c for c, _ in rows], "period": period, "customer_id": 1, "destination_prefix": "33",
        "zone_code": "FR_FIXED", "band": "peak", "duration_s": 60, "allowance_s": 0,
        "price_units": [p for _, p in rows], "rate_id": 1, "rule": "standard", "rated_at": pd.Timestamp(RATED_AT),
    })
    if invoice_id is not None:
        frame["invoice_id"] = invoice_id
    return frame


def stored(engine) -> dict[int, tuple[str, str, int, int | None]]:
    """Every rating: cdr_id -> (partition holding it, period, price_units, invoice_id)."""
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT cdr_id, CAST(tableoid::regclass AS text), period, price_units, invoice_id FROM rated_calls"))
        return {row[0]: tuple(row[1:]) for row in rows}


def tables(engine) -> list[str]:
    return sorted(n for n in sa.inspect(engine).get_table_names() if n.startswith("rated_calls"))


def test_partition_names_take_a_month_only():
    assert partition_name("rated_calls", "2026-10") == "rated_calls_p2026_10"
    for period in ("2026-13", "2026-1", "2026-10'; DROP TABLE cdrs; --", ""):
        with pytest.raises(ValueError):
            partition_name("rated_calls", period)
    with pytest.raises(ValueError):
        partition_name("cdrs", "2026-10")
    assert is_partition("rated_calls_p2026_10") and is_partition("rated_calls_default")
    assert not is_partition("rated_calls") and not is_partition("cdrs_p2026_10")


@pytest.fixture
def pg_engine(postgres_server):
    from conftest import new_postgres_database

    from workbench.db.engine import make_engine, upgrade

    engine = make_engine(new_postgres_database(postgres_server))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_a_month_rated_again_gets_a_new_partition_keeping_its_billed_ratings(pg_engine):
    from workbench.db.bulk import insert_frame

    engine = pg_engine
    with engine.begin() as connection:  # stored before the month had a partition: the default one
        insert_frame(connection, "rated_calls", ratings("2026-10", [(1, 100)], invoice_id=7))
        insert_frame(connection, "rated_calls", ratings("2026-10", [(2, 200), (3, 300)]))
        insert_frame(connection, "rated_calls", ratings("2026-09", [(9, 900)]))
    assert set(stored(engine)) == {1, 2, 3, 9}
    assert {v[0] for v in stored(engine).values()} == {"rated_calls_default"}

    with engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(2, 210), (4, 400)]),
                          keep="invoice_id IS NOT NULL")
    assert stored(engine) == {
        1: ("rated_calls_p2026_10", "2026-10", 100, 7),  # billed: kept as it was
        2: ("rated_calls_p2026_10", "2026-10", 210, None),  # rated again
        4: ("rated_calls_p2026_10", "2026-10", 400, None),  # new
        9: ("rated_calls_default", "2026-09", 900, None),  # another month: untouched
    }

    later = datetime(2026, 11, 3, 9, 30, 15)
    with engine.begin() as connection:  # again, now that the month has its partition; rated_at given once
        replace_partition(connection, "rated_calls", "2026-10",
                          ratings("2026-10", [(5, 500)]).drop(columns=["period", "rated_at"]),
                          keep="invoice_id IS NOT NULL", constants={"rated_at": later})
    assert {k: v[2] for k, v in stored(engine).items()} == {1: 100, 5: 500, 9: 900}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT cdr_id, period, rated_at FROM rated_calls WHERE cdr_id IN (1, 5) "
                                       "ORDER BY cdr_id")).all() == [(1, "2026-10", RATED_AT), (5, "2026-10", later)]
        defaults = connection.execute(text(  # the defaults that wrote them are gone
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'rated_calls_p2026_10' "
            "AND column_default IS NOT NULL")).scalar_one()
    assert defaults == 0
    assert tables(engine) == ["rated_calls", "rated_calls_default", "rated_calls_p2026_10"]
    with engine.connect() as connection:  # the partition's key and indexes are the table's
        roots = connection.execute(text(
            "SELECT CAST(pg_partition_root(indexrelid) AS text) FROM pg_index "
            "WHERE indrelid = CAST('rated_calls_p2026_10' AS regclass)")).scalars().all()
        checks = connection.execute(text(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = CAST('rated_calls_p2026_10' AS regclass) "
            "AND contype = 'c'")).scalar_one()
    assert sorted(roots) == ["ix_rated_calls_invoice_id", "ix_rated_calls_period", "ix_rated_calls_unbilled",
                             "pk_rated_calls"]
    assert checks == 0
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:  # the key holds
        connection.execute(text("INSERT INTO rated_calls SELECT * FROM rated_calls WHERE cdr_id = 5"))


@pytest.mark.postgres
def test_a_failed_or_interrupted_replacement_leaves_the_month_as_it_was(pg_engine):
    engine = pg_engine
    with engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(1, 100), (2, 200)]),
                          keep="invoice_id IS NOT NULL")
        connection.execute(text("UPDATE rated_calls SET invoice_id = 7 WHERE cdr_id = 1"))
    before = stored(engine)

    # the new ratings rate the billed call 1 again: the key refuses it, nothing changes
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(1, 111), (3, 300)]),
                          keep="invoice_id IS NOT NULL")
    assert stored(engine) == before

    # a rating of another month among the rows: refused before anything is written
    with pytest.raises(ValueError, match="another period"), engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10",
                          pd.concat([ratings("2026-10", [(3, 300)]), ratings("2026-11", [(4, 400)])]),
                          keep="invoice_id IS NOT NULL")
    assert stored(engine) == before

    # interrupted after the swap, before the commit (Ctrl-C): rolled back
    with pytest.raises(KeyboardInterrupt), engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(3, 300)]),
                          keep="invoice_id IS NOT NULL")
        raise KeyboardInterrupt
    assert stored(engine) == before
    assert tables(engine) == ["rated_calls", "rated_calls_default", "rated_calls_p2026_10"]


@pytest.mark.postgres
def test_the_migration_moves_the_ratings_into_partitions_and_back(pg_engine):
    from alembic import command

    from workbench.db.bulk import insert_frame
    from workbench.db.engine import alembic_config, upgrade

    engine = pg_engine
    command.downgrade(alembic_config(engine), "0018_volume_keys")
    assert tables(engine) == ["rated_calls"]
    with engine.begin() as connection:
        insert_frame(connection, "rated_calls", ratings("2026-09", [(1, 100)], invoice_id=7))
        insert_frame(connection, "rated_calls", ratings("2026-10", [(2, 200), (3, 300)]))
    upgrade(engine)
    assert tables(engine) == ["rated_calls", "rated_calls_default", "rated_calls_p2026_09", "rated_calls_p2026_10"]
    assert stored(engine) == {1: ("rated_calls_p2026_09", "2026-09", 100, 7),
                              2: ("rated_calls_p2026_10", "2026-10", 200, None),
                              3: ("rated_calls_p2026_10", "2026-10", 300, None)}
    unbilled = [i for i in sa.inspect(engine).get_indexes("rated_calls") if i["name"] == "ix_rated_calls_unbilled"]
    assert [i["column_names"] for i in unbilled] == [["customer_id", "period"]]

    command.downgrade(alembic_config(engine), "0018_volume_keys")
    assert tables(engine) == ["rated_calls"]
    assert {k: v[1:] for k, v in stored(engine).items()} == {1: ("2026-09", 100, 7), 2: ("2026-10", 200, None),
                                                            3: ("2026-10", 300, None)}
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("rated_calls")["constrained_columns"] == ["cdr_id"]
    assert sorted(i["name"] for i in inspector.get_indexes("rated_calls")) == [
        "ix_rated_calls_invoice_id", "ix_rated_calls_period", "ix_rated_calls_unbilled"]

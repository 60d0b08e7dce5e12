"""Rated calls partitioned by period on PostgreSQL: a month's partition replaced in one
transaction, and the migration both ways."""

from __future__ import annotations

import time
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from factories import all_ratings
from sqlalchemy import text

from workbench.db import partitions
from workbench.db.partitions import is_partition, partition_name, replace_partition
from workbench.errors import RefusedError, UnavailableError

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
    for period in ("2026-13", "2026-00", "2026-1", "２０２６-10", "2026-10'; DROP TABLE cdrs; --", ""):
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
    # no index by period (migration 0021): every row of a partition has the same
    assert sorted(roots) == ["ix_rated_calls_invoice_id", "ix_rated_calls_unbilled", "pk_rated_calls"]
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
    with pytest.raises(RefusedError, match=r"repeat a key \(Key \(cdr_id, period\)=\(1, 2026-10\)") as raised, \
            engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(1, 111), (3, 300)]),
                          keep="invoice_id IS NOT NULL")
    assert raised.value.code == "repeated_key"
    assert stored(engine) == before

    # a rating of another month among the rows: refused before anything is written
    with pytest.raises(ValueError, match="another period"), engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10",
                          pd.concat([ratings("2026-10", [(3, 300)]), ratings("2026-11", [(4, 400)])]),
                          keep="invoice_id IS NOT NULL")
    assert stored(engine) == before

    # a column the table does not have, as a constant: refused
    with pytest.raises(ValueError, match="no column"), engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(3, 300)]),
                          keep="invoice_id IS NOT NULL", constants={"rated_at; DROP TABLE cdrs": RATED_AT})
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
        insert_frame(connection, "rated_calls", ratings("2026-13", [(4, 400)]))  # no month: the default partition
    command.upgrade(alembic_config(engine), "0021_no_period_index")
    assert tables(engine) == ["rated_calls", "rated_calls_default", "rated_calls_p2026_09", "rated_calls_p2026_10"]
    assert stored(engine) == {1: ("rated_calls_p2026_09", "2026-09", 100, 7),
                              2: ("rated_calls_p2026_10", "2026-10", 200, None),
                              3: ("rated_calls_p2026_10", "2026-10", 300, None),
                              4: ("rated_calls_default", "2026-13", 400, None)}
    unbilled = [i for i in sa.inspect(engine).get_indexes("rated_calls") if i["name"] == "ix_rated_calls_unbilled"]
    assert [i["column_names"] for i in unbilled] == [["customer_id", "period"]]

    def by_period(table: str) -> list[str]:  # the indexes of the period alone
        return [i["name"] for i in sa.inspect(engine).get_indexes(table) if i["column_names"] == ["period"]]

    # 0021: no index by period in a partitioned table, and back
    assert by_period("rated_calls") == [] and by_period("rated_calls_p2026_10") == []
    command.downgrade(alembic_config(engine), "0020_calls_file_per_statement")
    assert by_period("rated_calls") == ["ix_rated_calls_period"] and len(by_period("rated_calls_p2026_10")) == 1
    command.upgrade(alembic_config(engine), "0021_no_period_index")
    assert by_period("rated_calls") == [] and by_period("rated_calls_p2026_10") == []

    # 0023: the unbilled ratings move into blocks, the billed one stays a row
    upgrade(engine)
    assert stored(engine) == {1: ("rated_calls_p2026_09", "2026-09", 100, 7)}
    unbilled = all_ratings(engine).set_index("cdr_id")
    assert unbilled.loc[[2, 3, 4], ["period", "price_units"]].values.tolist() == [
        ["2026-10", 200], ["2026-10", 300], ["2026-13", 400]]
    assert unbilled.loc[[2, 3, 4], "invoice_id"].isna().all()

    command.downgrade(alembic_config(engine), "0018_volume_keys")
    assert tables(engine) == ["rated_calls"]
    assert {k: v[1:] for k, v in stored(engine).items()} == {1: ("2026-09", 100, 7), 2: ("2026-10", 200, None),
                                                            3: ("2026-10", 300, None), 4: ("2026-13", 400, None)}
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("rated_calls")["constrained_columns"] == ["cdr_id"]
    assert sorted(i["name"] for i in inspector.get_indexes("rated_calls")) == [
        "ix_rated_calls_invoice_id", "ix_rated_calls_period", "ix_rated_calls_unbilled"]


@pytest.mark.postgres
@pytest.mark.parametrize("first", [True, False], ids=["first rating", "rated again"])
def test_ctrl_c_while_a_month_is_copied_leaves_it_as_it_was(pg_engine, monkeypatch, first):
    from workbench.db.bulk import insert_frame

    engine = pg_engine
    with engine.begin() as connection:
        if first:  # the month's ratings in the default partition
            insert_frame(connection, "rated_calls", ratings("2026-10", [(1, 100), (2, 200)]))
        else:
            replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(1, 100), (2, 200)]),
                              keep="invoice_id IS NOT NULL")
    before, tables_before = stored(engine), tables(engine)

    def interrupted(connection, table, frame):  # the rows copied, then Ctrl-C
        insert_frame(connection, table, frame)
        raise KeyboardInterrupt

    monkeypatch.setattr(partitions, "insert_frame", interrupted)
    with pytest.raises(KeyboardInterrupt), engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(3, 300)]),
                          keep="invoice_id IS NOT NULL")
    assert stored(engine) == before
    assert tables(engine) == tables_before


@pytest.mark.postgres
def test_a_call_rated_in_another_month_is_refused(pg_engine):
    """The primary key (cdr_id, period) of a partitioned table would let a call have ratings in
    two months (rated under one time zone setting, then another): refused before the swap."""
    engine = pg_engine
    with engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-09", ratings("2026-09", [(10, 100), (20, 200)]),
                          keep="invoice_id IS NOT NULL")
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(30, 300)]),
                          keep="invoice_id IS NOT NULL")
    before = stored(engine)
    with pytest.raises(RefusedError, match="cdr_id 20 already has a row of 2026-09") as raised, \
            engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(15, 150), (20, 201)]),
                          keep="invoice_id IS NOT NULL")
    assert raised.value.code == "rated_in_another_period"
    assert stored(engine) == before


@pytest.mark.postgres
def test_a_swap_waits_in_short_attempts_for_a_long_reader_then_gives_up(pg_engine, monkeypatch):
    """A swap that waits for a long reader lets the readers that come after it through between
    attempts (with one long wait, they would queue behind it), then gives up, changing nothing."""
    import threading

    engine = pg_engine
    with engine.begin() as connection:
        replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(1, 100)]),
                          keep="invoice_id IS NOT NULL")
    before = stored(engine)
    monkeypatch.setattr(partitions, "LOCK_ATTEMPT_MS", 300)
    monkeypatch.setattr(partitions, "LOCK_WAIT_S", 4.0)
    outcome = []

    def swap():
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("SET LOCAL lock_timeout = '7s'")  # the caller's own, kept
                replace_partition(connection, "rated_calls", "2026-10", ratings("2026-10", [(2, 200)]),
                                  keep="invoice_id IS NOT NULL")
                outcome.append(connection.exec_driver_sql("SHOW lock_timeout").scalar_one())
        except Exception as error:  # noqa: BLE001 - asserted below
            outcome.append(error)

    with engine.connect() as long_reader:
        long_reader.begin()
        assert long_reader.execute(text("SELECT count(*) FROM rated_calls")).scalar_one() == 1
        swapper = threading.Thread(target=swap)
        swapper.start()
        time.sleep(1.0)  # the swap is trying
        with engine.connect() as reader:  # comes after: through within about one attempt
            reader.exec_driver_sql("SET statement_timeout = '2s'")
            assert reader.execute(text("SELECT count(*) FROM rated_calls")).scalar_one() == 1
        swapper.join(timeout=30)
        long_reader.rollback()
    assert len(outcome) == 1 and isinstance(outcome[0], UnavailableError), outcome
    assert outcome[0].code == "table_in_use" and "rated_calls is in use" in str(outcome[0])
    assert stored(engine) == before
    swap()  # the reader gone: it goes through, and the caller's lock timeout is its own again
    assert outcome[1] == "7s"
    assert set(stored(engine)) == {2}


@pytest.mark.postgres
def test_production_and_credit_notes_wait_for_a_rating_under_way(pg_engine):
    """They change which ratings are billed, which a rating keeps as it read them."""
    import threading

    from workbench.billing.runs import lock_invoices
    from workbench.db.partitions import lock_partitions

    engine = pg_engine
    done = threading.Event()

    def issue():
        with engine.begin() as connection:
            lock_invoices(connection)
            done.set()

    with engine.begin() as rating:
        lock_partitions(rating, "rated_calls")
        issuer = threading.Thread(target=issue)
        issuer.start()
        assert not done.wait(1.0)  # waits while the rating is under way
    assert done.wait(10.0)  # the rating committed: it goes on
    issuer.join(timeout=10)


@pytest.mark.postgres
def test_two_months_rated_at_once_both_land(pg_engine, tmp_path):
    """Each rating waits for the other from its start (they read which ratings are billed):
    both land."""
    import threading

    from factories import native_cdrs, reference_folder

    from workbench import jobs
    from workbench.config import Settings
    from workbench.rated_calls import rate_period
    from workbench.reference import load_reference

    engine = pg_engine
    settings = Settings(database_url=str(engine.url.render_as_string(hide_password=False)))
    load_reference(engine, reference_folder(tmp_path / "reference"))
    rows = [[f"M{month}-{i}", f"2026-{month}-07T{10 + i // 60:02d}:{i % 60:02d}:00+02:00" if month == 10 else
             f"2026-{month}-07T{10 + i // 60:02d}:{i % 60:02d}:00+01:00", "+33145000001", "+33155000000", "60"]
            for month in (10, 11) for i in range(40)]
    path = tmp_path / "calls.csv"
    path.write_bytes(native_cdrs(rows))
    jobs.load_cdrs(engine, settings, [path], clock=lambda: datetime(2026, 12, 2))
    barrier, failures, summaries = threading.Barrier(2), [], {}

    def rate(period):
        try:
            barrier.wait(timeout=30)
            summaries[period] = rate_period(engine, period, settings, datetime(2026, 12, 2))
        except Exception as error:  # noqa: BLE001 - reported by the test
            failures.append(error)

    threads = [threading.Thread(target=rate, args=(p,)) for p in ("2026-10", "2026-11")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert {p: s.rated for p, s in summaries.items()} == {"2026-10": 40, "2026-11": 40}
    rated = all_ratings(engine)
    assert rated.groupby("period").size().to_dict() == {"2026-10": 40, "2026-11": 40}

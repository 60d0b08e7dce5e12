"""Every stored call names a loaded file: a foreign key from each block of calls
(``call_blocks``, :mod:`workbench.db.calls`) to its file, on both back-ends."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from workbench.db import calls as call_store

LOADED_AT = datetime(2026, 11, 2, 6, 0)
#: a refusal by the database: through SQLAlchemy, or from the driver itself
REFUSED = (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)


def add_file(connection, file_id: int) -> None:
    connection.execute(text(
        "INSERT INTO cdr_files (id, name, sha256, format, loaded_at, records, accepted, rejected) "
        "VALUES (:id, :name, :sha, 'native', :at, 0, 0, 0)"),
        {"id": file_id, "name": f"file-{file_id}.csv", "sha": f"{file_id:064d}", "at": LOADED_AT})


def calls(n: int, first_line: int = 2) -> pd.DataFrame:
    """``n`` calls, a minute apart, the first at 2026-10-01 08:00 UTC plus ``first_line`` minutes."""
    first = pd.Timestamp("2026-10-01 08:00") + pd.Timedelta(minutes=first_line)
    return pd.DataFrame({
        "line_no": range(first_line, first_line + n), "start_utc": pd.date_range(first, periods=n, freq="min"),
        "calling": 33145000001, "called": 33612345678, "duration_s": 60, "switch_id": "SW1"})


def store(connection, file_id: int, n: int, first_line: int = 2) -> None:
    call_store.lock(connection)
    call_store.append(connection, file_id, calls(n, first_line))


def counts(engine) -> tuple[int, int]:
    """Files, and calls stored."""
    with engine.connect() as connection:
        return (connection.execute(text("SELECT count(*) FROM cdr_files")).scalar_one(),
                connection.execute(text("SELECT coalesce(sum(calls), 0) FROM call_blocks")).scalar_one())


def test_calls_of_an_unknown_file_are_refused_and_nothing_of_the_transaction_is_stored(engine):
    with engine.begin() as connection:
        add_file(connection, 1)
        store(connection, 1, 2)
    # a block of calls of file 9, which was never loaded
    with pytest.raises(REFUSED) as caught, engine.begin() as connection:
        store(connection, 1, 1, first_line=10)
        store(connection, 9, 3, first_line=20)
    assert "FOREIGN KEY" in str(caught.value) or getattr(caught.value.orig, "sqlstate", "") == "23503"
    if engine.dialect.name == "postgresql":
        assert 'Key (file_id)=(9) is not present in table "cdr_files"' in str(caught.value)
    with pytest.raises(REFUSED), engine.begin() as connection:  # a block moved to an unknown file
        connection.execute(text("UPDATE call_blocks SET file_id = 7"))
    assert counts(engine) == (1, 2)


def test_a_file_with_calls_cannot_be_deleted_or_renumbered_one_without_can(engine):
    with engine.begin() as connection:
        add_file(connection, 1)
        add_file(connection, 2)
        store(connection, 1, 3)
    for statement in ("DELETE FROM cdr_files WHERE id = 1", "UPDATE cdr_files SET id = 3 WHERE id = 1"):
        with pytest.raises(REFUSED), engine.begin() as connection:
            connection.execute(text(statement))
    assert counts(engine) == (2, 3)
    with engine.begin() as connection:  # what a load changes of its file is not the id: allowed
        connection.execute(text("UPDATE cdr_files SET accepted = 3, records = 3 WHERE id = 1"))
        connection.execute(text("UPDATE cdr_files SET id = 4 WHERE id = 2"))  # no calls: allowed
        connection.execute(text("DELETE FROM cdr_files WHERE id = 4"))
    assert counts(engine) == (1, 3)


@pytest.mark.postgres
def test_truncating_the_files_is_refused_while_calls_refer_to_them(postgres_server):
    from conftest import new_postgres_database

    from workbench.db.engine import make_engine, upgrade

    engine = make_engine(new_postgres_database(postgres_server))
    upgrade(engine)
    try:
        with engine.begin() as connection:
            add_file(connection, 1)
            store(connection, 1, 1)
        with pytest.raises(sa.exc.NotSupportedError), engine.begin() as connection:
            connection.execute(text("TRUNCATE cdr_files, cdr_rejects"))
        assert counts(engine) == (1, 1)
        with engine.begin() as connection:  # the calls emptied in the same statement: allowed
            connection.execute(text("TRUNCATE cdr_files, cdr_rejects, call_blocks"))
        assert counts(engine) == (0, 0)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_file_whose_calls_are_being_stored_cannot_be_deleted_meanwhile(postgres_server):
    """The foreign key locks the file's row (``FOR KEY SHARE``): a delete of the file waits for
    the load's transaction, then sees its calls and is refused."""
    from conftest import new_postgres_database

    from workbench.db.engine import make_engine, upgrade

    engine = make_engine(new_postgres_database(postgres_server))
    upgrade(engine)
    try:
        with engine.begin() as connection:
            add_file(connection, 1)
        load = engine.connect()
        transaction = load.begin()
        store(load, 1, 2)  # stored, not committed
        with engine.connect() as other:  # the file looks unused to another transaction, but is locked
            other.execute(text("SET lock_timeout = '300ms'"))
            assert other.execute(text("SELECT count(*) FROM call_blocks")).scalar_one() == 0
            with pytest.raises(OperationalError, match="lock timeout"):
                other.execute(text("DELETE FROM cdr_files WHERE id = 1"))
            other.rollback()
        outcome = {}

        def delete() -> None:
            try:
                with engine.begin() as connection:
                    connection.execute(text("DELETE FROM cdr_files WHERE id = 1"))
                outcome["deleted"] = True
            except IntegrityError as exc:
                outcome["refused"] = str(exc.orig)

        waiting = threading.Thread(target=delete)
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive()  # waits for the load
        transaction.commit()
        load.close()
        waiting.join(10)
        assert "still referenced" in outcome.get("refused", "")
        assert counts(engine) == (1, 2)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_migrations_keep_the_calls_and_their_file_checks_both_ways(postgres_server):
    """Migration 0020 (the key of ``cdrs`` checked per statement by triggers) and 0022 (the
    calls moved into blocks with an ordinary key, the triggers gone), down and up again."""
    from alembic import command
    from conftest import new_postgres_database

    from workbench.db.engine import alembic_config, make_engine, upgrade

    engine = make_engine(new_postgres_database(postgres_server))
    upgrade(engine)

    def keys(table: str) -> list[str]:
        return [k["name"] for k in sa.inspect(engine).get_foreign_keys(table)]

    def triggers() -> list[str]:
        with engine.connect() as connection:
            return sorted(connection.execute(text(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class "
                "WHERE relname IN ('cdrs', 'cdr_files', 'call_blocks'))")).scalars())

    try:
        assert keys("call_blocks") == ["fk_call_blocks_file_id_cdr_files"] and triggers() == []
        with engine.begin() as connection:
            add_file(connection, 1)
            store(connection, 1, 2)
        command.downgrade(alembic_config(engine), "0021_no_period_index")
        assert keys("cdrs") == [] and triggers() == ["cdr_files_keep_calls", "cdr_files_keep_calls_truncate",
                                                     "cdrs_file_known_insert", "cdrs_file_known_update"]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM cdrs WHERE file_id = 1")).scalar_one() == 2
        with pytest.raises(REFUSED), engine.begin() as connection:  # the checks hold
            connection.execute(text("DELETE FROM cdr_files"))
        command.downgrade(alembic_config(engine), "0019_rated_calls_by_period")
        assert keys("cdrs") == ["fk_cdrs_file_id_cdr_files"] and triggers() == []
        upgrade(engine)
        assert keys("call_blocks") == ["fk_call_blocks_file_id_cdr_files"] and triggers() == []
        assert "cdrs" not in sa.inspect(engine).get_table_names()
        assert counts(engine) == (1, 2)
    finally:
        engine.dispose()

"""Every stored call names a loaded file: a foreign key on SQLite, triggers checked once per
statement on PostgreSQL (migration ``0020_calls_file_per_statement``). The guarantee is
the same on both back-ends; these tests hold it on each."""

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

from workbench.db.bulk import insert_frame

LOADED_AT = datetime(2026, 11, 2, 6, 0)
#: a refusal by the database: through SQLAlchemy, or from the driver itself (bulk storage)
REFUSED = (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)


def add_file(connection, file_id: int) -> None:
    connection.execute(text(
        "INSERT INTO cdr_files (id, name, sha256, format, loaded_at, records, accepted, rejected) "
        "VALUES (:id, :name, :sha, 'native', :at, 0, 0, 0)"),
        {"id": file_id, "name": f"file-{file_id}.csv", "sha": f"{file_id:064d}", "at": LOADED_AT})


def calls(file_ids: list[int], first_line: int = 2) -> pd.DataFrame:
    """One call per file id given, a minute apart, the first at 2026-10-01 08:00 UTC plus
    ``first_line`` minutes."""
    n = len(file_ids)
    first = pd.Timestamp("2026-10-01 08:00") + pd.Timedelta(minutes=first_line)
    return pd.DataFrame({
        "file_id": file_ids, "line_no": range(first_line, first_line + n),
        "start_utc": pd.date_range(first, periods=n, freq="min"),
        "calling": 33145000001, "called": 33612345678, "duration_s": 60, "switch_id": "SW1"})


def counts(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (connection.execute(text("SELECT count(*) FROM cdr_files")).scalar_one(),
                connection.execute(text("SELECT count(*) FROM cdrs")).scalar_one())


def test_calls_of_an_unknown_file_are_refused_and_nothing_of_the_statement_is_stored(engine):
    with engine.begin() as connection:
        add_file(connection, 1)
        insert_frame(connection, "cdrs", calls([1, 1]))
    # bulk storage (COPY on PostgreSQL): one call of 3 names file 9, which was never loaded
    with pytest.raises(REFUSED) as caught, engine.begin() as connection:
        insert_frame(connection, "cdrs", calls([1, 9, 1], first_line=10))
    assert "FOREIGN KEY" in str(caught.value) or getattr(caught.value, "sqlstate", "") == "23503"
    if engine.dialect.name == "postgresql":
        assert 'Key (file_id)=(9) is not present in table "cdr_files"' in str(caught.value)
    # one row at a time, and a call moved to an unknown file
    with pytest.raises(REFUSED), engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO cdrs (file_id, line_no, start_utc, calling, called, duration_s, switch_id) "
            "VALUES (5, 2, '2026-10-02 08:00:00', 33145000001, 33612345678, 30, '')"))
    with pytest.raises(REFUSED), engine.begin() as connection:
        connection.execute(text("UPDATE cdrs SET file_id = 7 WHERE line_no = 3"))
    assert counts(engine) == (1, 2)


def test_a_file_with_calls_cannot_be_deleted_or_renumbered_one_without_can(engine):
    with engine.begin() as connection:
        add_file(connection, 1)
        add_file(connection, 2)
        insert_frame(connection, "cdrs", calls([1, 1, 1]))
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
            insert_frame(connection, "cdrs", calls([1]))
        with pytest.raises(REFUSED), engine.begin() as connection:
            connection.execute(text("TRUNCATE cdr_files, cdr_rejects"))
        assert counts(engine) == (1, 1)
        with engine.begin() as connection:  # the calls emptied in the same statement: allowed
            connection.execute(text("TRUNCATE cdr_files, cdr_rejects, cdrs"))
        assert counts(engine) == (0, 0)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_file_whose_calls_are_being_stored_cannot_be_deleted_meanwhile(postgres_server):
    """The check locks the file's row as the foreign key's did (``FOR KEY SHARE``): a delete of
    the file waits for the load's transaction, then sees its calls and is refused."""
    from conftest import new_postgres_database

    from workbench.db.engine import make_engine, upgrade

    engine = make_engine(new_postgres_database(postgres_server))
    upgrade(engine)
    try:
        with engine.begin() as connection:
            add_file(connection, 1)
        load = engine.connect()
        transaction = load.begin()
        insert_frame(load, "cdrs", calls([1, 1]))  # stored, not committed
        with engine.connect() as other:  # the file looks unused to another transaction, but is locked
            other.execute(text("SET lock_timeout = '300ms'"))
            assert other.execute(text("SELECT count(*) FROM cdrs")).scalar_one() == 0
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
def test_the_migration_replaces_the_foreign_key_by_the_checks_and_back(postgres_server):
    from alembic import command
    from conftest import new_postgres_database

    from workbench.db.engine import alembic_config, make_engine, upgrade

    engine = make_engine(new_postgres_database(postgres_server))
    upgrade(engine)

    def keys() -> list[str]:
        return [k["name"] for k in sa.inspect(engine).get_foreign_keys("cdrs")]

    def triggers() -> list[str]:
        with engine.connect() as connection:
            return sorted(connection.execute(text(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid IN ('cdrs'::regclass, 'cdr_files'::regclass)")).scalars())

    try:
        assert keys() == [] and triggers() == ["cdr_files_keep_calls", "cdr_files_keep_calls_truncate",
                                               "cdrs_file_known_insert", "cdrs_file_known_update"]
        with engine.begin() as connection:
            add_file(connection, 1)
            insert_frame(connection, "cdrs", calls([1, 1]))
        command.downgrade(alembic_config(engine), "0019_rated_calls_by_period")
        assert keys() == ["fk_cdrs_file_id_cdr_files"] and triggers() == []
        with pytest.raises(REFUSED), engine.begin() as connection:  # the key holds again
            insert_frame(connection, "cdrs", calls([2], first_line=9))
        upgrade(engine)
        assert keys() == [] and len(triggers()) == 4
        assert counts(engine) == (1, 2)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_check_reads_its_own_tables_and_deletes_a_file_at_read_committed_only(postgres_server):
    """A temporary ``cdr_files`` (first in any search path) does not vouch for a file; a file is
    deleted at READ COMMITTED only: a transaction at REPEATABLE READ whose snapshot predates
    calls committed since would not see them (the foreign key would)."""
    from conftest import new_postgres_database

    from workbench.db.engine import make_engine, upgrade

    engine = make_engine(new_postgres_database(postgres_server))
    upgrade(engine)
    try:
        with engine.begin() as connection:
            add_file(connection, 1)
            add_file(connection, 2)
        with pytest.raises(REFUSED, match=r"Key \(file_id\)=\(9\) is not present"), engine.begin() as connection:
            connection.execute(text("CREATE TEMPORARY TABLE cdr_files (id integer) ON COMMIT DROP"))
            connection.execute(text("INSERT INTO cdr_files VALUES (9)"))
            insert_frame(connection, "cdrs", calls([9]))
        for level in ("REPEATABLE READ", "SERIALIZABLE"):
            late = engine.connect().execution_options(isolation_level=level.replace(" ", "_"))
            try:
                late.execute(text("SELECT count(*) FROM cdrs")).scalar_one()  # its snapshot: no calls
                with engine.begin() as connection:  # calls of file 2 committed meanwhile
                    insert_frame(connection, "cdrs", calls([2], first_line=20 if level == "SERIALIZABLE" else 10))
                with pytest.raises(sa.exc.DBAPIError, match="only READ COMMITTED may"):
                    late.execute(text("DELETE FROM cdr_files WHERE id = 2"))
                late.rollback()
            finally:
                late.close()
        assert counts(engine) == (2, 2)
    finally:
        engine.dispose()

"""Legal invoice numbering: ``F<year>-000001`` for invoices, ``A<year>-000001`` for credit notes.

Numbers are sequential per series and year and without gaps (French Commercial Code, art.
R123-237 and CGI annex II art. 242 nonies A: a unique number from a continuous sequence). They
are taken inside the transaction that issues the documents: the sequence row stays locked until
it commits, so concurrent runs wait and a rolled-back run gives its numbers back. Drafts of a
pre-production run are numbered ``PRE-<run>-0001`` and take no legal number.
"""

from __future__ import annotations

from sqlalchemy import Connection, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from workbench.db import schema as s

INVOICE_SERIES, CREDIT_NOTE_SERIES = "F", "A"


def take_numbers(connection: Connection, series: str, year: int, count: int) -> list[str]:
    """``count`` consecutive legal numbers of ``series`` and ``year``. The sequence row stays
    locked until the transaction ends, so concurrent runs wait and never skip or repeat."""
    dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(dialect_insert(s.NumberSequence).values(series=series, year=year, last_number=0)
                       .on_conflict_do_nothing(index_elements=["series", "year"]))
    last = connection.execute(
        update(s.NumberSequence).where(s.NumberSequence.series == series, s.NumberSequence.year == year)
        .values(last_number=s.NumberSequence.last_number + count).returning(s.NumberSequence.last_number)
    ).scalar_one()
    return [f"{series}{year}-{n:06d}" for n in range(last - count + 1, last + 1)]


def lock_numbering(connection: Connection, year: int) -> None:
    take_numbers(connection, INVOICE_SERIES, year, 0)



def draft_numbers(run_id: int, count: int) -> list[str]:
    """The numbers of a pre-production run's drafts: ``PRE-<run>-0001``... (no legal number)."""
    return [f"PRE-{run_id}-{i:04d}" for i in range(1, count + 1)]

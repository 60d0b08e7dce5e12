"""Legal invoice numbering: ``F<year>-000001`` for invoices, ``A<year>-000001`` for credit notes.

Numbers are sequential per series and year and without gaps (French Commercial Code, art.
R123-237 and CGI annex II art. 242 nonies A: a unique number from a continuous sequence). They
are taken inside the transaction that issues the documents: the sequence row stays locked until
it commits, so concurrent runs wait and a rolled-back run gives its numbers back. Drafts of a
pre-production run are numbered ``PRE-<run>-0001`` and take no legal number.

Numbers also follow the documents' dates: within a series and year, a document is never dated
before the last one issued (:func:`check_chronology`), so ``F2026-000003`` cannot be dated before
``F2026-000002``. A document that would break the order is refused, naming both dates; nothing
dates it later on its own (a production run issues the dates that were reviewed).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from workbench.db import schema as s
from workbench.errors import RefusedError

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


def last_issued(connection: Connection, series: str, year: int) -> tuple[str, date] | None:
    """The last issued document of ``series`` and ``year``: (number, date) of the latest dated one
    (the highest number among those of that date); None when the series has none yet."""
    row = connection.execute(
        select(s.Invoice.number, s.Invoice.invoice_date)
        .where(s.Invoice.status == "issued", s.Invoice.number.like(f"{series}{year}-%"))
        .order_by(s.Invoice.invoice_date.desc(), s.Invoice.number.desc()).limit(1)).first()
    return None if row is None else (row.number, row.invoice_date)


def check_chronology(connection: Connection, series: str, day: date, what: str, hint: str = "",
                     plural: bool = False) -> None:
    """Refuse to number ``what`` (e.g. ``"the invoices of run 4"``, ``plural``) dated ``day`` in ``series`` when the
    last issued document of that series and year is dated later: numbers must follow the dates
    (CGI annex II art. 242 nonies A: a continuous, chronological sequence).
    :class:`~workbench.errors.RefusedError` (code ``not_chronological``) naming both documents' dates,
    the date to use at the earliest and ``hint`` (how to change the date). Call it with the
    numbering locked (:func:`take_numbers` or :func:`lock_numbering`), in the issuing transaction."""
    last = last_issued(connection, series, day.year)
    if last is not None and day < last[1]:
        number, last_day = last
        raise RefusedError(f"{what} dated {day} would follow {number} dated {last_day}; "
                           f"date {'them' if plural else 'it'} {last_day} or later{hint}",
                           code="not_chronological")



def draft_numbers(run_id: int, count: int) -> list[str]:
    """The numbers of a pre-production run's drafts: ``PRE-<run>-0001``... (no legal number)."""
    return [f"PRE-{run_id}-{i:04d}" for i in range(1, count + 1)]

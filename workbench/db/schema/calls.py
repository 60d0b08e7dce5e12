"""Calls: CDR files, the blocks of calls they brought, rejected records, rated calls and calls not rated."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from workbench.db.schema.base import Base


class CdrFile(Base):
    __tablename__ = "cdr_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(80))  # native, asterisk or mapping:<name>
    loaded_at: Mapped[datetime] = mapped_column(DateTime)
    records: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)


class CallBlock(Base):
    """A block of accepted calls (:mod:`workbench.db.calls`, which alone reads and writes
    ``data``): up to a chunk of one file's calls of one UTC month, as a Parquet file. A call is
    the same call whatever file brought it: same calling and called numbers, start second and
    duration; each is stored once (the loads check it under :func:`workbench.db.calls.lock`).
    The call ids of a block run from ``first_id`` to ``last_id``; its calls start from
    ``start_min`` to ``start_max`` (naive UTC, inclusive)."""

    __tablename__ = "call_blocks"
    __table_args__ = (
        Index("ix_call_blocks_start", "start_min", "start_max"),
        Index("ix_call_blocks_ids", "first_id", "last_id"),
        Index("ix_call_blocks_file_id", "file_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("cdr_files.id"))
    first_id: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    calls: Mapped[int] = mapped_column(Integer)
    start_min: Mapped[datetime] = mapped_column(DateTime)
    start_max: Mapped[datetime] = mapped_column(DateTime)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CdrReject(Base):
    """A CDR record that was not accepted, with the reason.

    ``status``: ``final`` (the record itself is bad, or a duplicate), ``pending`` (a reason a
    reference fix can cure, such as ``unknown_line``: kept, with the call's typed fields, to be
    re-processed), ``accepted`` (cured: it became the call ``cdr_id``) or ``duplicate`` (cured,
    but the call ``cdr_id`` was already stored). ``resolved_at``: when it was re-processed into
    one of the last two. ``start_utc`` is kept for a duplicate too, so that it counts in
    its period's balance."""

    __tablename__ = "cdr_rejects"
    __table_args__ = (Index("ix_cdr_rejects_file_id", "file_id"), Index("ix_cdr_rejects_status", "status"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("cdr_files.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="final", server_default="final")
    # the call as read (set for the pending reasons only): as a stored call (workbench.db.calls)
    start_utc: Mapped[datetime | None] = mapped_column(DateTime)
    calling: Mapped[int | None] = mapped_column(BigInteger)
    called: Mapped[int | None] = mapped_column(BigInteger)
    duration_s: Mapped[int | None] = mapped_column(Integer)
    switch_id: Mapped[str | None] = mapped_column(String(64))
    cdr_id: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)


class RatedCall(Base):
    """The rating of one billed call, with the production invoice that bills it (``invoice_id``);
    such a rating is never replaced by a re-rating. Unbilled ratings are blocks
    (:class:`RatingBlock`); a production run moves the ratings it bills here
    (:func:`workbench.db.ratings.bill`).

    On PostgreSQL the table is partitioned by ``period`` (:mod:`workbench.db.partitions`) and its
    primary key is (cdr_id, period), the partition key being part of every unique key there; one
    rating per call is then checked when a month is stored
    (:func:`workbench.db.partitions.replace_partition`)."""

    __tablename__ = "rated_calls"
    __table_args__ = (
        Index("ix_rated_calls_period", "period"),
        # what a run bills: a customer's unbilled ratings up to its period (late calls included)
        Index("ix_rated_calls_unbilled", "customer_id", "period", sqlite_where=text("invoice_id IS NULL"),
              postgresql_where=text("invoice_id IS NULL")),
        # an invoice's calls (its details, its PDF), and the calls billed that a rating keeps
        Index("ix_rated_calls_invoice_id", "invoice_id", sqlite_where=text("invoice_id IS NOT NULL"),
              postgresql_where=text("invoice_id IS NOT NULL")),
    )
    # the call is the key: one rating per call (and on SQLite no second index to keep up)
    cdr_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    period: Mapped[str] = mapped_column(String(7))
    customer_id: Mapped[int] = mapped_column(Integer)
    destination_prefix: Mapped[str] = mapped_column(String(15))
    zone_code: Mapped[str] = mapped_column(String(40))
    band: Mapped[str] = mapped_column(String(20))
    duration_s: Mapped[int] = mapped_column(Integer)
    allowance_s: Mapped[int] = mapped_column(Integer)
    price_units: Mapped[int] = mapped_column(BigInteger)
    rate_id: Mapped[int | None] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(40))
    rated_at: Mapped[datetime] = mapped_column(DateTime)
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)


class RatingBlock(Base):
    """A block of unbilled ratings of a period (:mod:`workbench.db.ratings`, which alone reads
    and writes ``data``): up to 200,000 ratings, by customer and call, as a Parquet file, with
    the range of their customers and call ids (inclusive) and the time of their rating. A rating
    of the period replaces its blocks; a production run moves the ratings it bills into
    :class:`RatedCall` rows."""

    __tablename__ = "rating_blocks"
    __table_args__ = (
        Index("ix_rating_blocks_period", "period", "customer_min"),
        Index("ix_rating_blocks_ids", "cdr_min", "cdr_max"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7))
    customer_min: Mapped[int] = mapped_column(Integer)
    customer_max: Mapped[int] = mapped_column(Integer)
    cdr_min: Mapped[int] = mapped_column(BigInteger)
    cdr_max: Mapped[int] = mapped_column(BigInteger)
    ratings: Mapped[int] = mapped_column(Integer)
    rated_at: Mapped[datetime] = mapped_column(DateTime)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RatingError(Base):
    """A call of a period that could not be rated, with the cause."""

    __tablename__ = "rating_errors"
    __table_args__ = (Index("ix_rating_errors_period", "period"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    cdr_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    period: Mapped[str] = mapped_column(String(7))
    reason: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)


"""Declarative CSV mappings: how to read another switch's or carrier's CDR export without code.

A mapping is a TOML file (read with :mod:`tomllib`; the format is described in
``data/README.md``, and ``data/mappings/freeswitch_cdr_csv.toml`` is an example)::

    name = "freeswitch_cdr_csv"          # required; the files are stored as format "mapping:<name>"
    delimiter = ","                      # one character (default ",")
    quote = '"'                          # one character (default '"')
    header = false                       # does the first line name the columns? (default false)
    encoding = "utf-8"                   # a Python codec name (default "utf-8")
    names = ["caller_id_name", ...]      # without header: the columns' names, in order (optional)
    time_format = "%Y-%m-%d %H:%M:%S"    # strftime format, "iso" (ISO 8601, offsets honoured) or "epoch"
    timezone = "local"                   # "local" (setting timezone), "UTC", or a zone name such as "Europe/Paris"

    [columns]                            # a column's name (header or names) or its 1-based position
    calling = "caller_id_number"         # required
    called = "destination_number"        # required
    start = "start_stamp"                # required
    duration = "billsec"                 # the billed seconds; or answer and end (below), not both
    # answer = "answer_stamp"            # billed seconds = end - answer (empty answer: unanswered, 0 s)
    # end = "end_stamp"
    call_id = "uuid"                     # optional: the switch's identifier of the call

    [filter]                             # optional: the records kept; the others are rejected (excluded)
    column = "hangup_cause"
    keep = ["NORMAL_CLEARING"]

Pure: :func:`parse_mapping` reads the text and raises :class:`~workbench.errors.InputError`
(code ``bad_mapping``) naming the file and the key at fault.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workbench.errors import InputError

#: the roles a column can have, in the ``[columns]`` table
ROLES = ("calling", "called", "start", "duration", "answer", "end", "call_id")
TOP_KEYS = ("name", "description", "delimiter", "quote", "header", "encoding", "names", "time_format",
            "timezone", "columns", "filter")
ISO = "iso"
EPOCH = "epoch"
LOCAL = "local"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,60}")

Column = str | int  # a name, or a 1-based position


@dataclass(frozen=True)
class CsvMapping:
    """A validated mapping (see the module's documentation for each field)."""

    name: str
    calling: Column
    called: Column
    start: Column
    duration: Column | None = None
    answer: Column | None = None
    end: Column | None = None
    call_id: Column | None = None
    delimiter: str = ","
    quote: str = '"'
    header: bool = False
    encoding: str = "utf-8"
    names: tuple[str, ...] = ()
    time_format: str = "%Y-%m-%d %H:%M:%S"
    timezone: str = LOCAL
    filter_column: Column | None = None
    filter_keep: tuple[str, ...] = field(default_factory=tuple)
    source: str = ""

    @property
    def format(self) -> str:
        """The format name the files read with this mapping are stored under."""
        return f"mapping:{self.name}"

    def columns(self) -> dict[str, Column]:
        """The columns used, by role (``filter`` for the filter's column)."""
        used = {role: getattr(self, role) for role in ROLES if getattr(self, role) is not None}
        if self.filter_column is not None:
            used["filter"] = self.filter_column
        return used


def _error(source: str, key: str, problem: str) -> InputError:
    return InputError(f"key {key!r} {problem}", source=source, code="bad_mapping")


def _text(data: dict, key: str, source: str, default: str | None = None, one_char: bool = False) -> str:
    value = data.get(key, default)
    if value is None:
        raise _error(source, key, "is required")
    if not isinstance(value, str):
        raise _error(source, key, f"{value!r} is not text")
    if one_char and len(value) != 1:
        raise _error(source, key, f"{value!r} is not one character")
    return value


def parse_mapping(text: str, source: str = "mapping") -> CsvMapping:
    """The mapping written in ``text`` (TOML), checked; ``source`` names it in errors.

    Raises :class:`~workbench.errors.InputError` (``bad_mapping``, the message naming the key) for TOML
    that does not parse, an unknown key, a missing or badly typed value, a column given both as
    ``duration`` and ``answer``/``end``, a column name without ``header`` or ``names``, an unknown
    time zone or codec."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not TOML ({exc})", source=source, code="bad_mapping") from None
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise _error(source, unknown[0], f"is unknown; the keys are {', '.join(TOP_KEYS)}")
    name = _text(data, "name", source)
    if not _NAME.fullmatch(name):
        raise _error(source, "name", f"{name!r} is not 1 to 60 letters, digits, '_', '.' or '-'")
    delimiter = _text(data, "delimiter", source, ",", one_char=True)
    quote = _text(data, "quote", source, '"', one_char=True)
    if delimiter == quote:
        raise _error(source, "quote", "is the delimiter")
    header = data.get("header", False)
    if not isinstance(header, bool):
        raise _error(source, "header", f"{header!r} is not true or false")
    encoding = _text(data, "encoding", source, "utf-8")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise _error(source, "encoding", f"{encoding!r} is not a known encoding (e.g. utf-8, cp1252)") from None
    names = data.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise _error(source, "names", "is not a list of column names")
    if len(set(names)) != len(names):
        raise _error(source, "names", "names a column twice")
    if header and names:
        raise _error(source, "names", "is for files without header (header = false)")
    time_format = _text(data, "time_format", source, "%Y-%m-%d %H:%M:%S")
    if time_format not in (ISO, EPOCH) and "%" not in time_format:
        raise _error(source, "time_format", f"{time_format!r} is not a strftime format (%Y-%m-%d %H:%M:%S), "
                     f"{ISO!r} or {EPOCH!r}")
    timezone = _text(data, "timezone", source, LOCAL)
    if timezone != LOCAL:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise _error(source, "timezone", f"{timezone!r} is not a time zone (UTC, Europe/Paris) "
                         f"nor {LOCAL!r}") from None

    def column(table: dict, key: str, where: str) -> Column | None:
        value = table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _error(source, where, f"{value!r} is not a column name or position")
        if isinstance(value, int):
            if value < 1 or (names and value > len(names)):
                raise _error(source, where, f"position {value} is not a column (1 to {len(names) or 'n'})")
            return value
        if not header and not names:
            raise _error(source, where, f"{value!r} is a name, but the file has no header and the mapping "
                         "no names: give a position (1 for the first column)")
        if names and value not in names:
            raise _error(source, where, f"{value!r} is not one of names")
        return value

    columns = data.get("columns")
    if not isinstance(columns, dict):
        raise _error(source, "columns", "is required: a table naming the calling, called and start columns")
    unknown = sorted(set(columns) - set(ROLES))
    if unknown:
        raise _error(source, f"columns.{unknown[0]}", f"is unknown; the keys are {', '.join(ROLES)}")
    roles = {role: column(columns, role, f"columns.{role}") for role in ROLES}
    for role in ("calling", "called", "start"):
        if roles[role] is None:
            raise _error(source, f"columns.{role}", "is required")
    timed = roles["answer"] is not None or roles["end"] is not None
    if roles["duration"] is not None and timed:
        raise _error(source, "columns.duration", "given with answer/end: give one or the other")
    if roles["duration"] is None and not (roles["answer"] is not None and roles["end"] is not None):
        raise _error(source, "columns.duration", "is required (the billed seconds), or both answer and end")
    filter_column, keep = None, ()
    if "filter" in data:
        table = data["filter"]
        if not isinstance(table, dict):
            raise _error(source, "filter", "is not a table (column, keep)")
        unknown = sorted(set(table) - {"column", "keep"})
        if unknown:
            raise _error(source, f"filter.{unknown[0]}", "is unknown; the keys are column, keep")
        filter_column = column(table, "column", "filter.column")
        if filter_column is None:
            raise _error(source, "filter.column", "is required")
        values = table.get("keep")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise _error(source, "filter.keep", "is not a list of the values kept")
        keep = tuple(values)
    return CsvMapping(
        name=name, delimiter=delimiter, quote=quote, header=header, encoding=encoding, names=tuple(names),
        time_format=time_format, timezone=timezone, filter_column=filter_column, filter_keep=keep,
        source=source, **roles,
    )

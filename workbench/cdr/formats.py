"""Reading CDR files into frames of text fields, and checking their records.

Two steps, both pure:

* :func:`parse` reads a file's bytes (plain or gzip) into one row per record, all fields as
  text, or raises :class:`~workbench.errors.InputError` naming the file and line when the file itself is
  malformed (not UTF-8, missing columns, wrong number of fields such as a truncated last line);
* :func:`check` turns those text fields into typed call candidates (UTC start, E.164 numbers,
  seconds) and rejects each bad record with a reason and a message.

Formats: ``native`` (our header), ``asterisk`` (Master.csv, 16 to 21 fields; local times, or UTC
for ``usegmtime=yes``), and any CSV read through a :class:`~workbench.cdr.mapping.CsvMapping`.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from isal import igzip, isal_zlib

from workbench.cdr.mapping import EPOCH, ISO, LOCAL, CsvMapping
from workbench.errors import InputError
from workbench.phone_numbers import from_digits, normalise_digits, to_digits

NATIVE = "native"
ASTERISK = "asterisk"
MAPPING = "mapping"  # a declarative CSV mapping (:mod:`workbench.cdr.mapping`), stored as mapping:<name>
FORMATS = (NATIVE, ASTERISK)
NATIVE_COLUMNS = ["call_id", "start_time", "calling", "called", "duration_s"]
#: Master.csv's fields in the order cdr_csv writes them: 16 always, then ``uniqueid`` and
#: ``userfield`` (``loguniqueid``, ``loguserfield``), then ``peeraccount``, ``linkedid`` and
#: ``sequence`` (``newcdrcolumns=yes``)
ASTERISK_COLUMNS = [
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "userfield", "peeraccount", "linkedid", "sequence",
]
ASTERISK_MIN_FIELDS = 16
#: how Asterisk's times are read (setting ``asterisk_times``): the switch's local time (the
#: ``timezone`` setting), or UTC (``usegmtime=yes`` in ``cdr.conf``)
ASTERISK_TIMES = ("local", "utc")
#: the fields of each format that :func:`check` uses: switch id, start, calling, called, seconds
_FIELDS = {
    NATIVE: ("call_id", "start_time", "calling", "called", "duration_s"),
    ASTERISK: ("uniqueid", "start", "src", "dst", "billsec"),
}
#: how each format writes its times: ``iso`` (ISO 8601, an offset honoured) or a strftime format
_TIME_FORMATS = {NATIVE: "iso", ASTERISK: "%Y-%m-%d %H:%M:%S"}
REJECT_COLUMNS = ["line_no", "reason", "message", "raw"]
CANDIDATE_COLUMNS = ["line_no", "start_utc", "calling", "called", "duration_s", "switch_id"]
#: the key of a call: the same calling and called numbers, start second and duration (a file's
#: repeated calls here, the calls stored before it in the integration)
CALL_KEY = ["calling", "called", "start_utc", "duration_s"]
_LINE_END = re.compile(r"(\r\n|\r|\n)")  # the line ends the csv module counts, no others
#: records per chunk when a file is read (:func:`read_chunks`): memory is bounded by a chunk
CHUNK_RECORDS = 200_000
_BLOCK = 1 << 20  # bytes read at a time
SWITCH_ID_LENGTH = 64  # switch identifiers are kept whole, for reference: a longer one is a bad_call_id
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_OFFSET = re.compile(r"(?:Z|[+-][0-9]{2}:?[0-9]{2})$")
#: the usual ISO 8601 time of a switch: to the second, with ``Z`` or an offset of at most 14
#: hours (every zone in use): read by a fixed format and the offset's arithmetic, the others by
#: pandas' ISO 8601 parser (the same instant either way)
_ISO_SECONDS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                          r"(?:Z|[+-](?:0[0-9]|1[0-4]):[0-5][0-9])")
#: Asterisk's uniqueid: ``[system name-]<epoch seconds when the channel was created>.<counter>``
_UNIQUEID_EPOCH = re.compile(r"^(?:.*-)?([0-9]{9,11})\.[0-9]+$")
#: how long before the start of its call a channel may have been created, for its uniqueid to
#: tell which of the two repeated hours the call started in
_UNIQUEID_LEAD = pd.Timedelta(hours=6)


#: what reading a damaged or truncated gzip stream raises (ISA-L's inflate, python-isal's
#: ``igzip``: the gzip format of the standard library's module, about three times as fast)
_GZIP_ERRORS = (OSError, EOFError, zlib.error, isal_zlib.error)


def _gunzipped(source: BinaryIO) -> BinaryIO:
    """The decompressed stream of a gzip file's bytes (all its members, as ``gzip`` reads them)."""
    return igzip.IGzipFile(fileobj=source, mode="rb")  # type: ignore[return-value]


def file_error(file: str, line: int | None, problem: str) -> InputError:
    """The error of a CDR file that cannot be read as a whole (nothing of it is stored)."""
    return InputError(problem, source=file, line=line, code="bad_cdr_file")


@dataclass(frozen=True)
class ParsedFile:
    name: str
    format: str  # native, asterisk, or mapping:<name>
    records: pd.DataFrame  # line_no, raw, and the format's columns as text
    mapping: CsvMapping | None = None


def _lines(name: str, source: BinaryIO, encoding: str = "utf-8") -> Iterator[str]:
    """The text lines of a file's bytes (plain or gzip, read ``_BLOCK`` bytes at a time), each
    with its line end (``\\r\\n``, ``\\r`` or ``\\n``, the ones the csv module counts), a
    leading byte order mark removed. Raises :class:`InputError` naming the file (and line) for a
    damaged gzip stream, text not in ``encoding`` or a NUL byte."""
    head = source.read(2)
    stream: BinaryIO = source
    gzipped = head == b"\x1f\x8b"
    source.seek(0)
    if gzipped:
        stream = _gunzipped(source)
    decoder = codecs.getincrementaldecoder(encoding)()
    target = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
    newlines = 0  # "\n" decoded so far: the line of a problem
    pending, first, final = "", True, False
    while not final:
        try:
            block = stream.read(_BLOCK)
        except _GZIP_ERRORS as exc:
            if not gzipped:
                raise file_error(name, None, f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
            raise file_error(name, None, f"not a valid gzip file: damaged or truncated ({exc or type(exc).__name__}); "
                             "nothing of it is stored") from None
        final = not block
        try:
            text = decoder.decode(block, final)
        except UnicodeDecodeError as exc:
            line = newlines + bytes(exc.object[: exc.start]).count(b"\n") + 1
            raise file_error(
                name, line, f"not {target} text (byte 0x{exc.object[exc.start]:02x}); convert the file to {target}"
            ) from None
        if "\x00" in text:  # never in a text file: a damaged file, or not CSV at all
            line = newlines + text[: text.index("\x00")].count("\n") + 1
            raise file_error(name, line, "a NUL byte in the text; the file is damaged or not CSV")
        newlines += text.count("\n")
        if first and text:
            text, first = text.removeprefix("\ufeff"), False
        parts = _LINE_END.split(pending + text)  # text, end, text, end, ..., the rest
        pending = parts.pop()
        if not pending and parts and parts[-1] == "\r" and not final:  # perhaps the first half of "\r\n"
            end = parts.pop()
            pending = parts.pop() + end
        for i in range(0, len(parts), 2):
            yield parts[i] + parts[i + 1]
    if pending:
        yield pending


def detect_format(first_line: str) -> str:
    """``native`` when the first line is our header, else ``asterisk`` (which has none)."""
    header = [c.strip().lower() for c in next(csv.reader([first_line]), [])]
    return NATIVE if "start_time" in header or "call_id" in header else ASTERISK


def _mapped_columns(name: str, mapping: CsvMapping, header: list[str] | None, width: int) -> list[str]:
    """The labels of a mapped file's columns: its header, the mapping's names, or ``column N``;
    an :class:`InputError` naming the file when a column the mapping uses is not in it."""
    if header is not None:
        columns = header
    elif mapping.names:
        columns = list(mapping.names)
    else:
        columns = [f"column {i}" for i in range(1, width + 1)]
    for role, column in mapping.columns().items():
        if isinstance(column, int):
            if column > len(columns):
                raise file_error(name, 1, f"{len(columns)} fields, but the mapping {mapping.name!r} takes "
                                 f"{role} from column {column}")
        elif column not in columns:
            raise file_error(name, 1, f"no column {column!r} ({role} of the mapping {mapping.name!r}); "
                             f"the columns are {columns}")
    return columns


def mapped_field(mapping: CsvMapping, columns: list[str], column) -> str:
    """The label of a mapping's column (a name, or a 1-based position) among ``columns``."""
    return columns[column - 1] if isinstance(column, int) else column


def parse(name: str, data: bytes, fmt: str = "auto", mapping: CsvMapping | None = None) -> ParsedFile:
    """Read a CDR file's bytes into text fields, one row per record (the whole file in one frame:
    :func:`read_chunks` reads a file of any size in bounded memory).

    ``fmt``: ``auto`` (our header, else Asterisk), ``native`` or ``asterisk``; with ``mapping``
    the file is read as the mapping says (``fmt`` is then ignored). Raises
    :class:`~workbench.errors.InputError` (``bad_cdr_file``) naming the file and line."""
    return next(read_chunks(name, io.BytesIO(data), fmt, mapping, chunk_records=None))


class _Lines:
    """The lines of a file as the csv module reads them, keeping the text of each record: the
    lines read since :meth:`take` (without their ends), and whether the last line had an end."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self._taken: list[str] = []
        self.ended = True

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        stripped = line.rstrip("\r\n")
        self.ended = len(stripped) != len(line)
        self._taken.append(stripped)
        return line

    def take(self) -> str:
        raw = "\n".join(self._taken)
        self._taken.clear()
        return raw

    def at_end(self) -> bool:
        """Whether no line is left (reads one more line to know: only when stopping)."""
        try:
            next(self._lines)
        except (StopIteration, InputError):
            return True
        return False


class _NotPlain(Exception):
    """A file the columnar reader leaves to the csv module (:func:`_read_chunks_by_line`)."""


#: a line of plain CSV: fields unquoted (no quote, no comma) or quoted (quotes doubled inside)
_PLAIN_CSV_LINE = r'^(?:[^",]*|"(?:[^"]|"")*")(?:,(?:[^",]*|"(?:[^"]|"")*"))*$'


def _plain_chunk(data: bytes, columns: list[str], first_line: int) -> pd.DataFrame:
    """The records of ``data`` (whole lines of plain CSV, one record each) parsed by Arrow's CSV
    reader into the frame :func:`_read_chunks_by_line` gives for them (``line_no`` from
    ``first_line``, ``raw`` the line, the columns as text). Raises :class:`_NotPlain` for
    anything else: a carriage return, a NUL byte, an empty line, text not UTF-8, a line that is
    not plain CSV (say, a quote inside an unquoted field) or of another number of fields."""
    if b"\r" in data or b"\x00" in data:
        raise _NotPlain
    view = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(view == 10)
    if not len(ends) or ends[-1] != len(data) - 1:
        ends = np.append(ends, len(data))  # the last line of the file, without its end
    starts = np.concatenate([[0], ends[:-1] + 1])
    if (ends == starts).any():
        raise _NotPlain  # a blank line: skipped by the csv module, counted in its line numbers
    lines = _slices(data, starts, ends)
    try:
        lines = lines.cast(pa.string())  # checks the UTF-8
    except pa.ArrowInvalid:
        raise _NotPlain from None
    if b'"' in data:  # a line without a quote is plain CSV whatever its commas
        if not pc.all(pc.match_substring_regex(lines, _PLAIN_CSV_LINE)).as_py():
            raise _NotPlain
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=columns, block_size=max(len(data) + 1, 1 << 20)),
            parse_options=pacsv.ParseOptions(quote_char='"', double_quote=True, escape_char=False,
                                             newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _NotPlain from None
    if table.num_rows != len(lines):
        raise _NotPlain
    records = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    records.insert(0, "line_no", np.arange(first_line, first_line + len(lines), dtype=np.int64))
    records.insert(1, "raw", pd.Series(pd.arrays.ArrowStringArray(lines), dtype=pd.StringDtype()))
    return records


def _slices(data: bytes, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The lines of ``data`` as a binary array, without their ends and without a copy per line:
    ``ends`` are the places of every ``\\n`` in ``data`` (and its length when the last line has
    no end), ``starts`` the place after each previous end."""
    # the lines are consecutive, each followed by one end byte ``\n`` (no other in a line): an
    # array over all of ``data`` whose offsets skip the end bytes needs a copy without them
    text = data.replace(b"\n", b"")
    lengths = (ends - starts).astype(np.int64)
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(starts), [None, pa.py_buffer(offsets),
                                                                             pa.py_buffer(text)])


def _read_plain_chunks(name: str, source: BinaryIO, fmt: str, chunk_records: int | None,
                       first_records: int | None = None) -> Iterator[ParsedFile]:
    """:func:`_read_chunks_by_line` for the usual files, by Arrow's CSV reader: a native or
    Asterisk file, plain or gzip, UTF-8, each record on one line of plain CSV ending in ``\n``.
    The same chunks, the same frames; raises :class:`_NotPlain` as soon as a chunk is not
    such (the caller reads the rest with the csv module)."""
    head = source.read(2)
    source.seek(0)
    stream: BinaryIO = _gunzipped(source) if head == b"\x1f\x8b" else source
    pending = b""
    try:
        first = stream.readline()
    except _GZIP_ERRORS:
        raise _NotPlain from None
    first = first.removeprefix(b"\xef\xbb\xbf")
    if not first.strip() or b"\r" in first:
        raise _NotPlain
    try:
        first_text = first.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError:
        raise _NotPlain from None
    fmt = detect_format(first_text) if fmt == "auto" else fmt
    if fmt == NATIVE:
        header = [c.strip().lower() for c in next(csv.reader([first_text]))]
        if [c for c in NATIVE_COLUMNS if c not in header] or len(set(header)) < len(header) or (
                {"line_no", "raw"} & set(header)):
            raise _NotPlain
        columns, line_no = header, 2
    elif fmt == ASTERISK:
        width = len(next(csv.reader([first_text]), []))
        if not ASTERISK_MIN_FIELDS <= width <= len(ASTERISK_COLUMNS):
            raise _NotPlain
        columns, line_no, pending = ASTERISK_COLUMNS[:width], 1, first
    else:
        raise _NotPlain
    limit = (first_records or chunk_records) if chunk_records else 0
    given = 0
    parts: list[bytes] = [pending] if pending else []
    lines = pending.count(b"\n")
    final = False
    while not final:
        try:
            block = stream.read(_BLOCK)
        except _GZIP_ERRORS:
            raise _NotPlain from None
        final = not block
        if block:
            parts.append(block)
            lines += block.count(b"\n")
        while parts and ((limit and lines >= limit) or final):
            data = b"".join(parts)
            if limit and lines >= limit:  # cut after the limit-th line end
                cut = int(np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)[limit - 1]) + 1
                data, rest = data[:cut], data[cut:]
            else:
                rest = b""
            parts, lines = ([rest] if rest else []), rest.count(b"\n")
            if not data:
                break
            records = _plain_chunk(data, columns, line_no)
            line_no += len(records)
            if fmt == ASTERISK and "uniqueid" not in records:
                records["uniqueid"] = ""
            given += 1
            limit = chunk_records or 0
            yield ParsedFile(name, fmt, records)
            if final and not parts:
                break
    if not given:
        records = pd.DataFrame(columns=columns, dtype="string")
        records.insert(0, "line_no", np.array([], dtype=np.int64))
        records.insert(1, "raw", pd.Series([], dtype=object))
        if fmt == ASTERISK and "uniqueid" not in records:
            records["uniqueid"] = ""
        yield ParsedFile(name, fmt, records)


def read_chunks(name: str, source: BinaryIO, fmt: str = "auto", mapping: CsvMapping | None = None,
                chunk_records: int | None = CHUNK_RECORDS, first_records: int | None = None
                ) -> Iterator[ParsedFile]:
    """Read a CDR file (plain or gzip, from a seekable binary stream) into frames of text fields
    of at most ``chunk_records`` records each (``None``: one frame), the first of at most
    ``first_records`` if given (a reader that works on chunks as they come starts sooner), so
    that memory is bounded by a chunk, not by the file. Each chunk's ``records`` has ``line_no``,
    ``raw`` and the format's columns; a file without records gives one empty chunk.

    ``fmt``: ``auto`` (our header, else Asterisk), ``native`` or ``asterisk``; with ``mapping``
    the file is read as the mapping says (``fmt`` is then ignored). Raises
    :class:`~workbench.errors.InputError` (``bad_cdr_file``) naming the file and line, possibly
    after chunks were given: the caller stores a file's chunks in one transaction.

    Native and Asterisk files of plain CSV lines are read by Arrow's CSV reader (no Python per
    record); any other file, or the rest of a file from its first chunk that is not such, by the
    csv module line by line (:func:`_read_chunks_by_line`): the chunks are the same either way.
    :class:`ValueError` for ``chunk_records`` or ``first_records`` under 1 (``first_records``
    counts only with ``chunk_records``)."""
    if (chunk_records is not None and chunk_records < 1) or (first_records is not None and first_records < 1):
        raise ValueError(f"chunks of {chunk_records} records, the first of {first_records}: at least 1 each")
    given = 0
    if mapping is None and fmt in ("auto", *FORMATS):
        try:
            for chunk in _read_plain_chunks(name, source, fmt, chunk_records, first_records):
                given += 1
                yield chunk
            return
        except _NotPlain:
            source.seek(0)
    for number, chunk in enumerate(_read_chunks_by_line(name, source, fmt, mapping, chunk_records, first_records)):
        if number >= given:
            yield chunk


def _read_chunks_by_line(name: str, source: BinaryIO, fmt: str = "auto", mapping: CsvMapping | None = None,
                         chunk_records: int | None = CHUNK_RECORDS, first_records: int | None = None
                         ) -> Iterator[ParsedFile]:
    """Read a CDR file (plain or gzip, from a binary stream) into frames of text fields of at most
    ``chunk_records`` records each (``None``: one frame), so that memory is bounded by a chunk,
    not by the file. Each chunk's ``records`` has ``line_no``, ``raw`` and the format's columns;
    a file without records gives one empty chunk.

    ``fmt``: ``auto`` (our header, else Asterisk), ``native`` or ``asterisk``; with ``mapping``
    the file is read as the mapping says (``fmt`` is then ignored). Raises
    :class:`~workbench.errors.InputError` (``bad_cdr_file``) naming the file and line, possibly
    after chunks were given: the caller stores a file's chunks in one transaction.

    The reference reader, line by line through the csv module: :func:`read_chunks` uses it for
    the files (or the rest of a file) the columnar reader does not take."""
    lines = _lines(name, source, mapping.encoding if mapping else "utf-8")
    head: list[str] = []
    for line in lines:  # up to the first line that is not blank
        head.append(line)
        if line.strip():
            break
    if not any(line.strip() for line in head):
        raise file_error(name, None, "the file is empty")
    first_line = head[0].rstrip("\r\n")
    if mapping is not None:
        fmt = mapping.format
    elif fmt == "auto":
        fmt = detect_format(first_line)
    if mapping is None and fmt not in FORMATS:
        raise file_error(name, None, f"unknown format {fmt!r}; expected one of {FORMATS}")
    dialect = {"delimiter": mapping.delimiter, "quotechar": mapping.quote} if mapping else {}
    physical = _Lines(itertools.chain(head, lines))
    reader = csv.reader(physical, strict=True, **dialect)
    rows: list[list[str]] = []
    line_nos: list[int] = []
    raws: list[str] = []
    given = 0
    limit = (first_records or chunk_records) if chunk_records is not None else None

    def chunk() -> ParsedFile:
        if columns is None:  # a mapped file without header, names or records
            labels: list[str] = []
        else:
            labels = columns
        reserved = [c for c in ("line_no", "raw") if c in labels]
        if reserved:
            raise file_error(name, 1, f"a column is named {reserved[0]!r}, a name kept for the record's line and text")
        if len(set(labels)) < len(labels):
            twice = sorted({c for c in labels if labels.count(c) > 1})
            raise file_error(name, 1, f"the header names {twice} twice")
        records = pd.DataFrame(rows, columns=labels, dtype="string") if rows else pd.DataFrame(
            columns=labels, dtype="string")
        records.insert(0, "line_no", np.array(line_nos, dtype=np.int64))
        records.insert(1, "raw", pd.Series(raws, dtype=object))
        if fmt == ASTERISK and "uniqueid" not in records:
            records["uniqueid"] = ""
        rows.clear()
        line_nos.clear()
        raws.clear()
        return ParsedFile(name, fmt, records, mapping)

    columns: list[str] | None
    try:
        if fmt == NATIVE:
            header = [c.strip().lower() for c in next(reader)]
            missing = [c for c in NATIVE_COLUMNS if c not in header]
            if missing:
                raise file_error(name, 1, f"missing columns {missing}; the header is {header}")
            columns, width = header, len(header)
        elif mapping is not None and mapping.header:
            header = [c.strip() for c in next(reader)]
            columns, width = _mapped_columns(name, mapping, header, len(header)), len(header)
        elif mapping is not None and mapping.names:
            columns, width = _mapped_columns(name, mapping, None, len(mapping.names)), len(mapping.names)
        else:
            columns, width = None, None
        if columns is not None and len(set(columns)) < len(columns):
            twice = sorted({c for c in columns if columns.count(c) > 1})
            raise InputError(f"the header names {twice} twice: which one to read cannot be told", source=name,
                             line=1, column=", ".join(twice), code="bad_cdr_file")
        physical.take()
        previous = reader.line_num
        for fields in reader:
            if not fields or fields == [""]:
                previous = reader.line_num
                physical.take()
                continue
            if width is None:
                if mapping is not None:
                    width = len(fields)
                    columns = _mapped_columns(name, mapping, None, width)
                else:
                    if not ASTERISK_MIN_FIELDS <= len(fields) <= len(ASTERISK_COLUMNS):
                        raise file_error(
                            name, reader.line_num,
                            f"{len(fields)} fields; an Asterisk Master.csv line has "
                            f"{ASTERISK_MIN_FIELDS} to {len(ASTERISK_COLUMNS)}",
                        )
                    width = len(fields)
                    columns = ASTERISK_COLUMNS[:width]
            if len(fields) != width:
                last = not physical.ended and physical.at_end()
                hint = " (the last line looks truncated)" if last else ""
                raise file_error(
                    name, reader.line_num, f"{len(fields)} fields where {width} are expected{hint}"
                )
            rows.append(fields)
            line_nos.append(previous + 1)
            raws.append(physical.take())
            previous = reader.line_num
            if limit is not None and len(rows) >= limit:
                given += 1
                limit = chunk_records
                yield chunk()
    except csv.Error as exc:
        raise file_error(name, reader.line_num, f"malformed CSV ({exc})") from None
    if rows or not given:
        yield chunk()


@dataclass(frozen=True)
class _Starts:
    """Start times read: ``utc`` naive UTC (``NaT`` where unparsable; a local time of the
    repeated hour read as standard time), ``repeated`` the local times of the hour repeated when
    summer time ends, and for them ``summer`` the other reading (an hour earlier)."""

    utc: pd.Series
    repeated: pd.Series
    summer: pd.Series


#: the days of each month of a common year
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
#: where the digits of a time matching :data:`_ISO_SECONDS` are: year, month, day, hour,
#: minute, second, and the offset's hours and minutes (``+hh:mm``)
_ISO_DIGITS = {"year": (0, 4), "month": (5, 7), "day": (8, 10), "hour": (11, 13), "minute": (14, 16),
               "second": (17, 19), "offset_hours": (20, 22), "offset_minutes": (23, 25)}


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """The days since 1970-01-01 of proleptic Gregorian dates (int64 arrays, months 1-12):
    the civil-to-days algorithm of Howard Hinnant's ``chrono``-compatible date algorithms
    (https://howardhinnant.github.io/date_algorithms.html#days_from_civil), on arrays."""
    y = year - (month <= 2)
    era = y // 400  # floor division: right for years before 0 too
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1  # from 1 March
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _iso_seconds_utc(values: pd.Series) -> pd.Series:
    """Times matching :data:`_ISO_SECONDS` (``2026-10-07T14:36:28+02:00``, ``...Z``) as naive
    UTC datetime64[s] (``NaT`` for a day or time that does not exist: 30 February, 29 February
    of a common year, hour 24, second 60, as pandas' ISO 8601 parser gives), read from their
    characters: each time is 20 or 25 ASCII characters at fixed places (the pattern says so),
    taken as one row of a byte matrix, its digits read and the date counted in days
    (:func:`_days_from_civil`), the offset subtracted. No Python per time, no parser: about ten
    times as fast as a fixed-format parse and its checks, and the same instants."""
    text = pa.array(values, type=pa.string(), from_pandas=True)
    if isinstance(text, pa.ChunkedArray):  # a Series of several Arrow pieces: one array
        text = text.combine_chunks()
    text = pc.utf8_rpad(text, width=25, padding=" ")
    n = len(text)
    if n == 0:
        return pd.Series(np.array([], dtype="datetime64[s]"), index=values.index)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset:text.offset + n + 1]
    chars = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(n, 25)

    def number(field: str) -> np.ndarray:
        low, high = _ISO_DIGITS[field]
        value = np.zeros(n, dtype=np.int64)
        for column in range(low, high):
            value = value * 10 + (chars[:, column].astype(np.int64) - 48)
        return value

    year, month, day = number("year"), number("month"), number("day")
    hour, minute, second = number("hour"), number("minute"), number("second")
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    known_month = (month >= 1) & (month <= 12)
    month_days = _MONTH_DAYS[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    exists = known_month & (day >= 1) & (day <= month_days) & (hour <= 23) & (minute <= 59) & (second <= 59)
    zulu = chars[:, 19] == ord("Z")
    sign = np.where(chars[:, 19] == ord("-"), -1, 1)
    offset = np.where(zulu, 0, sign * (number("offset_hours") * 3600 + number("offset_minutes") * 60))
    seconds = (_days_from_civil(year, np.clip(month, 1, 12), day) * 86_400 + hour * 3600 + minute * 60 + second
               - offset)
    utc = np.where(exists, seconds, np.iinfo(np.int64).min).view("datetime64[s]")  # the minimum is NaT
    return pd.Series(utc, index=values.index, dtype="datetime64[s]")


def _parse_times(values: pd.Series, time_format: str, timezone: str) -> _Starts:
    """Read times written as ``time_format`` (``iso``: ISO 8601, an offset honoured; ``epoch``:
    Unix seconds; else a strftime format, ``%z`` honoured) into naive UTC datetimes. Local
    times (no offset) are in ``timezone``; a time skipped when summer time starts is shifted
    forward."""
    values = values.str.strip()
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[s]")
    repeated = pd.Series(False, index=values.index)
    summer = pd.Series(pd.NaT, index=values.index, dtype="datetime64[s]")
    if time_format == EPOCH:
        ok = values.str.fullmatch(r"[0-9]{1,11}").fillna(False).astype(bool)
        result[ok] = pd.to_datetime(values[ok].astype(np.int64), unit="s").astype("datetime64[s]")
        return _Starts(result, repeated, summer)
    if time_format == ISO:  # the usual form first (it has an offset), then the others' offsets
        plain = values.str.fullmatch(_ISO_SECONDS.pattern).fillna(False).astype(bool)
        if plain.any():
            result[plain] = _iso_seconds_utc(values[plain])
        has_offset = plain.copy()
        if not plain.all():
            rest = values[~plain]
            has_offset[~plain] = rest.str.contains(_OFFSET.pattern, regex=True).fillna(False).astype(bool)
        others = has_offset & ~plain  # the times with an offset read by pandas' parser
    else:
        has_offset = pd.Series("%z" in time_format, index=values.index)
        others = has_offset
    if others.any():
        fmt = "ISO8601" if time_format == ISO else time_format
        aware = pd.to_datetime(values[others], format=fmt, utc=True, errors="coerce")
        result[others] = aware.dt.tz_localize(None).astype("datetime64[s]")
    local_rows = ~has_offset
    if local_rows.any():
        fmt = "ISO8601" if time_format == ISO else time_format
        text = values[local_rows]
        try:
            local = pd.to_datetime(text, format=fmt, errors="coerce")
        except ValueError:  # offsets the pattern does not take ("+02", "+2:00") among local times
            local, aware = _local_or_aware(text, fmt)
            result[aware.index] = aware.to_numpy()
            local_rows[aware.index] = False
            local = local.drop(aware.index)
        if getattr(local.dt, "tz", None) is not None:  # every one with such an offset: read as written
            local = local.dt.tz_convert("UTC").dt.tz_localize(None)
            result[local_rows] = local.astype("datetime64[s]")
            return _Starts(result, repeated, summer)
        # the repeated hour reads as NaT here, and only there: it is read both ways below
        once = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward")
        result[local_rows] = once.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[s]")
        twice = once.isna() & local.notna()
        if twice.any():
            both = local[twice]
            winter = both.dt.tz_localize(timezone, ambiguous=np.zeros(len(both), dtype=bool))
            earlier = both.dt.tz_localize(timezone, ambiguous=np.ones(len(both), dtype=bool))
            index = twice[twice].index
            result[index] = winter.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[s]")
            summer[index] = earlier.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[s]")
            repeated[index] = True
    return _Starts(result, repeated, summer)


def _local_or_aware(text: pd.Series, fmt: str) -> tuple[pd.Series, pd.Series]:
    """``text`` read one time at a time (pandas reads a column of times with and without an
    offset only as UTC): the local times (naive, NaT for the others and for what is no time),
    and the UTC instants of those written with an offset (naive UTC, on their own index)."""
    local = pd.Series(pd.NaT, index=text.index, dtype="datetime64[s]")
    aware = {}
    for index, value in text.items():
        stamp = pd.to_datetime(value, format=fmt, errors="coerce")
        if pd.isna(stamp):
            continue
        if stamp.tzinfo is not None:
            aware[index] = stamp.tz_convert("UTC").tz_localize(None)
        else:
            local[index] = stamp
    return local, pd.Series(aware, index=list(aware), dtype="datetime64[s]")


def _repeated_hour(starts: _Starts, cand: pd.DataFrame, rec: pd.DataFrame, start_f: str
                   ) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Tell apart the calls started in the hour repeated when summer time ends (local times).

    Each is read as standard time unless its Asterisk ``uniqueid`` (``<epoch>.<n>``: when its
    channel was created, at most ``_UNIQUEID_LEAD`` before the start) says it is the first
    hour. Records still undecided that are the same call (calling, called, local start,
    seconds) with different switch ids are different calls: two of them are told apart by their
    ``sequence`` (``newcdrcolumns``: the lower one is the first hour), else they are rejected as
    ``ambiguous_time`` (never one dropped as a duplicate of the other).

    Returns the UTC starts, and the rejects' mask and messages."""
    utc = starts.utc.copy()
    reject = pd.Series(False, index=utc.index)
    message = pd.Series(pd.NA, index=utc.index, dtype="string")
    rows = starts.repeated & cand["calling"].notna() & cand["called"].notna()
    if not rows.any():
        return utc, reject, message
    summer, winter = starts.summer[rows], starts.utc[rows]
    epoch_text = cand.loc[rows, "switch_id"].str.extract(_UNIQUEID_EPOCH, expand=False)
    created = pd.to_datetime(pd.to_numeric(epoch_text, errors="coerce"), unit="s")
    told = created.notna() & (created >= summer - _UNIQUEID_LEAD) & (created <= winter)
    first_hour = told & (created <= summer)
    utc[first_hour[first_hour].index] = summer[first_hour].to_numpy()
    undecided = rows.copy()
    undecided[told[told].index] = False
    if not undecided.any():
        return utc, reject, message
    key = ["calling", "called", "local", "duration_s"]
    same = cand.loc[undecided, ["calling", "called", "duration_s", "switch_id", "line_no"]].assign(
        local=rec.loc[undecided, start_f].str.strip())
    sequence = pd.to_numeric(rec.loc[undecided, "sequence"], errors="coerce") if "sequence" in rec else None
    for _, group in same.groupby(key, sort=False):
        if len(group) < 2 or group["switch_id"].nunique() < len(group):
            continue  # one call, or the same record twice (a duplicate, as at any other time)
        order = sequence[group.index] if sequence is not None else None
        if len(group) == 2 and order is not None and order.notna().all() and order.nunique() == 2:
            utc[order.idxmin()] = starts.summer[order.idxmin()]
            continue
        lines = group["line_no"].astype(str)
        reject[group.index] = True
        for index in group.index:
            others = ", ".join(lines.drop(index))
            message[index] = (f"{start_f} {rec.at[index, start_f].strip()!r} is in the hour repeated when summer "
                              f"time ends, as the same call on line {others} with another id: which hour each "
                              "started in cannot be told (no uniqueid time, no sequence)")
    return utc, reject, message


def check(parsed: ParsedFile, timezone: str, home_country_code: str, asterisk_times: str = "local",
          digits: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed call candidates and rejected records (``CANDIDATE_COLUMNS``, ``REJECT_COLUMNS``).

    The candidates' ``calling`` and ``called`` are E.164 text (``string``), or with ``digits``
    their digits as int64 (:func:`~workbench.phone_numbers.to_digits`, as the database stores
    them); ``start_utc`` is naive UTC datetime64[s], ``duration_s`` int64.

    ``timezone``: the zone of local times (native times without offset, Asterisk's unless
    ``asterisk_times`` is ``utc``, a mapping's with ``timezone = "local"``). Reasons checked
    here: ``excluded`` (a mapping's filter), ``bad_date``, ``ambiguous_time`` (see
    :func:`_repeated_hour`), ``bad_calling_number``, ``bad_called_number``, ``bad_duration``,
    ``negative_duration``, ``bad_call_id`` (longer than ``SWITCH_ID_LENGTH`` or with a control
    character), ``duplicate`` (within the file). The database-dependent reasons
    (``unknown_line``, ``duplicate`` of a stored call) are checked by the integration.
    """
    rec = parsed.records
    mapping = parsed.mapping
    if mapping is not None:
        columns = [c for c in rec.columns if c not in ("line_no", "raw")]
        label = {role: mapped_field(mapping, columns, c) for role, c in mapping.columns().items()}
        switch_f, start_f = label.get("call_id"), label["start"]
        calling_f, called_f, seconds_f = label["calling"], label["called"], label.get("duration")
        time_format = mapping.time_format
        zone = timezone if mapping.timezone == LOCAL else mapping.timezone
    else:
        switch_f, start_f, calling_f, called_f, seconds_f = _FIELDS[parsed.format]
        time_format = _TIME_FORMATS[parsed.format]
        zone = "UTC" if parsed.format == ASTERISK and asterisk_times == "utc" else timezone
    starts = _parse_times(rec[start_f].fillna(""), time_format, zone)
    # the numbers' E.164 digits (Int64, <NA> where not a possible number): as they are stored
    calling = _digits(rec[calling_f], home_country_code)
    called = _digits(rec[called_f], home_country_code)
    # each record's reason and message, written once, by the first check it fails (NumPy arrays
    # of objects: a check writes its rejected records only)
    reasons = np.full(len(rec), None, dtype=object)
    messages = np.full(len(rec), None, dtype=object)
    accepted = np.ones(len(rec), dtype=bool)

    def flag(mask: pd.Series, reason: str, message) -> None:
        """Reject the records of ``mask`` not yet rejected; ``message``: their messages, or a
        function of the mask (a boolean Series) giving them (written for the rejected records only)."""
        rows = np.asarray(mask, dtype=bool) & accepted
        if not rows.any():
            return
        mask = pd.Series(rows, index=rec.index)
        accepted[rows] = False
        reasons[rows] = reason
        messages[rows] = np.asarray((message(mask) if callable(message) else message[mask]), dtype=object)

    if seconds_f is not None:
        seconds_text = rec[seconds_f].fillna("").str.strip()
        seconds_ok = seconds_text.str.fullmatch(r"[0-9]{1,7}").fillna(False).astype(bool)
        # 1 to 7 ASCII digits: Arrow's cast reads them exactly (0 for the others, left out below)
        seconds = pd.Series(pc.cast(pa.array(seconds_text.where(seconds_ok, "0"), type=pa.string(), from_pandas=True),
                                    pa.int64()).to_numpy(), index=rec.index)
        negative = seconds_text.str.fullmatch(r"-[0-9]+").fillna(False).astype(bool)
        def bad_seconds(m):
            return f"{seconds_f} " + seconds_text[m].map(repr) + " is not a whole number of seconds"

        def negative_seconds(m):
            return f"{seconds_f} " + seconds_text[m] + " is negative"
    else:  # a mapping's answer and end: the billed seconds between them, 0 when never answered
        answer_f, end_f = label["answer"], label["end"]
        answer_text, end_text = rec[answer_f].fillna("").str.strip(), rec[end_f].fillna("").str.strip()
        answer = _parse_times(answer_text, time_format, zone).utc
        end = _parse_times(end_text, time_format, zone).utc
        unanswered = answer_text.eq("")
        span = (end - answer).dt.total_seconds()
        seconds = span.where(~unanswered, 0)
        seconds_ok = seconds.notna() & (seconds >= 0) & (seconds < 10_000_000) & (unanswered | end.notna())
        negative = seconds.notna() & (seconds < 0)
        seconds_text = answer_text + " to " + end_text
        def bad_seconds(m):
            return (f"{answer_f} " + answer_text[m].map(repr) + f" to {end_f} " + end_text[m].map(repr)
                    + " is not a duration")

        def negative_seconds(m):
            return f"{end_f} " + end_text[m] + f" is before {answer_f} " + answer_text[m]
    switch_id = rec[switch_f].fillna("").astype(str) if switch_f else pd.Series("", index=rec.index)
    cand = pd.DataFrame(
        {
            "line_no": rec["line_no"],
            "start_utc": starts.utc,
            "calling": calling,
            "called": called,
            "duration_s": seconds.where(seconds_ok).fillna(0).astype(np.int64),
            "switch_id": switch_id,
        }
    )
    if mapping is not None and mapping.filter_column is not None:
        value = rec[label["filter"]].fillna("").str.strip()
        flag(~value.isin(mapping.filter_keep), "excluded",
             lambda m: f"{label['filter']} " + value[m].map(repr)
             + f" is not one of the values kept {list(mapping.filter_keep)}")
    flag(starts.utc.isna(), "bad_date",
         lambda m: f"{start_f} " + rec[start_f][m].fillna("").map(repr) + " is not a date and time")
    if starts.repeated.any():
        cand["start_utc"], ambiguous, ambiguous_message = _repeated_hour(starts, cand, rec, start_f)
        flag(ambiguous, "ambiguous_time", ambiguous_message)
    flag(calling.isna(), "bad_calling_number",
         lambda m: "calling number " + rec[calling_f][m].fillna("").map(repr) + f" ({calling_f}) is not a phone number")
    flag(called.isna(), "bad_called_number",
         lambda m: "called number " + rec[called_f][m].fillna("").map(repr) + f" ({called_f}) is not a phone number")
    flag(negative, "negative_duration", negative_seconds)
    flag(~seconds_ok, "bad_duration", bad_seconds)
    flag(switch_id.str.len() > SWITCH_ID_LENGTH, "bad_call_id",
         lambda m: f"{switch_f} is " + switch_id[m].str.len().astype(str)
         + f" characters long, more than {SWITCH_ID_LENGTH}")
    flag(switch_id.str.contains(_CONTROL.pattern, regex=True).astype(bool), "bad_call_id",
         lambda m: f"{switch_f} " + switch_id[m].map(repr) + " holds a control character")
    good = np.flatnonzero(accepted)  # duplicates among acceptable records only
    # the call key with the numbers as their digits (integers hash faster than text), grouped
    # once: each record's group, and the first record of each group (in line order)
    calling_digits, called_digits = to_digits(calling.iloc[good]), to_digits(called.iloc[good])
    keys = cand[CALL_KEY].iloc[good].assign(calling=calling_digits, called=called_digits)
    group = keys.groupby(CALL_KEY, sort=False, dropna=False).ngroup().to_numpy()
    first = np.unique(group, return_index=True)[1][group]
    repeated = first != np.arange(len(group))
    if repeated.any():
        dup = pd.Series(False, index=rec.index)
        dup.iloc[good[repeated]] = True
        message = pd.Series(pd.NA, index=rec.index, dtype="string")
        message.iloc[good[repeated]] = ("the same call is on line "
                                        + rec["line_no"].iloc[good[first[repeated]]].astype(str).to_numpy())
        flag(dup, "duplicate", message)
    bad = ~accepted
    rejects = pd.DataFrame({"line_no": rec["line_no"][bad].reset_index(drop=True),
                            "reason": pd.array(reasons[bad], dtype="string"),
                            "message": pd.array(messages[bad], dtype="string"),
                            "raw": rec["raw"][bad].reset_index(drop=True)})
    cand = cand[accepted].reset_index(drop=True)
    kept = accepted[good]  # the digits of the records accepted, computed above (the duplicates rejected since)
    if digits:
        cand["calling"], cand["called"] = calling_digits[kept], called_digits[kept]
    else:
        cand["calling"] = from_digits(calling_digits[kept]).array
        cand["called"] = from_digits(called_digits[kept]).array
    return cand, rejects


def _digits(numbers: pd.Series, home_country_code: str) -> pd.Series:
    """The E.164 digits of ``numbers`` (:func:`~workbench.phone_numbers.normalise_digits`) as
    an ``Int64`` Series, <NA> where a number is missing or not a possible number."""
    values = normalise_digits(numbers.fillna(""), home_country_code)
    return pd.Series(pd.arrays.IntegerArray(values, values < 0), index=numbers.index)

"""Reading CDR files into frames of text fields, and checking their records.

Two steps, both pure:

* :func:`parse` reads a file's bytes (plain or gzip) into one row per record, all fields as
  text, or raises :class:`~workbench.errors.InputError` naming the file and line when the file itself is
  malformed (not UTF-8, missing columns, wrong number of fields such as a truncated last line);
* :func:`check` turns those text fields into typed call candidates (UTC start, E.164 numbers,
  seconds) and rejects each bad record with a reason and a message.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import InputError
from workbench.phone_numbers import normalise

NATIVE = "native"
ASTERISK = "asterisk"
FORMATS = (NATIVE, ASTERISK)
NATIVE_COLUMNS = ["call_id", "start_time", "calling", "called", "duration_s"]
ASTERISK_COLUMNS = [
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "userfield",
]
ASTERISK_MIN_FIELDS = 16
#: the fields of each format that :func:`check` uses: switch id, start, calling, called, seconds
_FIELDS = {
    NATIVE: ("call_id", "start_time", "calling", "called", "duration_s"),
    ASTERISK: ("uniqueid", "start", "src", "dst", "billsec"),
}
REJECT_COLUMNS = ["line_no", "reason", "message", "raw"]
CANDIDATE_COLUMNS = ["line_no", "start_utc", "calling", "called", "duration_s", "switch_id"]
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
SWITCH_ID_LENGTH = 64  # switch identifiers are kept whole, for reference: a longer one is a bad_call_id
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


def file_error(file: str, line: int | None, problem: str) -> InputError:
    """The error of a CDR file that cannot be read as a whole (nothing of it is stored)."""
    return InputError(problem, source=file, line=line, code="bad_cdr_file")


@dataclass(frozen=True)
class ParsedFile:
    name: str
    format: str
    records: pd.DataFrame  # line_no, raw, and the format's columns as text


def _decode(name: str, data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise file_error(name, None, f"damaged gzip data ({exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise file_error(
            name, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x}); convert the file to UTF-8"
        ) from None
    if "\x00" in text:  # never in a text file: a damaged file, or not CSV at all
        line = text[: text.index("\x00")].count("\n") + 1
        raise file_error(name, line, "a NUL byte in the text; the file is damaged or not CSV")
    return text.removeprefix("\ufeff")


def detect_format(first_line: str) -> str:
    """``native`` when the first line is our header, else ``asterisk`` (which has none)."""
    header = [c.strip().lower() for c in next(csv.reader([first_line]), [])]
    return NATIVE if "start_time" in header or "call_id" in header else ASTERISK


def parse(name: str, data: bytes, fmt: str = "auto") -> ParsedFile:
    """Read a CDR file's bytes into text fields, one row per record."""
    text = _decode(name, data)
    if not text.strip():
        raise file_error(name, None, "the file is empty")
    physical = _LINE_BREAK.split(text)  # the line ends the csv module counts, no others
    if fmt == "auto":
        fmt = detect_format(physical[0])
    if fmt not in FORMATS:
        raise file_error(name, None, f"unknown format {fmt!r}; expected one of {FORMATS}")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    line_nos: list[int] = []
    spans: list[tuple[int, int]] = []
    try:
        if fmt == NATIVE:
            header = [c.strip().lower() for c in next(reader)]
            missing = [c for c in NATIVE_COLUMNS if c not in header]
            if missing:
                raise file_error(name, 1, f"missing columns {missing}; the header is {header}")
            columns, width = header, len(header)
        else:
            columns, width = None, None
        previous = reader.line_num
        for fields in reader:
            if not fields or fields == [""]:
                previous = reader.line_num
                continue
            if width is None:
                if not ASTERISK_MIN_FIELDS <= len(fields) <= len(ASTERISK_COLUMNS):
                    raise file_error(
                        name, reader.line_num,
                        f"{len(fields)} fields; an Asterisk Master.csv line has "
                        f"{ASTERISK_MIN_FIELDS} to {len(ASTERISK_COLUMNS)}",
                    )
                width = len(fields)
                columns = ASTERISK_COLUMNS[:width]
            if len(fields) != width:
                last = reader.line_num >= len(physical) and not text.endswith(("\n", "\r"))
                hint = " (the last line looks truncated)" if last else ""
                raise file_error(
                    name, reader.line_num, f"{len(fields)} fields where {width} are expected{hint}"
                )
            rows.append(fields)
            line_nos.append(previous + 1)
            spans.append((previous, reader.line_num))
            previous = reader.line_num
    except csv.Error as exc:
        raise file_error(name, reader.line_num, f"malformed CSV ({exc})") from None
    records = pd.DataFrame(rows, columns=columns, dtype="string") if rows else pd.DataFrame(
        columns=columns, dtype="string"
    )
    records.insert(0, "line_no", np.array(line_nos, dtype=np.int64))
    records.insert(1, "raw", ["\n".join(physical[a:b]) for a, b in spans])
    if fmt == ASTERISK and "uniqueid" not in records:
        records["uniqueid"] = ""
    return ParsedFile(name, fmt, records)


def _parse_starts(values: pd.Series, fmt: str, timezone: str) -> pd.Series:
    """Naive UTC datetimes; ``NaT`` where unparsable. Local times (no offset) are in
    ``timezone``; in the repeated hour of a DST change they are read as standard time."""
    values = values.str.strip()
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[s]")
    has_offset = values.str.contains(_OFFSET, regex=True).fillna(False).astype(bool)
    if fmt == NATIVE and has_offset.any():
        aware = pd.to_datetime(values[has_offset], format="ISO8601", utc=True, errors="coerce")
        result[has_offset] = aware.dt.tz_localize(None).astype("datetime64[s]")
    local_rows = ~has_offset if fmt == NATIVE else pd.Series(True, index=values.index)
    if local_rows.any():
        text = values[local_rows]
        if fmt == NATIVE:
            local = pd.to_datetime(text, format="ISO8601", errors="coerce")
        else:
            local = pd.to_datetime(text, format="%Y-%m-%d %H:%M:%S", errors="coerce")
        if getattr(local.dt, "tz", None) is not None:  # pragma: no cover - guarded by regex
            local = local.dt.tz_convert("UTC").dt.tz_localize(None)
        else:
            local = local.dt.tz_localize(timezone, ambiguous=False, nonexistent="shift_forward")
            local = local.dt.tz_convert("UTC").dt.tz_localize(None)
        result[local_rows] = local.astype("datetime64[s]")
    return result


def check(parsed: ParsedFile, timezone: str, home_country_code: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed call candidates and rejected records (``CANDIDATE_COLUMNS``, ``REJECT_COLUMNS``).

    Reasons checked here: ``bad_date``, ``bad_calling_number``, ``bad_called_number``,
    ``bad_duration``, ``bad_call_id`` (longer than ``SWITCH_ID_LENGTH`` or with a control
    character), ``duplicate`` (within the file). The database-dependent reasons
    (``unknown_line``, ``duplicate`` of a stored call) are checked by the integration.
    """
    rec = parsed.records
    switch_f, start_f, calling_f, called_f, seconds_f = _FIELDS[parsed.format]
    start = _parse_starts(rec[start_f].fillna(""), parsed.format, timezone)
    calling = normalise(rec[calling_f].fillna(""), home_country_code)
    called = normalise(rec[called_f].fillna(""), home_country_code)
    seconds_text = rec[seconds_f].fillna("").str.strip()
    seconds_ok = seconds_text.str.fullmatch(r"\d{1,7}").fillna(False).astype(bool)
    seconds = pd.to_numeric(seconds_text.where(seconds_ok), errors="coerce")

    reasons = pd.Series(pd.NA, index=rec.index, dtype="string")
    messages = pd.Series(pd.NA, index=rec.index, dtype="string")

    def flag(mask: pd.Series, reason: str, message: pd.Series) -> None:
        mask = mask & reasons.isna()
        reasons[mask] = reason
        messages[mask] = message[mask]

    flag(start.isna(), "bad_date", f"{start_f} " + rec[start_f].fillna("").map(repr) + " is not a date and time")
    flag(calling.isna(), "bad_calling_number",
         "calling number " + rec[calling_f].fillna("").map(repr) + f" ({calling_f}) is not a phone number")
    flag(called.isna(), "bad_called_number",
         "called number " + rec[called_f].fillna("").map(repr) + f" ({called_f}) is not a phone number")
    negative = seconds_text.str.fullmatch(r"-\d+").fillna(False).astype(bool)
    flag(negative, "negative_duration", f"{seconds_f} " + seconds_text + " is negative")
    flag(~seconds_ok, "bad_duration", f"{seconds_f} " + seconds_text.map(repr) + " is not a whole number of seconds")
    switch_id = rec[switch_f].fillna("").astype(str)
    flag(switch_id.str.len() > SWITCH_ID_LENGTH, "bad_call_id",
         f"{switch_f} is " + switch_id.str.len().astype(str) + f" characters long, more than {SWITCH_ID_LENGTH}")
    flag(switch_id.str.contains(_CONTROL).astype(bool), "bad_call_id",
         f"{switch_f} " + switch_id.map(repr) + " holds a control character")
    cand = pd.DataFrame(
        {
            "line_no": rec["line_no"],
            "start_utc": start,
            "calling": calling,
            "called": called,
            "duration_s": seconds.fillna(0).astype(np.int64),
            "switch_id": switch_id,
        }
    )
    good = reasons.isna()
    key = ["calling", "called", "start_utc", "duration_s"]
    dup = pd.Series(False, index=rec.index)
    dup[good] = cand[good].duplicated(key, keep="first")  # among acceptable records only
    if dup.any():
        first_line = cand[good].drop_duplicates(key).set_index(key)["line_no"]
        firsts = cand.loc[dup, key].merge(first_line.reset_index(), on=key, how="left")["line_no"]
        message = pd.Series(pd.NA, index=rec.index, dtype="string")
        message[dup] = "the same call is on line " + firsts.astype(str).to_numpy()
        flag(dup, "duplicate", message)
    bad = reasons.notna()
    rejects = pd.DataFrame(
        {"line_no": rec["line_no"][bad], "reason": reasons[bad], "message": messages[bad], "raw": rec["raw"][bad]}
    )
    return cand[~bad].reset_index(drop=True), rejects.reset_index(drop=True)

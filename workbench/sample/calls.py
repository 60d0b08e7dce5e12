"""The sample operator's month of calls: realistic numbers and durations, written as a native CDR file
and an Asterisk ``Master.csv`` that overlap, with records wrong on purpose (:data:`ERRORS`)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import PhoneNumberType

from workbench.period import Period
from workbench.sample.customers import _Operator
from workbench.sample.plan import EU_REGIONS, TIMEZONE

#: records made wrong on purpose in the sample CDR files, per 10,000
ERRORS = {"bad_date": 3, "bad_calling_number": 2, "bad_called_number": 3, "negative_duration": 2,
          "bad_duration": 2, "unknown_line": 10, "duplicate": 5}


_NATIONAL_MIX = [  # share of calls, zone, how to make the national significant number
    (0.44, "fixed"), (0.30, "mobile"), (0.04, "voip"), (0.02, "free"), (0.02, "shared"),
    (0.005, "premium"), (0.10, "eu"), (0.03, "eu_mobile"), (0.02, "north_america"),
    (0.0135, "world"), (0.0015, "satellite"),
]


def _international_templates() -> dict[str, list[tuple[str, str]]]:
    """(country code, example national number) by kind, from phonenumbers' metadata."""
    out: dict[str, list[tuple[str, str]]] = {"eu": [], "eu_mobile": [], "north_america": [], "world": []}
    for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        region = regions[0]
        if code == 33 or region == "001":
            continue
        kind = "eu" if region in EU_REGIONS else "north_america" if region == "US" else "world"
        if code == 1 and region != "US":
            continue
        fixed = phonenumbers.example_number_for_type(region, PhoneNumberType.FIXED_LINE)
        if _varies(code, fixed):
            out[kind].append((str(code), str(fixed.national_number)))
        mobile = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        if kind == "eu" and _varies(code, mobile):
            out["eu_mobile"].append((str(code), str(mobile.national_number)))
    return out


def _varies(code: int, example) -> bool:
    """Whether any last four digits on ``example`` still make a possible number."""
    if example is None:
        return False
    nsn = str(example.national_number)
    if len(nsn) < 6:
        return False
    return all(
        phonenumbers.is_possible_number(phonenumbers.parse(f"+{code}{nsn[:-4]}{tail}"))
        for tail in ("0000", "5555", "9999")
    )


def _digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=f"<U{width}")
    return np.char.zfill(rng.integers(0, 10**width, n).astype(str), width)


def _national_heads(rng: np.random.Generator, kind: str, m: int) -> np.ndarray:
    """First digits (after the trunk 0) of ``m`` French numbers of a kind."""
    if kind == "fixed":
        return rng.integers(1, 6, m).astype(str).astype(object)
    if kind == "mobile":
        return rng.choice(np.array(["6", "7"], dtype=object), m)
    if kind == "voip":
        return np.full(m, "9", dtype=object)
    if kind == "free":
        return "80" + rng.integers(0, 6, m).astype(str).astype(object)
    if kind == "shared":
        return "8" + rng.integers(1, 3, m).astype(str).astype(object)
    return "89" + rng.integers(0, 10, m).astype(str).astype(object)  # premium


def _called_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Dialled numbers in the forms switches write: national ``0...``, ``00...`` or ``+...``."""
    shares = np.array([s for s, _ in _NATIONAL_MIX])
    kinds = rng.choice(len(_NATIONAL_MIX), size=n, p=shares / shares.sum())
    out = np.empty(n, dtype=object)
    templates = _international_templates()
    for k, (_, kind) in enumerate(_NATIONAL_MIX):
        rows = np.flatnonzero(kinds == k)
        m = len(rows)
        if not m:
            continue
        if kind in templates:
            pool = templates[kind]
            picks = rng.integers(0, len(pool), m)
            codes = np.array([pool[j][0] for j in picks], dtype=object)
            nsn = [pool[j][1] for j in picks]
            keep = [len(x) - 4 for x in nsn]
            tails = _digits(rng, m, 4)
            numbers = np.array([x[:h] + t[: len(x) - h] for x, h, t in zip(nsn, keep, tails, strict=True)],
                               dtype=object)
            prefix = np.where(rng.random(m) < 0.7, "00", "+").astype(object)
            out[rows] = prefix + codes + numbers
            continue
        if kind == "satellite":
            out[rows] = "00870" + _digits(rng, m, 9).astype(object)
            continue
        head = _national_heads(rng, kind, m)
        width = 9 - np.array([len(h) for h in head])
        tails = _digits(rng, m, 8)
        body = np.array([h + t[: w] for h, t, w in zip(head, tails, width, strict=True)], dtype=object)
        style = rng.random(m)
        out[rows] = np.where(style < 0.8, "0" + body, np.where(style < 0.9, "+33" + body, "0033" + body))
    return out


def _durations(rng: np.random.Generator, n: int) -> np.ndarray:
    answered = rng.random(n) >= 0.12
    seconds = np.clip(np.rint(rng.lognormal(np.log(75), 1.1, n)), 1, 3 * 3600).astype(np.int64)
    return np.where(answered, seconds, 0)


def _call_times(rng: np.random.Generator, n: int, day_lo: np.ndarray, day_hi: np.ndarray,
                period: Period) -> pd.DatetimeIndex:
    """Local naive start times between the given day offsets (inclusive), busy on working days."""
    day = day_lo + np.floor(rng.random(n) * (day_hi - day_lo + 1)).astype(np.int64)
    weekday = (period.start.weekday() + day) % 7
    redraw = (weekday >= 5) & (rng.random(n) < 0.75)
    day = np.where(redraw, day_lo + np.floor(rng.random(n) * (day_hi - day_lo + 1)).astype(np.int64), day)
    business = rng.random(n) < 0.85
    peak_hour = np.where(rng.random(n) < 0.5, 10.5, 15.0)
    hour = np.where(business, rng.normal(peak_hour, 1.5), rng.uniform(6, 23.5, n))
    second = np.clip((hour * 3600).astype(np.int64), 0, 86399)
    base = np.datetime64(period.start.isoformat(), "s")
    return pd.DatetimeIndex(base + (day * 86400 + second).astype("timedelta64[s]"))


def _calls(rng: np.random.Generator, op: _Operator, calls: int, period: Period) -> pd.DataFrame:
    """The month's calls: local start, calling (as the switch writes it), called, seconds."""
    lines = pd.DataFrame(op.lines, columns=["account", "written", "valid_from", "valid_to", "e164"])
    weights = np.array(op.weights)
    p_start = period.start
    last_day = (period.end - p_start).days - 1
    lo = np.array([max(0, (f - p_start).days) for f in lines["valid_from"]])
    hi = np.array([last_day if t is None or pd.isna(t) else min(last_day, (t - p_start).days)
                   for t in lines["valid_to"]])
    usable = (hi >= lo) & (weights > 0)
    weights = np.where(usable, weights, 0)
    pick = rng.choice(len(lines), size=calls, p=weights / weights.sum())
    local = _call_times(rng, calls, lo[pick], hi[pick], period)
    frame = pd.DataFrame({
        "local": local,
        "calling": lines["e164"].to_numpy()[pick],
        "account": lines["account"].to_numpy()[pick],
        "called": _called_numbers(rng, calls),
        "duration_s": _durations(rng, calls),
    })
    return frame.sort_values("local", kind="stable").reset_index(drop=True)


def _spoil(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns for the files, with :data:`ERRORS` made on purpose."""
    n = len(frame)
    out = pd.DataFrame({
        "local": frame["local"].dt.strftime("%Y-%m-%d %H:%M:%S").astype(object),
        "calling": frame["calling"].astype(object),
        "called": frame["called"].astype(object),
        "duration_s": frame["duration_s"].astype(str).astype(object),
        "account": frame["account"].astype(object),
        "answered": frame["duration_s"].to_numpy() > 0,
        "local_ts": frame["local"],
    })
    spoil = rng.random(n)
    edges = np.cumsum([0, *ERRORS.values()]) / 10_000
    for k, reason in enumerate(ERRORS):
        rows = np.flatnonzero((spoil >= edges[k]) & (spoil < edges[k + 1]))
        if reason == "bad_date":
            out.loc[rows, "local"] = np.where(rows % 2 == 0, "2026-10-32 09:00:00", "31/10/2026 9h")
        elif reason == "bad_calling_number":
            out.loc[rows, "calling"] = np.where(rows % 2 == 0, "anonymous", "+33ABC")
        elif reason == "bad_called_number":
            out.loc[rows, "called"] = np.where(rows % 2 == 0, "12", "*31#0612")
        elif reason == "negative_duration":
            out.loc[rows, "duration_s"] = "-" + out.loc[rows, "duration_s"].astype(str)
        elif reason == "bad_duration":
            out.loc[rows, "duration_s"] = out.loc[rows, "duration_s"].astype(str) + ".5"
        elif reason == "unknown_line":
            out.loc[rows, "calling"] = "+3319" + _digits(rng, len(rows), 7).astype(object)
        elif reason == "duplicate":
            out = pd.concat([out, out.iloc[rows]], ignore_index=True)
    return out


def _native_bytes(rows: pd.DataFrame, first_id: int) -> bytes:
    ts = rows["local_ts"]
    aware = ts.dt.tz_localize(TIMEZONE, ambiguous=np.zeros(len(ts), dtype=bool), nonexistent="shift_forward")
    offset = aware.dt.strftime("%z").str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True)
    iso = rows["local"].str.replace(" ", "T", n=1)
    stamp = np.where(rows["local"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), iso + offset, rows["local"])
    frame = pd.DataFrame({
        "call_id": [f"SW2-{first_id + i:08d}" for i in range(len(rows))],
        "start_time": stamp, "calling": rows["calling"], "called": rows["called"],
        "duration_s": rows["duration_s"],
    })
    return frame.to_csv(index=False, lineterminator="\n").encode()


def _asterisk_bytes(rows: pd.DataFrame, rng: np.random.Generator) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    ring = rng.integers(2, 25, len(rows))
    outcome = rng.random(len(rows))
    for k, r in enumerate(rows.itertuples(index=False)):
        calling = r.calling.replace("+33", "0", 1) if r.calling.startswith("+33") else r.calling
        start = r.local
        billsec = r.duration_s
        try:
            t0 = pd.Timestamp(start)
            seconds = int(billsec)
        except (ValueError, TypeError):
            t0, seconds = None, 0
        answered = t0 is not None and seconds > 0
        answer = (t0 + pd.Timedelta(seconds=int(ring[k]))).strftime("%Y-%m-%d %H:%M:%S") if answered else ""
        end = (t0 + pd.Timedelta(seconds=int(ring[k]) + max(seconds, 0))).strftime("%Y-%m-%d %H:%M:%S") \
            if t0 is not None else start
        disposition = "ANSWERED" if answered or seconds != 0 else (
            "NO ANSWER" if outcome[k] < 0.7 else "BUSY" if outcome[k] < 0.95 else "FAILED")
        uid = f"{1790000000 + k * 7}.{k}"
        writer.writerow([
            r.account, calling, r.called, "from-internal", f'"{calling}" <{calling}>',
            f"PJSIP/{calling}-{k:08x}", f"PJSIP/trunk-{k + 1:08x}" if answered else "", "Dial",
            f"PJSIP/{r.called}@trunk,60", start, answer, end, str(int(ring[k]) + max(seconds, 0)),
            billsec, disposition, "DOCUMENTATION", uid, "",
        ])
    return buf.getvalue().encode()


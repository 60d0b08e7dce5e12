"""Whole-project properties: migrations match the models, the pure layers stay pure, the sample
generator is deterministic and realistic, and the command line runs the demo."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from workbench.cli import main
from workbench.db.comparison import comparison_options
from workbench.db.schema import Base
from workbench.sample import generate_operator
from workbench.sepa import validate_pain008

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


def read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_migrations_create_exactly_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=comparison_options(connection.dialect.name))
        assert compare_metadata(context, Base.metadata) == []


def test_every_revision_fits_alembics_version_column():
    # alembic_version.version_num is VARCHAR(32): PostgreSQL refuses a longer revision id when
    # the migration is applied (SQLite would store it)
    from alembic.script import ScriptDirectory

    from workbench.db.engine import MIGRATIONS

    revisions = [script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()]
    assert len(revisions) >= 21
    assert [r for r in revisions if len(r) > 32] == []


def test_documents_issued_before_the_identity_columns_get_the_customers_identity(database_url):
    """Upgrading an existing database: its issued documents keep the customer's identity of the
    upgrade (the best record there is), drafts none; earlier credit notes set nothing against a
    collection."""
    from sqlalchemy import text

    from workbench.db.engine import make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine, "0006")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO rate_plans (id, code, name, currency, timezone, holiday_country, "
                                "default_band) VALUES (1, 'P', 'Plan', 'EUR', 'Europe/Paris', 'FR', 'offpeak')"))
        connection.execute(text(
            "INSERT INTO customers (id, account_number, name, address_line1, address_line2, postcode, city, country, "
            "vat_number, language, payment_method, billing_group, rate_plan_id) VALUES (1, 'C1', 'Alpha SARL', "
            "'1 rue A', '', '75001', 'Paris', 'FR', 'FR83404833048', 'fr', 'transfer', 'A', 1)"))
        for number, status in (("F2026-000001", "issued"), ("PRE-1-0001", "draft")):
            connection.execute(text(
                "INSERT INTO invoices (number, kind, status, customer_id, period, invoice_date, due_date, currency, "
                "total_excl_cents, total_vat_cents, total_incl_cents, credit_applied_cents, net_payable_cents, "
                "reopens_period) VALUES (:n, 'invoice', :s, 1, '2026-10', '2026-11-01', '2026-12-01', 'EUR', "
                "100, 20, 120, 0, 120, false)"), {"n": number, "s": status})
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT number, customer_name, customer_address_line1, customer_address_line2, customer_postcode, "
            "customer_city, customer_country, customer_vat_number, collection_offset_cents FROM invoices "
            "ORDER BY number")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("F2026-000001", "Alpha SARL", "1 rue A", "", "75001", "Paris", "FR", "FR83404833048", 0),
        ("PRE-1-0001", None, None, None, None, None, None, None, 0)]


def test_the_layers_are_kept():
    """import-linter checks the contracts of pyproject.toml (the pure core imports no edge, the
    layers only import downwards); a broken contract names the import."""
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("KEPT") == 4 and "BROKEN" not in out.stdout


def test_the_pure_core_loads_no_edge_at_run_time():
    code = (
        "import sys\n"
        "import workbench.money, workbench.period, workbench.phone_numbers, workbench.rating, "
        "workbench.cdr.formats, workbench.invoicing, workbench.sepa, workbench.errors\n"
        "edges = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic', 'psycopg', 'tqdm', "
        "'jinja2', 'weasyprint', 'ipywidgets', 'fsspec', 'smtplib', 'ftplib', 'dask', 'distributed')"
        " or (m.startswith('workbench.') and m.split('.')[1] not in ('money', 'period', 'phone_numbers', 'rating', "
        "'cdr', 'invoicing', 'sepa', 'errors')))\n"
        "print(edges)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_generator_is_deterministic(tmp_path):
    a = generate_operator(tmp_path / "a", seed=7, customers=25, calls=3_000)
    b = generate_operator(tmp_path / "b", seed=7, customers=25, calls=3_000)
    c = generate_operator(tmp_path / "c", seed=8, customers=25, calls=3_000)
    assert a == b
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / "cdrs" / "switch-2026-10.csv.gz").read_bytes() != (
        tmp_path / "c" / "cdrs" / "switch-2026-10.csv.gz").read_bytes()
    assert c["customers"] == 25


def _iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "")
    numeric = "".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4])
    return int(numeric) % 97 == 1


def _luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_the_bundled_sample_is_what_the_issue_asks_for():
    ref = SAMPLE / "reference"
    customers = read(ref / "customers.csv")
    assert len(customers) == 200
    names = {c["name"] for c in customers}
    assert any(n.startswith("=HYPERLINK(") for n in names)
    assert any("<img src=" in n for n in names)
    destinations = {d["prefix"]: d["zone"] for d in read(ref / "destinations.csv")}
    assert len(destinations) >= 300
    assert destinations["44"] == "EU" and destinations["447"] == "EU_MOBILE"
    assert {destinations[p] for p in ("3312", "3361", "3395", "33800", "3381", "33899")} == {
        "NAT_FIXED", "NAT_MOBILE", "NAT_VOIP", "NAT_FREE", "NAT_SHARED", "NAT_PREMIUM"}
    mandates = read(ref / "mandates.csv")
    assert len(mandates) >= 100 and all(_iban_ok(m["iban"]) for m in mandates)
    vat = [c["vat_number"] for c in customers if c["vat_number"].startswith("FR")]
    assert vat and all(_luhn_ok(v[4:]) and int(v[2:4]) == (12 + 3 * (int(v[4:]) % 97)) % 97 for v in vat)
    subs = read(ref / "subscriptions.csv")
    assert any(s["start_date"].startswith("2026-10-") and s["start_date"] != "2026-10-01" for s in subs)
    assert any(s["end_date"].startswith("2026-10-") and s["end_date"] != "2026-10-31" for s in subs)
    assert {o["product"] for o in read(ref / "one_off_charges.csv")} >= {"INSTALL", "DEPOSIT", "HANDSET"}
    lines = read(ref / "lines.csv")
    moved = [n for n in {line["number"] for line in lines}
             if len({line["account_number"] for line in lines if line["number"] == n}) > 1]
    assert moved, "a number passes from one customer to another during the month"


def test_the_bundled_sample_is_the_generators_output(tmp_path):
    generate_operator(tmp_path)
    for path in sorted(p for p in SAMPLE.rglob("*") if p.is_file() and p.suffix != ".md"):
        rel = path.relative_to(SAMPLE)
        assert (tmp_path / rel).read_bytes() == path.read_bytes(), f"{rel} differs: run `workbench sample`"


def test_demo_on_a_small_operator(tmp_path, capsys, monkeypatch):
    for name, folder in (("STORAGE_URL", "ftp"), ("OUTBOX_DIR", "outbox"), ("OUTPUT_DIR", "out")):
        monkeypatch.setenv(f"WORKBENCH_{name}", str(tmp_path / folder))
    data = tmp_path / "data"
    generate_operator(data, seed=11, customers=20, calls=2_000)
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    assert main(["--database-url", url, "demo", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "customers 20" in out
    assert "switch-2026-10.csv.gz (native)" in out and "asterisk-Master.csv.gz (asterisk)" in out
    assert "period 2026-10:" in out and "excl. VAT" in out
    assert "20 invoices issued, F2026-000001 to F2026-000020" in out
    assert len(list((tmp_path / "ftp" / "invoices").rglob("*.pdf"))) == 20
    assert list((tmp_path / "outbox").glob("*.eml")) and "SEPA file sepa/" in out
    # the demo's SEPA file is a pain.008.001.08 (the default version), valid against its XSD
    (sepa_file,) = (tmp_path / "ftp" / "sepa").rglob("*.xml")
    assert b'xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.08"' in sepa_file.read_bytes()
    validate_pain008(sepa_file.read_bytes(), "pain.008.001.08")
    # a configured database is never deleted, not even by a fresh demo: it keeps what it holds
    assert main(["--database-url", url, "demo", "--fresh", "--data", str(data)]) == 2
    assert "deletes only the embedded database" in capsys.readouterr().err
    # without --fresh the files are recognised and skipped
    assert main(["--database-url", url, "demo", "--data", str(data)]) == 0
    assert out.count("already loaded") == 0
    assert capsys.readouterr().out.count("already loaded, skipped") == 2


def test_user_errors_exit_with_status_2(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    assert main(["--database-url", url, "db-upgrade"]) == 0
    assert main(["--database-url", url, "rate", "--period", "2026-13"]) == 2
    assert "2026-13" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("call_id,start_time,calling,called,duration_s\nA,2026-10-01T10:00:00Z,+33145000001\n")
    assert main(["--database-url", url, "load-cdrs", str(bad)]) == 2
    assert "bad.csv, line 2" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["benchmarks/rating.py"])
def test_the_benchmark_runs_on_a_small_scale(script, tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / script), "--calls", "20000", "--prefixes", "2000", "--store", "5000",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "rated 20,000 calls, 0 errors" in out.stdout
    assert "ratio rating / parse:" in out.stdout and "rows/s" in out.stdout


def test_a_fresh_demo_starts_from_an_empty_embedded_database(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the embedded database is var/workbench.sqlite, here
    monkeypatch.delenv("WORKBENCH_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    generate_operator(data, seed=11, customers=8, calls=500)
    assert main(["demo", "--data", str(data)]) == 0
    assert (tmp_path / "var" / "workbench.sqlite").exists() and "8 invoices issued" in capsys.readouterr().out
    assert main(["demo", "--fresh", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    # everything again from nothing: no file already loaded, the invoices numbered from 1 again
    assert "already loaded" not in out and "8 invoices issued, F2026-000001 to F2026-000008" in out

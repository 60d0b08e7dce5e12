"""Configuration: the database, the FTP space, mail, SEPA and the operator's identity.

Read, in order of precedence: command-line overrides, environment variables, a TOML file
(``--config`` or ``$WORKBENCH_CONFIG``, else ``workbench.toml`` in the working directory if
present), then the embedded defaults, which need no set-up (a SQLite file, a local folder as FTP
space and an outbox folder for mail, all under ``var/``). Each setting ``name`` has the
environment variable ``WORKBENCH_<NAME>`` (upper case) and the TOML key ``name``:

=========================  ==========================================================
setting                    default and meaning
=========================  ==========================================================
``database_url``           ``sqlite:///var/workbench.sqlite``
``timezone``               ``Europe/Paris`` (the operator's)
``asterisk_times``         ``local``: Asterisk's Master.csv times are in ``timezone``; ``utc``: in UTC
                           (``usegmtime=yes`` in Asterisk's ``cdr.conf``). ``load-cdrs --times``
                           overrides it for one load
``home_country_code``      ``33`` (national ``0...`` numbers belong to it)
``output_dir``             ``var`` (reports)
``consumption_vat_rate``   ``20`` (percent, on calls)
``payment_days``           ``30`` (due date after the invoice date)
``vat_on_debits``          ``no``; ``yes``: the operator opted for paying VAT on debits (CGI art.
                           269-2-c), a mention its invoices carry
``storage_url``            ``var/ftp`` (the FTP space: a folder, ``ftp://``, ``ftps://``, ``sftp://``;
                           see :mod:`workbench.storage` for host keys and key files)
``smtp_url``               empty: mail goes to ``outbox_dir`` as .eml files; else
                           ``smtp://user@host:587`` (STARTTLS) or ``smtps://...:465``
``outbox_dir``             ``var/outbox``
``mail_from``              ``Facturation Opérateur Exemple <facturation@operateur.example>``
``sepa_creditor_*``        ``name``, ``iban``, ``bic``, ``id`` of the creditor, and its postal address:
                           ``street`` (one line: number and street), ``postcode``, ``town``,
                           ``country`` (ISO code); written in every SEPA file
``sepa_version``           ``pain.008.001.08`` (or ``pain.008.001.02``)
``operator_*``             the operator's identity printed on invoices
``sqlite_busy_timeout``    ``30`` (seconds): how long a SQLite write waits for another's transaction
``report_recipients``      empty: the control report of each pre-production run is emailed to these
                           addresses (comma-separated), once per run, by the transport of ``smtp_url``
``allow_self_approval``    ``no``: whoever launched a run cannot approve it (four eyes); ``yes`` lifts it
``users_file``             ``var/reviewers``: the reviewers' logins for the dashboards and JupyterLab
                           (``workbench add-reviewer NAME``; passwords hashed with scrypt)
``facturx_profile``        ``en16931``: the Factur-X profile of issued invoices and credit notes
                           (``extended`` also; MINIMUM, BASIC WL and BASIC are refused)
``dask_scheduler``         empty: rating and invoice PDFs on this machine; ``local:N``: on a Dask
                           ``LocalCluster`` of N worker processes started for the command;
                           ``tcp://host:port`` (or ``tls://``): on the workers of a running Dask
                           scheduler (see :mod:`workbench.jobs.cluster`)
=========================  ==========================================================

CDR files with too many malformed records (see :class:`workbench.integration.RejectThreshold`):
``reject_threshold_percent`` (default ``5``): a file of at least ``reject_threshold_records``
records more than this percent of which are malformed is refused as a whole;
``reject_threshold_records`` (default ``10000``): that many records, and a file whose first that
many are all malformed is refused as soon as they are read.

Secrets are never read from the TOML file or a notebook: the SMTP password comes from
``WORKBENCH_SMTP_PASSWORD`` and FTP passwords from ``WORKBENCH_STORAGE_PASSWORD`` (or the URL).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from workbench.errors import ConfigError

DEFAULT_VAR_DIR = Path("var")


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_VAR_DIR / 'workbench.sqlite'}"
    timezone: str = "Europe/Paris"
    asterisk_times: str = "local"  # "utc": Master.csv written with usegmtime=yes
    home_country_code: str = "33"
    output_dir: str = str(DEFAULT_VAR_DIR)
    consumption_vat_rate: str = "20"
    payment_days: str = "30"
    storage_url: str = str(DEFAULT_VAR_DIR / "ftp")
    smtp_url: str = ""
    outbox_dir: str = str(DEFAULT_VAR_DIR / "outbox")
    mail_from: str = "Facturation Opérateur Exemple <facturation@operateur.example>"
    sepa_creditor_name: str = "OPERATEUR EXEMPLE SAS"
    sepa_creditor_iban: str = "FR7630006000011234567890189"
    sepa_creditor_bic: str = "AGRIFRPP"
    sepa_creditor_id: str = "FR72ZZZ123456"
    sepa_creditor_street: str = "12 rue de la Paix"
    sepa_creditor_postcode: str = "75002"
    sepa_creditor_town: str = "Paris"
    sepa_creditor_country: str = "FR"
    sepa_version: str = "pain.008.001.08"
    operator_name: str = "Opérateur Exemple SAS"
    operator_address: str = "12 rue de la Paix, 75002 Paris, France"
    operator_siren: str = "123 456 782"
    operator_vat: str = "FR40123456782"
    operator_capital: str = "SAS au capital de 100 000 EUR, RCS Paris"
    operator_email: str = "facturation@operateur.example"
    call_detail_annex: str = "no"  # "yes": invoices end with the list of their calls
    late_penalty_rate: str = ""  # empty: three times the legal interest rate, in the invoice's language
    templates_dir: str = ""  # empty: the bundled templates/ (invoice.html, invoice.css, email/)
    reject_threshold_percent: str = "5"  # a CDR file with more malformed records than this is refused
    reject_threshold_records: str = "10000"  # ...counted from this many records; or its first this many all malformed
    sqlite_busy_timeout: str = "30"  # seconds a SQLite write waits for another's transaction
    report_recipients: str = ""  # addresses, comma-separated, the control report of each pre-production run goes to
    allow_self_approval: str = "no"  # "yes": whoever launched a run may approve it (no four eyes)
    users_file: str = str(DEFAULT_VAR_DIR / "reviewers")  # reviewers' logins (workbench add-reviewer), hashed
    facturx_profile: str = "en16931"  # the Factur-X profile of issued documents: en16931 or extended
    vat_on_debits: str = "no"  # "yes": the operator opted for paying VAT on debits (CGI art. 269-2-c)

    @property
    def vat_on_debits_opted(self) -> bool:
        """Whether the operator opted for paying VAT on debits (setting ``vat_on_debits``)."""
        return self.vat_on_debits.strip().lower() in ("yes", "true", "1")
    dask_scheduler: str = ""  # empty: this machine; local:N: a LocalCluster of N processes; tcp://host:port

    def anchored(self, root: str | Path) -> Settings:
        """These settings with their relative local paths (a ``sqlite:///`` file, a local FTP space,
        the outbox, output and templates folders) taken from ``root`` instead of the working
        directory."""
        root = Path(root)

        def local(value: str) -> str:
            if not value or "://" in value or Path(value).is_absolute():
                return value
            return str(root / value)

        database = self.database_url
        if database.startswith("sqlite:///") and not Path(database.removeprefix("sqlite:///")).is_absolute():
            database = f"sqlite:///{root / database.removeprefix('sqlite:///')}"
        return replace(self, database_url=database, storage_url=local(self.storage_url),
                       outbox_dir=local(self.outbox_dir), output_dir=local(self.output_dir),
                       templates_dir=local(self.templates_dir), users_file=local(self.users_file))

    @property
    def report_addresses(self) -> tuple[str, ...]:
        """The addresses of ``report_recipients``, in their order, each once."""
        seen: dict[str, None] = {}
        for address in self.report_recipients.replace(";", ",").split(","):
            if address.strip():
                seen.setdefault(address.strip(), None)
        return tuple(seen)

    @property
    def self_approval(self) -> bool:
        """Whether whoever launched a run may approve it (``allow_self_approval``)."""
        return self.allow_self_approval.strip().lower() in ("yes", "true", "1")


SECRETS = {"smtp_password": "WORKBENCH_SMTP_PASSWORD", "storage_password": "WORKBENCH_STORAGE_PASSWORD"}


#: ``scheme://user:password@``: the password runs to the last ``@`` before the host, and may hold
#: ``/``, ``#`` or ``?`` (SQLAlchemy's URLs accept them unencoded)
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):(?P<password>.*)@(?P<host>[^@]*)$", re.S)


def redacted(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``: how a URL of the settings is shown
    (``ftp://billing:***@host/base``), whatever characters the password holds."""
    match = _USERINFO.match(url or "")
    if not match:
        return url
    return f"{match['head']}:***@{match['host']}"


def environment(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that give them (``WORKBENCH_<NAME>``), e.g. for
    a process that must work with exactly these settings."""
    return {_ENV[f.name]: str(getattr(settings, f.name)) for f in fields(Settings)}


def secret(name: str) -> str | None:
    """A secret from the environment only (``smtp_password``, ``storage_password``)."""
    return os.environ.get(SECRETS[name]) or None


_ENV = {f.name: f"WORKBENCH_{f.name.upper()}" for f in fields(Settings)}
_ENV.update({"home_country_code": "WORKBENCH_COUNTRY_CODE", "consumption_vat_rate": "WORKBENCH_CALLS_VAT"})


def load_settings(config_file: str | Path | None = None, **overrides: str | None) -> Settings:
    """Settings from (highest first) ``overrides``, the environment, the TOML file, defaults."""
    values: dict[str, str] = {}
    path = config_file or os.environ.get("WORKBENCH_CONFIG")
    if path is None and Path("workbench.toml").exists():
        path = "workbench.toml"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(str(exc), source=f"configuration file {path}") from exc
        known = {f.name for f in fields(Settings)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown settings {sorted(unknown)}", source=f"configuration file {path}")
        values.update({k: str(v) for k, v in data.items()})
    for key, env in _ENV.items():
        if os.environ.get(env):
            values[key] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return check(Settings(**values))


#: a value of ``dask_scheduler``: ``local:N`` (N from 1 to 999) or ``tcp://host:port`` / ``tls://host:port``
DASK_SCHEDULER = re.compile(r"local:[1-9][0-9]{0,2}|(tcp|tls)://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|(tcp|tls)://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")

#: the files a templates folder must have
TEMPLATE_FILES = ("invoice.html", "invoice.css", "email/invoice_fr.txt", "email/invoice_en.txt", "email/subjects.toml")


def check(settings: Settings) -> Settings:
    """The settings if they can be used, else a :class:`ConfigError` naming the setting."""
    from decimal import Decimal, InvalidOperation
    from zoneinfo import ZoneInfo

    def bad(name: str, problem: str):
        raise ConfigError(problem, source=f"setting {name} ({_ENV[name]})")

    if settings.database_url.split(":", 1)[0].split("+", 1)[0] not in ("sqlite", "postgresql"):
        bad("database_url", f"{redacted(settings.database_url)!r} is not a sqlite:/// or postgresql:// URL")
    try:
        ZoneInfo(settings.timezone)
    except (ValueError, KeyError, OSError):
        bad("timezone", f"{settings.timezone!r} is not a time zone (e.g. Europe/Paris)")
    if settings.asterisk_times not in ("local", "utc"):
        bad("asterisk_times", f"{settings.asterisk_times!r} is neither local nor utc (usegmtime=yes in cdr.conf)")
    if not settings.home_country_code.isdigit():
        bad("home_country_code", f"{settings.home_country_code!r} is not a country calling code (e.g. 33)")
    try:
        vat = Decimal(settings.consumption_vat_rate)
    except InvalidOperation:
        vat = Decimal(-1)
    if not Decimal(0) <= vat <= Decimal(100):
        bad("consumption_vat_rate", f"{settings.consumption_vat_rate!r} is not a percentage")
    try:
        threshold = Decimal(settings.reject_threshold_percent)
    except InvalidOperation:
        threshold = Decimal(-1)
    if not (threshold.is_finite() and Decimal(0) <= threshold <= Decimal(100)):
        bad("reject_threshold_percent", f"{settings.reject_threshold_percent!r} is not a percentage (0 to 100)")
    records = settings.reject_threshold_records
    if not (records.isascii() and records.isdigit()) or int(records) < 1:
        bad("reject_threshold_records", f"{settings.reject_threshold_records!r} is not a number of records (1 or more)")
    try:
        busy = Decimal(settings.sqlite_busy_timeout)
    except InvalidOperation:
        busy = Decimal(-1)
    if not (busy.is_finite() and Decimal(0) <= busy <= Decimal(86400)):
        bad("sqlite_busy_timeout", f"{settings.sqlite_busy_timeout!r} is not a number of seconds (0 to 86400)")
    if settings.allow_self_approval.strip().lower() not in ("yes", "no", "true", "false", "1", "0"):
        bad("allow_self_approval", f"{settings.allow_self_approval!r} is neither yes nor no")
    if settings.report_addresses:
        wrong = [a for a in settings.report_addresses if not re.fullmatch(r"[^\s@<>,;]+@[^\s@<>,;]+\.[^\s@<>,;]+", a)]
        if wrong:
            bad("report_recipients", f"{', '.join(map(repr, wrong))} not an email address (name@example.com, "
                "several separated by commas)")
    if re.sub(r"[\s_-]", "", settings.facturx_profile.lower()) not in ("en16931", "extended"):
        refused = {"minimum": "MINIMUM", "basicwl": "BASIC WL", "basic": "BASIC"}.get(
            re.sub(r"[\s_-]", "", settings.facturx_profile.lower()))
        bad("facturx_profile", f"{settings.facturx_profile!r} is not accepted: " + (
            (f"{refused} does not carry the lines and VAT breakdown French invoices need" if refused != "BASIC" else
             "BASIC cannot carry every EN 16931 term these invoices state") + "; use en16931 or extended"
            if refused else "use en16931 (EN 16931, the default) or extended"))
    if settings.vat_on_debits.strip().lower() not in ("yes", "true", "1", "no", "false", "0"):
        bad("vat_on_debits", f"{settings.vat_on_debits!r} is neither yes nor no")
    if settings.dask_scheduler and not DASK_SCHEDULER.fullmatch(settings.dask_scheduler):
        bad("dask_scheduler", f"{settings.dask_scheduler!r} is neither empty (this machine), local:N (a local cluster "
            "of N worker processes) nor the address of a Dask scheduler (tcp://host:port)")
    if not settings.payment_days.isdigit():
        bad("payment_days", f"{settings.payment_days!r} is not a number of days")
    if settings.templates_dir:
        folder = Path(settings.templates_dir)
        # a file must be in the folder itself: rendering reads nothing outside it (a link leading out
        # would be refused there, and the invoices would lose their style)
        missing = [name for name in TEMPLATE_FILES if not (folder / name).is_file()
                   or not (folder / name).resolve().is_relative_to(folder.resolve())]
        if missing:
            bad("templates_dir", f"{str(folder)!r} lacks {', '.join(missing)} (copy the bundled templates/ folder; "
                "files must be in it, not links to elsewhere)")
    return settings


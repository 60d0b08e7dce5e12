"""The operator's FTP space: where invoice PDFs, reports and SEPA files are stored.

Chosen by URL (setting ``storage_url``), through fsspec:

* a local folder (the default, ``var/ftp``) or ``file:///srv/billing``;
* ``ftp://user@host:21/base`` or ``ftps://...`` (explicit TLS, ``AUTH TLS``, with the control and
  data connections encrypted);
* ``sftp://user@host:22/base`` (SSH, through sshfs and asyncssh).

The password comes from the URL or from ``WORKBENCH_STORAGE_PASSWORD``. An SFTP login may also
use a key: the user's SSH agent and default keys (``~/.ssh/id_*``), or the private key file named
by ``WORKBENCH_STORAGE_KEY_FILE`` (an unencrypted key, or one held by the agent). The SFTP
server's host key is checked: against ``~/.ssh/known_hosts`` (or the ``UserKnownHostsFile`` of
``~/.ssh/config``), or, if ``WORKBENCH_STORAGE_HOST_KEY`` is set, against that one public key
only (``ssh-ed25519 AAAA...``, a line of the server's ``/etc/ssh/ssh_host_*_key.pub``; a line of
``ssh-keyscan`` output, host first, is accepted too). A server whose key is not trusted is refused.
An FTPS server's certificate is checked as a browser would (Python's default TLS context: a chain
to a trusted authority, the host name of the URL in the certificate), against the system's
authorities, or, if ``WORKBENCH_STORAGE_CA_FILE`` is set, against the certificates of that PEM
file only (a private authority, or the server's own self-signed certificate). A server whose
certificate does not verify is refused (``certificate verify failed``).

A remote space is reached on first use (the first ``put``, ``get``, ``exists``, ``size``,
``list`` or use of ``fs``), not when the :class:`Storage` is made; ``location`` never connects.
If it cannot be reached, that use and every later one on the same :class:`Storage` raise
:class:`~workbench.errors.UnavailableError` (code ``storage``, naming the scheme, host, port and
cause; never the password): make a new :class:`Storage` to try again. A URL that cannot be used
is a :class:`~workbench.errors.ConfigError` when the :class:`Storage` is made; a path outside the
space an :class:`~workbench.errors.InputError`.

Layout (relative paths under the space's root)::

    invoices/2026/10/F2026-000123.pdf        final invoices, by invoice year and month
    drafts/run-17/PRE-17-0001.pdf            drafts of pre-production run 17
    credit-notes/2026/11/A2026-000001.pdf
    reports/2026-10/control-report-run17.xlsx
    sepa/2026/11/<message id>.xml

Every upload is atomic: the bytes go to ``<name>.part`` and are renamed to ``<name>`` once
complete, so a partial file never has the final name. Failed uploads are retried; a file already
there with the same size is not uploaded again, so re-running after a failure sends only what
is missing.
"""

from __future__ import annotations

import ftplib
import numbers
import os
import posixpath
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.ftp import FTPFileSystem

from workbench.config import redacted, secret
from workbench.errors import ConfigError, InputError, UnavailableError

KEY_FILE_VARIABLE = "WORKBENCH_STORAGE_KEY_FILE"
HOST_KEY_VARIABLE = "WORKBENCH_STORAGE_HOST_KEY"
CA_FILE_VARIABLE = "WORKBENCH_STORAGE_CA_FILE"
CONNECT_TIMEOUT = 30  # seconds, to reach and log in to a remote space
SETTING = "setting storage_url (WORKBENCH_STORAGE_URL)"


@dataclass
class UploadReport:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already there
    failed: dict[str, str] = field(default_factory=dict)  # path -> error

    @property
    def ok(self) -> bool:
        return not self.failed


#: a document number as a file name: letters, digits and ``-`` (``F2026-000001``, ``PRE-12-0001``)
_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")


def invoice_path(number: str, invoice_date, kind: str = "invoice", run_id: int | None = None) -> str:
    """The documented place of an invoice, draft or credit note PDF. The number becomes a file
    name: :class:`~workbench.errors.InputError` unless it is letters, digits and ``-`` (so that no
    number, whatever wrote it in the database, names a folder elsewhere: ``../x``), or a draft's
    run is not a number."""
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        raise InputError(f"{number!r} is not a document number (letters, digits and '-')", code="bad_number")
    if number.startswith("PRE-"):
        if isinstance(run_id, bool) or not isinstance(run_id, numbers.Integral):
            raise InputError(f"{number}: the run of a draft must be a number, not {run_id!r}", code="bad_run")
        return f"drafts/run-{run_id}/{number}.pdf"
    folder = "credit-notes" if kind == "credit_note" else "invoices"
    return f"{folder}/{invoice_date.year}/{invoice_date.month:02d}/{number}.pdf"


@dataclass(frozen=True)
class _Remote:
    """Where a remote space is and how to log in to it."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    host_key: str | None = field(default=None, repr=False)  # sftp: the one trusted host key
    key_file: str | None = None  # sftp: the private key to log in with
    tls: ssl.SSLContext | None = field(default=None, repr=False)  # ftps: how the server is verified

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _ftp(remote: _Remote) -> AbstractFileSystem:
    if remote.scheme == "ftps":
        return _VerifiedFTPS(host=remote.host, port=remote.port, username=remote.username,
                             password=remote.password, timeout=CONNECT_TIMEOUT, context=remote.tls)
    return fsspec.filesystem("ftp", host=remote.host, port=remote.port, username=remote.username,
                             password=remote.password, timeout=CONNECT_TIMEOUT, skip_instance_cache=True)


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Python's default client context (certificate chain to a trusted authority, host name in
    the certificate's subject alternative names), trusting the certificates of the PEM file
    ``ca_file`` only when given, else the system's. :class:`~workbench.errors.ConfigError` for a
    ``ca_file`` that is not a file of certificates."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"{ca_file!r} is not a file of certificates (PEM): {exc}", source=CA_FILE_VARIABLE) from None


class _VerifiedFTPS(FTPFileSystem):
    """fsspec's FTP file system over explicit TLS whose server certificate is verified: fsspec
    makes its ``FTP_TLS`` without a context, and ftplib's default context then checks neither the
    certificate nor the host name. Here ``context`` is one of :func:`_tls_context` (a trusted
    chain and the host name, checked on the control connection and on each data connection);
    the data connections are encrypted (``PROT P``) after each (re)connection. ftplib does not
    reuse the control connection's TLS session on the data connections: a server that requires
    it (vsftpd's ``require_ssl_reuse``) refuses the transfers."""

    def __init__(self, *args, context: ssl.SSLContext, **kwargs):
        self.context = context
        super().__init__(*args, tls=True, skip_instance_cache=True, **kwargs)

    def _connect(self) -> None:
        self.ftp = ftplib.FTP_TLS(context=self.context, timeout=self.timeout, encoding=self.encoding)
        self.ftp.connect(self.host, self.port)
        self.ftp.login(*self.cred)  # AUTH TLS first: the certificate is checked before the password
        self.ftp.prot_p()


def _ssh_public_key(text: str):
    """An OpenSSH public key line (``type base64 [comment]``), or a known_hosts / ssh-keyscan line
    (``host type base64``), as an asyncssh key; raises ``ValueError``."""
    import asyncssh

    for candidate in (text, text.split(None, 1)[-1]):
        try:
            return asyncssh.import_public_key(candidate.strip())
        except (asyncssh.KeyImportError, ValueError):
            continue
    raise ValueError(f"{HOST_KEY_VARIABLE} is not an SSH public key (expected 'ssh-ed25519 AAAA...')")


def _sftp(remote: _Remote) -> AbstractFileSystem:
    # sshfs's class by name: fsspec's own "sftp" (paramiko) would take any host key by default.
    import asyncssh
    from sshfs import SSHFileSystem

    options: dict = {"connect_timeout": CONNECT_TIMEOUT, "keepalive_interval": 15}
    # () is asyncssh's default (~/.ssh/known_hosts or ssh_config's); sshfs would pass None, no check.
    options["known_hosts"] = ([_ssh_public_key(remote.host_key)], [], []) if remote.host_key else ()
    if remote.username:
        options["username"] = remote.username
    if remote.password:
        options["password"] = remote.password
    if remote.key_file:
        options["client_keys"] = [remote.key_file]
    try:
        return SSHFileSystem(remote.host, port=remote.port, skip_instance_cache=True, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise ConnectionError(f"{exc.reason}: add it to ~/.ssh/known_hosts or set {HOST_KEY_VARIABLE}") from None


@dataclass(frozen=True)
class _Scheme:
    label: str
    port: int  # the default one
    connect: Callable[[_Remote], AbstractFileSystem]  # makes the fsspec filesystem, connecting


REMOTE_SCHEMES = {
    "ftp": _Scheme("FTP", 21, _ftp),
    "ftps": _Scheme("FTPS", 21, _ftp),
    "sftp": _Scheme("SFTP", 22, _sftp),
}


class Storage:
    """A file space opened from a URL (see the module docstring).

    ``url`` is the URL without its password (``***`` in its place). Making a :class:`Storage`
    raises :class:`~workbench.errors.ConfigError` for a URL that cannot be used (an unknown scheme,
    no host, a bad port, an unusable ``WORKBENCH_STORAGE_HOST_KEY`` or ``WORKBENCH_STORAGE_CA_FILE``) and
    :class:`~workbench.errors.UnavailableError` for a local folder that cannot be made; it does not
    connect to a remote space."""

    def __init__(self, url: str, retries: int = 3, retry_delay: float = 0.5):
        self.retries, self.retry_delay = retries, retry_delay
        parsed = urlparse(url)
        self.url = redacted(url)
        self._fs: AbstractFileSystem | None = None
        self._failure: str | None = None  # why the remote space could not be reached
        self._lock = threading.Lock()
        self._remote: _Remote | None = None
        if parsed.scheme in ("", "file"):
            folder = Path(unquote(parsed.path) if parsed.scheme == "file" else url).resolve()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UnavailableError(f"storage folder {folder}: {exc.strerror}", code="storage") from None
            self._fs = fsspec.filesystem("file")
            self.root = str(folder)
            return
        scheme = REMOTE_SCHEMES.get(parsed.scheme)
        if scheme is None:
            schemes = ", ".join(f"{name}://" for name in REMOTE_SCHEMES)
            raise ConfigError(f"{self.url!r}: use a folder, file://, {schemes}", source=SETTING)
        try:
            port = parsed.port or scheme.port
        except ValueError:
            raise ConfigError(f"{self.url!r}: the port is not a number from 1 to 65535", source=SETTING) from None
        if not parsed.hostname:
            raise ConfigError(f"{self.url!r}: no host", source=SETTING)
        host_key = key_file = tls = None
        if parsed.scheme == "ftps":
            tls = _tls_context(os.environ.get(CA_FILE_VARIABLE) or None)
        if parsed.scheme == "sftp":
            host_key, key_file = os.environ.get(HOST_KEY_VARIABLE) or None, os.environ.get(KEY_FILE_VARIABLE) or None
            if host_key:
                try:
                    _ssh_public_key(host_key)
                except ValueError as exc:
                    raise ConfigError(str(exc), source=HOST_KEY_VARIABLE) from None
        self._remote = _Remote(
            parsed.scheme, parsed.hostname, port, unquote(parsed.username or "") or None,
            unquote(parsed.password) if parsed.password else secret("storage_password"), host_key, key_file, tls)
        self.root = parsed.path.rstrip("/") or "/"

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    @property
    def fs(self) -> AbstractFileSystem:
        """The fsspec filesystem, connected on first use. Raises
        :class:`~workbench.errors.UnavailableError` if the space cannot be reached, then and on every
        later use of this :class:`Storage`."""
        if self._fs is not None:
            return self._fs
        assert self._remote is not None
        remote = self._remote
        with self._lock:
            if self._fs is None and self._failure is None:
                try:
                    self._fs = REMOTE_SCHEMES[remote.scheme].connect(remote)
                except Exception as exc:  # noqa: BLE001 - socket, TLS, SSH and login errors alike
                    cause = str(exc) or type(exc).__name__
                    if remote.password:
                        cause = cause.replace(remote.password, "***")
                    self._failure = (f"{REMOTE_SCHEMES[remote.scheme].label} space {remote.address}: "
                                     f"cannot connect ({cause})")
            if self._fs is None:
                raise UnavailableError(self._failure, code="storage")
            return self._fs

    def _full(self, path: str) -> str:
        parts = path.replace("\\", "/").split("/")
        clean = posixpath.normpath("/" + "/".join(parts)).lstrip("/")
        if ".." in parts or not clean:
            raise InputError(f"{path!r} is not a path inside the storage space", code="bad_path")
        return posixpath.join(self.root, clean)

    def location(self, path: str) -> str:
        """A reference to a stored file (a local path, or a URL without user or password), for
        links; never connects. Raises :class:`~workbench.errors.InputError` for a path outside the space."""
        if self._remote is None:
            return self._full(path)
        return f"{self._remote.address}{self._full(path)}"

    def exists(self, path: str) -> bool:
        """Whether ``path`` is stored. Raises :class:`~workbench.errors.UnavailableError` if the
        space cannot be reached, :class:`~workbench.errors.InputError` if the path is outside it."""
        full = self._full(path)
        return self.fs.exists(full)

    def size(self, path: str) -> int | None:
        """The size of ``path`` in bytes, None if it is not there. Raises
        :class:`~workbench.errors.UnavailableError` if the space cannot be reached,
        :class:`~workbench.errors.InputError` if the path is outside it."""
        full, fs = self._full(path), self.fs
        try:
            return int(fs.info(full)["size"])
        except (FileNotFoundError, OSError):
            return None

    def get(self, path: str) -> bytes:
        """The bytes stored at ``path``. Raises :class:`~workbench.errors.UnavailableError` if the
        file cannot be read (missing, refused by the server...) or the space cannot be reached."""
        full, fs = self._full(path), self.fs
        try:
            return fs.cat_file(full)
        except Exception as exc:  # noqa: BLE001 - file, FTP and SFTP errors alike
            raise UnavailableError(f"{path}: cannot be read ({exc})", code="storage") from None

    def put(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` atomically, retrying a failed upload. Raises
        :class:`~workbench.errors.UnavailableError` if it is still not stored after ``retries``
        attempts, or at once if the space cannot be reached (reaching it is not retried);
        :class:`~workbench.errors.InputError` if the path is outside it."""
        full = self._full(path)
        part = full + ".part"
        fs = self.fs
        error: Exception | None = None
        for attempt in range(self.retries):
            try:
                fs.makedirs(posixpath.dirname(full), exist_ok=True)
                with fs.open(part, "wb") as fh:
                    fh.write(data)
                if fs.exists(full):
                    fs.rm(full)
                fs.mv(part, full)
                return
            except Exception as exc:  # noqa: BLE001 - network and file errors alike are retried
                error = exc
                time.sleep(self.retry_delay * (attempt + 1))
        raise UnavailableError(f"{path}: not stored after {self.retries} attempts ({error})", code="storage")

    def remove(self, path: str) -> bool:
        """Delete the file ``path``; False if it was not there. Raises
        :class:`~workbench.errors.UnavailableError` if it cannot be deleted or the space cannot be
        reached, :class:`~workbench.errors.InputError` if the path is outside it."""
        full, fs = self._full(path), self.fs
        try:
            if not fs.exists(full):
                return False
            fs.rm(full)
            return True
        except Exception as exc:  # noqa: BLE001 - file, FTP and SFTP errors alike
            raise UnavailableError(f"{path}: cannot be deleted ({exc})", code="storage") from None

    def put_many(self, files: dict[str, bytes], replace: bool = False) -> UploadReport:
        """Store several files; one failure does not stop the others (each is in the report's
        ``failed``). Files already stored with the same size are skipped unless ``replace``.
        Raises :class:`~workbench.errors.UnavailableError` if the space cannot be reached (then
        nothing is stored); a path outside the space is a failed file."""
        report = UploadReport()
        if files:
            self.fs  # noqa: B018 - reached once for all, or UnavailableError
        for path, data in files.items():
            try:
                if not replace and self.size(path) == len(data):
                    report.skipped.append(path)
                    continue
                self.put(path, data)
                report.uploaded.append(path)
            except (UnavailableError, InputError) as exc:  # this file: the others go on
                report.failed[path] = str(exc)
        return report

    def list(self, folder: str = "") -> list[str]:
        """Files under ``folder`` (relative paths), recursively; empty if it is not there. Raises
        :class:`~workbench.errors.UnavailableError` if the space cannot be reached,
        :class:`~workbench.errors.InputError` if the folder is outside it."""
        base = self._full(folder) if folder else self.root
        fs = self.fs
        try:
            found = fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root.rstrip("/") + "/"
        return sorted(p[len(root):] if p.startswith(root) else p for p in found)

"""The operator's FTP space: where invoice PDFs, reports and SEPA files are stored.

Chosen by URL (setting ``storage_url``): a local folder (the default, ``var/ftp``, or
``file:///srv/billing``), ``ftp://user@host:21/base`` or ``ftps://...`` (explicit TLS), through
fsspec. The password comes from the URL or from ``WORKBENCH_STORAGE_PASSWORD``.

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

import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import fsspec

from workbench.config import secret


class StorageError(RuntimeError):
    """A file that could not be stored or read (names the file and the cause)."""


@dataclass
class UploadReport:
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already there
    failed: dict[str, str] = field(default_factory=dict)  # path -> error

    @property
    def ok(self) -> bool:
        return not self.failed


def invoice_path(number: str, invoice_date, kind: str = "invoice", run_id: int | None = None) -> str:
    """The documented place of an invoice, draft or credit note PDF."""
    if number.startswith("PRE-"):
        return f"drafts/run-{run_id}/{number}.pdf"
    folder = "credit-notes" if kind == "credit_note" else "invoices"
    return f"{folder}/{invoice_date.year}/{invoice_date.month:02d}/{number}.pdf"


class Storage:
    """A file space opened from a URL (see the module docstring)."""

    def __init__(self, url: str, retries: int = 3, retry_delay: float = 0.5):
        self.url, self.retries, self.retry_delay = url, retries, retry_delay
        parsed = urlparse(url)
        if parsed.scheme in ("ftp", "ftps"):
            password = unquote(parsed.password) if parsed.password else secret("storage_password")
            try:
                self.fs = fsspec.filesystem(
                    "ftp", host=parsed.hostname, port=parsed.port or 21, username=unquote(parsed.username or "")
                    or None, password=password, tls=parsed.scheme == "ftps", timeout=30, skip_instance_cache=True)
            except Exception as exc:  # noqa: BLE001 - socket and ftplib errors alike
                raise StorageError(f"FTP space {parsed.scheme}://{parsed.hostname}:{parsed.port or 21}: cannot "
                                   f"connect ({exc})") from None
            self.root = parsed.path.rstrip("/") or "/"
        elif parsed.scheme in ("", "file"):
            folder = Path(unquote(parsed.path) if parsed.scheme == "file" else url).resolve()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"storage folder {folder}: {exc.strerror}") from None
            self.fs = fsspec.filesystem("file")
            self.root = str(folder)
        else:
            raise StorageError(f"storage URL {url!r}: use a folder, file://, ftp:// or ftps://")

    def _full(self, path: str) -> str:
        parts = path.replace("\\", "/").split("/")
        clean = posixpath.normpath("/" + "/".join(parts)).lstrip("/")
        if ".." in parts or not clean:
            raise StorageError(f"{path!r} is not a path inside the storage space")
        return posixpath.join(self.root, clean)

    def location(self, path: str) -> str:
        """A reference to a stored file (a local path or an ftp:// URL), for links."""
        if self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol:
            return self._full(path)
        parsed = urlparse(self.url)
        return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 21}{self._full(path)}"

    def exists(self, path: str) -> bool:
        return self.fs.exists(self._full(path))

    def size(self, path: str) -> int | None:
        try:
            return int(self.fs.info(self._full(path))["size"])
        except (FileNotFoundError, OSError):
            return None

    def get(self, path: str) -> bytes:
        try:
            return self.fs.cat_file(self._full(path))
        except (FileNotFoundError, OSError) as exc:
            raise StorageError(f"{path}: cannot be read ({exc})") from None

    def put(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path`` atomically, retrying; raises :class:`StorageError`."""
        full = self._full(path)
        part = full + ".part"
        error: Exception | None = None
        for attempt in range(self.retries):
            try:
                self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
                with self.fs.open(part, "wb") as fh:
                    fh.write(data)
                if self.fs.exists(full):
                    self.fs.rm(full)
                self.fs.mv(part, full)
                return
            except Exception as exc:  # noqa: BLE001 - network and file errors alike are retried
                error = exc
                time.sleep(self.retry_delay * (attempt + 1))
        raise StorageError(f"{path}: not stored after {self.retries} attempts ({error})")

    def put_many(self, files: dict[str, bytes], replace: bool = False) -> UploadReport:
        """Store several files; one failure does not stop the others. Files already stored with
        the same size are skipped unless ``replace``."""
        report = UploadReport()
        for path, data in files.items():
            if not replace and self.size(path) == len(data):
                report.skipped.append(path)
                continue
            try:
                self.put(path, data)
                report.uploaded.append(path)
            except StorageError as exc:
                report.failed[path] = str(exc)
        return report

    def list(self, folder: str = "") -> list[str]:
        """Files under ``folder`` (relative paths), recursively."""
        base = self._full(folder) if folder else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root.rstrip("/") + "/"
        return sorted(p[len(root):] if p.startswith(root) else p for p in found)

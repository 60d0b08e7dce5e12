"""The FTP space: a local folder and a real FTP server on 127.0.0.1 (pyftpdlib)."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

from workbench.storage import Storage, StorageError, invoice_path


@pytest.fixture
def ftp_server(tmp_path):
    """An FTP server on 127.0.0.1 serving ``tmp_path/ftp`` to user ``billing``; ``refuse`` holds
    names whose upload the server fails (to simulate a faulty link)."""
    root = tmp_path / "ftp"
    root.mkdir()
    refuse: set[str] = set()

    class Handler(FTPHandler):
        def ftp_STOR(self, file, mode="w"):  # noqa: N802 - pyftpdlib's naming
            if any(file.endswith(name) for name in refuse):
                self.respond("451 Requested action aborted: local error in processing.")
                return None
            return super().ftp_STOR(file, mode)

    authorizer = DummyAuthorizer()
    authorizer.add_user("billing", "s3cret", str(root), perm="elradfmwMT")
    Handler.authorizer = authorizer
    Handler.passive_ports = range(60000, 60100)
    server = FTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2, "blocking": True}, daemon=True)
    thread.start()
    try:
        yield {"url": f"ftp://billing:s3cret@127.0.0.1:{server.address[1]}/space", "root": root, "refuse": refuse}
    finally:
        server.close_all()
        thread.join(timeout=5)


def test_layout_of_documents():
    assert invoice_path("F2026-000123", date(2026, 11, 1)) == "invoices/2026/11/F2026-000123.pdf"
    assert invoice_path("A2026-000001", date(2026, 11, 5), "credit_note") == "credit-notes/2026/11/A2026-000001.pdf"
    assert invoice_path("PRE-17-0001", date(2026, 11, 1), run_id=17) == "drafts/run-17/PRE-17-0001.pdf"


def test_local_folder(tmp_path):
    space = Storage(str(tmp_path / "space"))
    space.put("invoices/2026/10/F2026-000001.pdf", b"%PDF-1")
    assert (tmp_path / "space" / "invoices/2026/10/F2026-000001.pdf").read_bytes() == b"%PDF-1"
    assert space.get("invoices/2026/10/F2026-000001.pdf") == b"%PDF-1"
    assert space.list() == ["invoices/2026/10/F2026-000001.pdf"]
    assert not list((tmp_path / "space").rglob("*.part"))
    with pytest.raises(StorageError, match="inside the storage space"):
        space.put("../escape.pdf", b"x")


def test_ftp_upload_atomic_and_resumable(ftp_server):
    space = Storage(ftp_server["url"], retries=2, retry_delay=0.05)
    files = {f"invoices/2026/10/F2026-{i:06d}.pdf": f"%PDF invoice {i}".encode() for i in range(1, 5)}
    ftp_server["refuse"].add("F2026-000003.pdf.part")
    report = space.put_many(files)
    assert sorted(report.uploaded) == sorted(set(files) - {"invoices/2026/10/F2026-000003.pdf"})
    assert list(report.failed) == ["invoices/2026/10/F2026-000003.pdf"]
    assert "F2026-000003" in report.failed["invoices/2026/10/F2026-000003.pdf"]
    stored = ftp_server["root"] / "space" / "invoices" / "2026" / "10"
    assert sorted(p.name for p in stored.iterdir()) == ["F2026-000001.pdf", "F2026-000002.pdf", "F2026-000004.pdf"]
    # the link is back: a re-run uploads only what is missing
    ftp_server["refuse"].clear()
    again = space.put_many(files)
    assert again.uploaded == ["invoices/2026/10/F2026-000003.pdf"]
    assert len(again.skipped) == 3 and again.ok
    assert (stored / "F2026-000003.pdf").read_bytes() == b"%PDF invoice 3"
    assert space.get("invoices/2026/10/F2026-000004.pdf") == b"%PDF invoice 4"
    assert not list(stored.glob("*.part"))


def test_ftp_password_from_the_environment(ftp_server, monkeypatch):
    url = ftp_server["url"].replace("billing:s3cret@", "billing@")
    monkeypatch.setenv("WORKBENCH_STORAGE_PASSWORD", "s3cret")
    Storage(url).put("reports/x.txt", b"ok")
    assert (ftp_server["root"] / "space" / "reports" / "x.txt").read_bytes() == b"ok"
    monkeypatch.setenv("WORKBENCH_STORAGE_PASSWORD", "wrong")
    with pytest.raises(Exception):  # noqa: B017 - ftplib's login error, whatever its class
        Storage(url, retries=1).put("reports/y.txt", b"no")


def test_unknown_scheme_is_refused():
    with pytest.raises(StorageError, match="use a folder"):
        Storage("s3://bucket/x")

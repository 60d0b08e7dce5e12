"""Passwords in the settings' URLs never reach what the commands write: their output, their
error messages, their logs, the files under the output folder, the outbox, the FTP space and the
executed production notebook kept as the audit trail (stdout and stderr are read at the file
descriptors, so the notebook's kernel and any library writing there are heard too).

Every command runs on a small generated operator with real servers on the loopback: an FTP space
(pyftpdlib) given as ``ftp://billing:<password>@127.0.0.1:PORT/space``, an SMTP server (aiosmtpd)
that wants a login, and, where its binaries are installed, PostgreSQL given with the password in
its URL (the test server trusts every local connection, so the password is accepted and unused).
"""

from __future__ import annotations

import io
import logging
import os
import threading
import zipfile
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import _pg_bin, new_postgres_database
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
from pypdf import PdfReader
from servers import free_port

from workbench import cli
from workbench.sample import generate_operator

#: one password for every server, unlike any other text the commands write
PASSWORD = "S3cretPW-q7Zk"


class _Inbox:
    def __init__(self):
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
        self.messages.append(envelope.original_content or envelope.content)
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def servers(tmp_path):
    """The FTP and SMTP servers, both logging in user ``billing`` with :data:`PASSWORD`."""
    root = tmp_path / "ftp-root"
    root.mkdir()
    authorizer = DummyAuthorizer()
    authorizer.add_user("billing", PASSWORD, str(root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "passive_ports": range(60100, 60200)})
    ftp = FTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=ftp.serve_forever, kwargs={"timeout": 0.2, "blocking": True}, daemon=True)
    thread.start()

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"billing", PASSWORD.encode()),
                          handled=False)

    inbox, port, stopped = _Inbox(), free_port(), []
    smtp = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=5, authenticator=authenticator,
                      auth_required=True, auth_require_tls=False)  # plain text on the loopback only
    smtp.start()
    yield {"ftp_url": f"ftp://billing:{PASSWORD}@127.0.0.1:{ftp.address[1]}/space", "ftp_root": root,
           "smtp_url": f"smtp://billing@127.0.0.1:{port}", "inbox": inbox,
           "stop": lambda: (ftp.close_all(), smtp.stop(), stopped.append(True))}
    if not stopped:
        smtp.stop()
    ftp.close_all()
    thread.join(timeout=5)


def _database_url(request, tmp_path) -> str:
    """PostgreSQL with the password in its URL where the server binaries are installed, else SQLite."""
    if _pg_bin("initdb") and _pg_bin("pg_ctl"):
        url = new_postgres_database(request.getfixturevalue("postgres_server"))
        return url.replace("postgresql+psycopg://postgres@", f"postgresql+psycopg://postgres:{PASSWORD}@")
    return f"sqlite:///{tmp_path / 'wb.sqlite'}"


def _texts(path: Path) -> list[str]:
    """What a written file says: its bytes as text, the members of a zip (an Excel workbook), the
    text of a PDF."""
    data = path.read_bytes()
    texts = [data.decode("utf-8", "replace")]
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            texts += [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()]
    if data.startswith(b"%PDF"):
        texts += [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]
    return texts


def test_no_command_writes_a_password_anywhere(servers, request, tmp_path, monkeypatch, capfd, caplog):
    generate_operator(tmp_path / "data", seed=5, customers=20, calls=2_000)
    database_url = _database_url(request, tmp_path)
    for name in [n for n in os.environ if n.startswith("WORKBENCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", database_url)
    monkeypatch.setenv("WORKBENCH_STORAGE_URL", servers["ftp_url"])
    monkeypatch.setenv("WORKBENCH_SMTP_URL", servers["smtp_url"])
    monkeypatch.setenv("WORKBENCH_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("WORKBENCH_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("WORKBENCH_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    said: list[str] = []

    def run(*args: str, status: int | None = 0) -> str:
        code = cli.main(list(args))
        out = capfd.readouterr()
        said.extend([out.out, out.err])
        assert status is None or code == status, (args, out.out, out.err)
        return out.out + out.err

    run("db-upgrade")
    demo = run("demo", "--data", str(tmp_path / "data"), "--period", "2026-10")
    assert "FTP space ftp://billing:***@127.0.0.1:" in demo and "database " in demo
    assert "PDFs of run 2: 20 stored" in demo and "in ftp://billing:***@127.0.0.1:" in demo
    assert len(servers["inbox"].messages) > 0  # logged in to the SMTP server with the password
    run("load-reference", str(tmp_path / "data" / "reference"))
    run("load-cdrs", *sorted(str(p) for p in (tmp_path / "data" / "cdrs").iterdir()))
    run("reprocess-rejects")
    run("rate", "--period", "2026-10")
    run("runs")
    run("report", "1")
    run("compare", "1", "2")
    run("documents", "--run", "2")
    run("documents", "--invoice", "F2026-000001", "--annex")
    run("mail", "--period", "2026-10")
    run("mail", "--retry")
    run("sepa")
    run("sepa", "--period", "2026-10", "--force")
    run("credit-note", "F2026-000002", "--reason", "wrong rate", "--reinvoice")
    preprod = run("preprod", "--period", "2026-10", "--pdfs")
    assert "PDFs of run 3" in preprod
    run("production-notebook", "--run", "3", "--period", "2026-10", "--no-deliver", "--force", "test")
    run("production", "--run", "3")  # already issued by the notebook: nothing issued twice
    # and when the servers are gone, the errors name the URLs without their password
    servers["stop"]()
    failed = run("documents", "--invoice", "F2026-000001", status=2)
    assert "FTP space ftp://127.0.0.1:" in failed
    run("credit-note", "F2026-000003", "--reason", "x", status=None)
    run("production-notebook", "--run", "3", "--period", "2026-10", status=2)

    assert PASSWORD not in "\n".join(said)
    assert PASSWORD not in caplog.text
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.relative_to(tmp_path).parts
               and p.suffix not in (".sqlite", ".sqlite-journal", ".sqlite-wal")]
    executed = list((tmp_path / "out" / "runs").glob("*.ipynb"))
    assert len(executed) == 2 and list((servers["ftp_root"] / "space" / "audit" / "2026-10").glob("*.ipynb"))
    assert any(p.suffix == ".xlsx" for p in written) and any(p.suffix == ".pdf" for p in written)
    assert any(p.suffix == ".xml" for p in written) and any(p.suffix == ".eml" for p in written) is False
    leaks = [str(p) for p in written if any(PASSWORD in text for text in _texts(p))]
    assert leaks == []
    assert not any(PASSWORD.encode() in message for message in servers["inbox"].messages)

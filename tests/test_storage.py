"""The FTP space: a local folder and a real FTP server on 127.0.0.1 (pyftpdlib)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import date

import asyncssh
import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer
from servers import free_port

from workbench.errors import ConfigError, InputError, UnavailableError
from workbench.storage import Storage, invoice_path


@pytest.fixture
def ftp_server(tmp_path):
    """An FTP server on 127.0.0.1 serving ``tmp_path/ftp`` to user ``billing``; ``refuse`` holds
    names whose upload the server fails (to simulate a faulty link); ``connections`` gets the address of
    each client that connects."""
    root = tmp_path / "ftp"
    root.mkdir()
    refuse: set[str] = set()
    connections: list[str] = []

    class Handler(FTPHandler):
        def on_connect(self):
            connections.append(self.remote_ip)

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
        yield {"url": f"ftp://billing:s3cret@127.0.0.1:{server.address[1]}/space", "port": server.address[1],
               "root": root, "refuse": refuse, "connections": connections}
    finally:
        server.close_all()
        thread.join(timeout=5)


def test_layout_of_documents():
    assert invoice_path("F2026-000123", date(2026, 11, 1)) == "invoices/2026/11/F2026-000123.pdf"
    assert invoice_path("A2026-000001", date(2026, 11, 5), "credit_note") == "credit-notes/2026/11/A2026-000001.pdf"
    assert invoice_path("PRE-17-0001", date(2026, 11, 1), run_id=17) == "drafts/run-17/PRE-17-0001.pdf"


@pytest.mark.parametrize(("number", "run_id", "message"), [
    ("../../../tmp/evil", None, "not a document number"),
    ("F2026/../../x", None, "not a document number"),
    ("F2026-000001.pdf", None, "not a document number"),
    ("", None, "not a document number"),
    ("PRE-1-0001", "../x", "must be a number"),
])
def test_a_document_number_is_checked_before_it_names_a_file(number, run_id, message):
    with pytest.raises(InputError, match=message):
        invoice_path(number, date(2026, 11, 1), run_id=run_id)


def test_local_folder(tmp_path):
    space = Storage(str(tmp_path / "space"))
    space.put("invoices/2026/10/F2026-000001.pdf", b"%PDF-1")
    assert (tmp_path / "space" / "invoices/2026/10/F2026-000001.pdf").read_bytes() == b"%PDF-1"
    assert space.get("invoices/2026/10/F2026-000001.pdf") == b"%PDF-1"
    assert space.list() == ["invoices/2026/10/F2026-000001.pdf"]
    assert not list((tmp_path / "space").rglob("*.part"))
    with pytest.raises(InputError, match="inside the storage space"):
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
    monkeypatch.setenv("WORKBENCH_STORAGE_PASSWORD", "Wr0ng-Pa55word")
    with pytest.raises(UnavailableError) as raised:
        Storage(url, retries=1).put("reports/y.txt", b"no")
    assert str(raised.value) == (f"FTP space ftp://127.0.0.1:{ftp_server['port']}: cannot connect "
                                 "(530 Authentication failed.)")
    assert not (ftp_server["root"] / "space" / "reports" / "y.txt").exists()


def test_unknown_scheme_is_refused():
    with pytest.raises(ConfigError, match="use a folder") as raised:
        Storage("s3://key:T0p-s3cret@bucket/x")
    assert str(raised.value) == ("setting storage_url (WORKBENCH_STORAGE_URL): 's3://key:***@bucket/x': use a folder, "
                                 "file://, ftp://, ftps://, sftp://")
    with pytest.raises(ConfigError, match="no host"):
        Storage("sftp:///base")
    with pytest.raises(ConfigError, match="the port is not a number"):
        Storage("ftp://billing:T0p-s3cret@host:99999/base")


def test_secrets_stay_out_of_repr_and_location(monkeypatch):
    space = Storage("ftp://billing:T0p-s3cret@ftp.example:2121/space")
    assert repr(space) == "Storage('ftp://billing:***@ftp.example:2121/space')"
    assert space.url == "ftp://billing:***@ftp.example:2121/space"
    assert space.location("invoices/2026/10/F2026-000001.pdf") == \
        "ftp://ftp.example:2121/space/invoices/2026/10/F2026-000001.pdf"
    monkeypatch.setenv("WORKBENCH_STORAGE_PASSWORD", "T0p-s3cret")
    space = Storage("sftp://billing@sftp.example/space")
    assert repr(space) == "Storage('sftp://billing@sftp.example/space')"
    assert space.location("sepa/2026/11/M1.xml") == "sftp://sftp.example:22/space/sepa/2026/11/M1.xml"


@pytest.fixture
def sftp_server(tmp_path, monkeypatch):
    """An SFTP server (asyncssh) on 127.0.0.1, run in a thread of its own, serving ``tmp_path/sftp`` as its
    root to user ``billing``, who logs in with password ``s3cret`` or the private key in ``key_file``.
    ``host_key`` is its public host key; ``connections`` counts the SSH connections it accepted; ``refuse``
    holds names whose upload it fails; ``calls`` lists the opens and renames it served.

    The client side is kept from the machine's SSH set-up: ``HOME`` is an empty folder (no known_hosts, keys
    or ssh config), there is no SSH agent, no password or key file in the environment, and
    ``WORKBENCH_STORAGE_HOST_KEY`` is the server's host key."""
    root = tmp_path / "sftp"
    root.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("SSH_AUTH_SOCK", "WORKBENCH_STORAGE_PASSWORD", "WORKBENCH_STORAGE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp_path / "id_billing"
    client_key.write_private_key(str(key_file))
    key_file.chmod(0o600)
    connections: list[asyncssh.SSHServerConnection] = []
    refuse: set[str] = set()
    calls: list[tuple[str, ...]] = []

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn):
            connections.append(conn)

        def begin_auth(self, username):
            return True  # every user must authenticate

        def password_auth_supported(self):
            return True

        def validate_password(self, username, password):
            return (username, password) == ("billing", "s3cret")

        def public_key_auth_supported(self):
            return True

        def validate_public_key(self, username, key):
            return username == "billing" and key.public_data == client_key.public_data

    class Files(asyncssh.SFTPServer):
        def __init__(self, chan):
            super().__init__(chan, chroot=str(root))

        def open(self, path, pflags, attrs):
            name = path.decode()
            calls.append(("open", name))
            if any(name.endswith(refused) for refused in refuse):
                raise asyncssh.SFTPFailure("refused by the test server")
            return super().open(path, pflags, attrs)

        def rename(self, oldpath, newpath):
            calls.append(("rename", oldpath.decode(), newpath.decode()))
            return super().rename(oldpath, newpath)

        def posix_rename(self, oldpath, newpath):
            calls.append(("rename", oldpath.decode(), newpath.decode()))
            return super().posix_rename(oldpath, newpath)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(make):
        return asyncio.run_coroutine_threadsafe(make(), loop).result(timeout=10)

    async def start():
        return await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key], server_factory=Server,
                                     sftp_factory=Files, login_timeout=10)

    async def stop():
        listener.close()
        for conn in connections:
            conn.close()
        await listener.wait_closed()

    listener = run(start)
    port = listener.sockets[0].getsockname()[1]
    public_host_key = host_key.export_public_key().decode().strip()
    monkeypatch.setenv("WORKBENCH_STORAGE_HOST_KEY", public_host_key)
    try:
        yield {"url": f"sftp://billing:s3cret@127.0.0.1:{port}/space", "port": port,
               "root": root, "home": home, "host_key": public_host_key, "key_file": key_file,
               "connections": connections, "refuse": refuse, "calls": calls}
    finally:
        run(stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_sftp_upload_atomic_and_resumable(sftp_server):
    space = Storage(sftp_server["url"], retries=2, retry_delay=0.05)
    files = {f"invoices/2026/10/F2026-{i:06d}.pdf": f"%PDF invoice {i}".encode() for i in range(1, 5)}
    sftp_server["refuse"].add("F2026-000003.pdf.part")
    report = space.put_many(files)
    assert sorted(report.uploaded) == ["invoices/2026/10/F2026-000001.pdf", "invoices/2026/10/F2026-000002.pdf",
                                       "invoices/2026/10/F2026-000004.pdf"]
    assert list(report.failed) == ["invoices/2026/10/F2026-000003.pdf"]
    assert report.failed["invoices/2026/10/F2026-000003.pdf"].startswith(
        "invoices/2026/10/F2026-000003.pdf: not stored after 2 attempts (")
    stored = sftp_server["root"] / "space" / "invoices" / "2026" / "10"
    assert sorted(p.name for p in stored.iterdir()) == ["F2026-000001.pdf", "F2026-000002.pdf", "F2026-000004.pdf"]
    # written under <name>.part, then renamed
    assert ("open", "/space/invoices/2026/10/F2026-000001.pdf.part") in sftp_server["calls"]
    assert ("rename", "/space/invoices/2026/10/F2026-000001.pdf.part",
            "/space/invoices/2026/10/F2026-000001.pdf") in sftp_server["calls"]
    assert ("open", "/space/invoices/2026/10/F2026-000001.pdf") not in sftp_server["calls"]
    # the link is back: a re-run uploads only what is missing
    sftp_server["refuse"].clear()
    again = space.put_many(files)
    assert again.uploaded == ["invoices/2026/10/F2026-000003.pdf"]
    assert sorted(again.skipped) == ["invoices/2026/10/F2026-000001.pdf", "invoices/2026/10/F2026-000002.pdf",
                                     "invoices/2026/10/F2026-000004.pdf"]
    assert again.ok
    assert not list(stored.glob("*.part"))
    assert (stored / "F2026-000003.pdf").read_bytes() == b"%PDF invoice 3"
    # read back, replaced, listed, sized
    assert space.get("invoices/2026/10/F2026-000004.pdf") == b"%PDF invoice 4"
    space.put("invoices/2026/10/F2026-000004.pdf", b"%PDF invoice 4, corrected")
    assert (stored / "F2026-000004.pdf").read_bytes() == b"%PDF invoice 4, corrected"
    assert space.size("invoices/2026/10/F2026-000004.pdf") == 25
    assert space.size("invoices/2026/10/F2026-000009.pdf") is None
    assert space.exists("invoices/2026/10/F2026-000002.pdf")
    assert not space.exists("invoices/2026/10/F2026-000009.pdf")
    assert space.list("invoices/2026") == ["invoices/2026/10/F2026-000001.pdf", "invoices/2026/10/F2026-000002.pdf",
                                           "invoices/2026/10/F2026-000003.pdf", "invoices/2026/10/F2026-000004.pdf"]
    assert space.list("drafts") == []
    with pytest.raises(UnavailableError, match=r"^invoices/2026/10/F2026-000009\.pdf: cannot be read \("):
        space.get("invoices/2026/10/F2026-000009.pdf")
    with pytest.raises(InputError, match="inside the storage space"):
        space.put("../escape.pdf", b"x")
    assert not (sftp_server["root"] / "escape.pdf").exists()
    assert len(sftp_server["connections"]) == 1  # one connection for all of it


def test_sftp_password_from_the_environment(sftp_server, monkeypatch):
    url = sftp_server["url"].replace("billing:s3cret@", "billing@")
    monkeypatch.setenv("WORKBENCH_STORAGE_PASSWORD", "s3cret")
    Storage(url).put("reports/x.txt", b"ok")
    assert (sftp_server["root"] / "space" / "reports" / "x.txt").read_bytes() == b"ok"
    monkeypatch.setenv("WORKBENCH_STORAGE_PASSWORD", "Wr0ng-Pa55word")
    space = Storage(url, retries=3)
    expected = (f"SFTP space sftp://127.0.0.1:{sftp_server['port']}: cannot connect "
                "(Permission denied for user billing on host 127.0.0.1)")
    with pytest.raises(UnavailableError) as raised:
        space.put("reports/y.txt", b"no")
    assert str(raised.value) == expected
    # a space that could not be reached is not tried again by the same Storage
    with pytest.raises(UnavailableError) as again:
        space.put_many({"reports/z.txt": b"no"})
    assert str(again.value) == expected
    assert len(sftp_server["connections"]) == 2
    assert not (sftp_server["root"] / "space" / "reports" / "y.txt").exists()


def test_sftp_login_with_a_key_file(sftp_server, monkeypatch):
    url = sftp_server["url"].replace("billing:s3cret@", "billing@")
    with pytest.raises(UnavailableError, match="Permission denied for user billing"):
        Storage(url).exists("reports")  # no password, no key
    monkeypatch.setenv("WORKBENCH_STORAGE_KEY_FILE", str(sftp_server["key_file"]))
    space = Storage(url)
    space.put("reports/k.txt", b"by key")
    assert (sftp_server["root"] / "space" / "reports" / "k.txt").read_bytes() == b"by key"


def test_sftp_host_key_is_checked(sftp_server, monkeypatch):
    port, url = sftp_server["port"], sftp_server["url"]
    # no WORKBENCH_STORAGE_HOST_KEY and an empty ~/.ssh/known_hosts: refused
    monkeypatch.delenv("WORKBENCH_STORAGE_HOST_KEY")
    with pytest.raises(UnavailableError) as raised:
        Storage(url).exists("reports")
    assert str(raised.value) == (f"SFTP space sftp://127.0.0.1:{port}: cannot connect (Host key is not trusted for "
                                 "host 127.0.0.1: add it to ~/.ssh/known_hosts or set WORKBENCH_STORAGE_HOST_KEY)")
    # known to ~/.ssh/known_hosts: accepted
    (sftp_server["home"] / ".ssh").mkdir()
    (sftp_server["home"] / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {sftp_server['host_key']}\n")
    assert Storage(url).list() == []
    # WORKBENCH_STORAGE_HOST_KEY is the only key trusted, known_hosts aside
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    monkeypatch.setenv("WORKBENCH_STORAGE_HOST_KEY", other)
    with pytest.raises(UnavailableError, match="Host key is not trusted"):
        Storage(url).exists("reports")
    # a line of ssh-keyscan output (host first) is taken as well
    monkeypatch.setenv("WORKBENCH_STORAGE_HOST_KEY", f"[127.0.0.1]:{port} {sftp_server['host_key']}")
    assert Storage(url).exists("reports") is False
    monkeypatch.setenv("WORKBENCH_STORAGE_HOST_KEY", "SHA256:not-a-key")
    with pytest.raises(ConfigError, match="WORKBENCH_STORAGE_HOST_KEY is not an SSH public key"):
        Storage(url)
    assert len(sftp_server["connections"]) == 4  # the refused ones included, none for the bad setting


@pytest.mark.parametrize("scheme", ["ftp", "sftp"])
def test_remote_space_connects_on_first_use(scheme, request):
    server = request.getfixturevalue(f"{scheme}_server")
    space = Storage(server["url"])
    assert space.location("reports/x.txt") == f"{scheme}://127.0.0.1:{server['port']}/space/reports/x.txt"
    assert server["connections"] == []
    assert space.exists("reports/x.txt") is False
    assert len(server["connections"]) == 1
    # nothing listening: made without error, refused on first use
    port = free_port()  # nothing listens there
    space = Storage(f"{scheme}://billing:s3cret@127.0.0.1:{port}/space")
    assert space.location("reports/x.txt") == f"{scheme}://127.0.0.1:{port}/space/reports/x.txt"
    with pytest.raises(UnavailableError) as raised:
        space.list()
    label = scheme.upper()
    assert str(raised.value).startswith(f"{label} space {scheme}://127.0.0.1:{port}: cannot connect ([Errno 111] ")
    assert "s3cret" not in str(raised.value)


def test_production_and_documents_exit_3_with_the_count_of_pdfs_the_ftp_space_refused(ftp_server, tmp_path,
                                                                                       monkeypatch, capsys):
    from datetime import datetime

    from workbench import jobs
    from workbench.cli import main
    from workbench.config import Settings
    from workbench.sample import generate_operator

    data = tmp_path / "data"
    generate_operator(data, seed=5, customers=6, calls=300)
    url = f"sqlite:///{tmp_path / 'wb.sqlite'}"
    settings = Settings(database_url=url, storage_url=str(tmp_path / "local"), output_dir=str(tmp_path / "out"))
    engine = jobs.open_database(settings)
    jobs.load_reference(engine, settings, data / "reference")
    jobs.load_cdrs(engine, settings, jobs.cdr_files(data / "cdrs"))
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), datetime(2026, 11, 1, 6, 0)).run
    issued = run.invoices
    assert issued >= 3
    monkeypatch.setenv("WORKBENCH_STORAGE_URL", ftp_server["url"])
    ftp_server["refuse"].update({"F2026-000002.pdf.part", "F2026-000003.pdf.part"})  # their uploads fail
    assert main(["--database-url", url, "production", "--run", str(run.run_id), "--force", "test"]) == 3
    err = capsys.readouterr().err
    production_run = run.run_id + 1
    assert (f"incomplete: 2 of {issued} PDFs of run {production_run} not stored: store them with "
            f"`workbench documents --run {production_run}` once the FTP space is back") in err
    assert "s3cret" not in err

    # still refused: 2 left of the same documents; then the space takes them
    assert main(["--database-url", url, "documents", "--run", str(production_run)]) == 3
    assert f"incomplete: 2 of {issued} PDFs of run {production_run} not stored" in capsys.readouterr().err
    ftp_server["refuse"].clear()
    assert main(["--database-url", url, "documents", "--run", str(production_run)]) == 0
    assert "incomplete" not in capsys.readouterr().err


def _certificate(folder, name: str, *, ip: str | None = None, dns: str | None = None) -> tuple[str, str]:
    """A self-signed certificate (and its key) for the address ``ip`` or the host name ``dns``,
    written as PEM files into ``folder``; returns their paths."""
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"billing FTPS {name}")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip))] if ip else [x509.DNSName(dns)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@contextlib.contextmanager
def _ftps(root, cert: str, key: str):
    """An FTPS server (explicit TLS required on the control and data connections) on 127.0.0.1
    serving ``root`` to user ``billing`` with the certificate ``cert``; yields its port and the
    list of the users that log in."""
    from pyftpdlib.handlers import TLS_FTPHandler

    logins: list[str] = []

    class Handler(TLS_FTPHandler):
        certfile, keyfile = cert, key
        tls_control_required = tls_data_required = True

        def on_login(self, username):
            logins.append(username)

    authorizer = DummyAuthorizer()
    authorizer.add_user("billing", "s3cret", str(root), perm="elradfmwMT")
    Handler.authorizer = authorizer
    server = FTPServer(("127.0.0.1", 0), Handler, ioloop=IOLoop())  # its own loop: two may run at once
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2, "blocking": True}, daemon=True)
    thread.start()
    try:
        yield server.address[1], logins
    finally:
        server.close_all()
        thread.join(timeout=5)


@pytest.fixture
def ftps_server(tmp_path):
    """:func:`_ftps` serving ``tmp_path/ftps`` with a self-signed certificate for 127.0.0.1."""
    root = tmp_path / "ftps"
    root.mkdir()
    cert, key = _certificate(tmp_path, "server", ip="127.0.0.1")
    with _ftps(root, cert, key) as (port, logins):
        yield {"url": f"ftps://billing:s3cret@127.0.0.1:{port}/space", "root": root, "cert": cert,
               "logins": logins, "folder": tmp_path}


def test_an_ftps_server_whose_certificate_is_trusted_stores_the_files_encrypted(ftps_server, monkeypatch):
    monkeypatch.setenv("WORKBENCH_STORAGE_CA_FILE", ftps_server["cert"])
    space = Storage(ftps_server["url"])
    space.put("invoices/2026/10/F2026-000001.pdf", b"%PDF-1 invoice")  # data connection: PROT P required
    assert (ftps_server["root"] / "space/invoices/2026/10/F2026-000001.pdf").read_bytes() == b"%PDF-1 invoice"
    assert space.get("invoices/2026/10/F2026-000001.pdf") == b"%PDF-1 invoice"
    assert ftps_server["logins"] == ["billing"]


def test_an_ftps_server_whose_certificate_is_not_trusted_is_refused_before_the_login(ftps_server, monkeypatch):
    monkeypatch.delenv("WORKBENCH_STORAGE_CA_FILE", raising=False)
    space = Storage(ftps_server["url"], retries=1)
    with pytest.raises(UnavailableError, match=r"FTPS space ftps://127.0.0.1:\d+: cannot connect \(.*certificate "
                                               r"verify failed: self.signed certificate") as raised:
        space.put("x.txt", b"x")
    assert "s3cret" not in str(raised.value)
    assert ftps_server["logins"] == []  # the password was never sent
    assert not list(ftps_server["root"].rglob("x.txt"))


def test_an_ftps_certificate_for_another_name_is_refused_even_when_trusted(ftps_server, monkeypatch):
    # the CA file trusts a certificate for ftp.example.net, not the server's own: refused
    other, other_key = _certificate(ftps_server["folder"], "other", dns="ftp.example.net")
    monkeypatch.setenv("WORKBENCH_STORAGE_CA_FILE", other)
    with pytest.raises(UnavailableError, match="certificate verify failed"):
        Storage(ftps_server["url"], retries=1).exists("x.txt")
    assert ftps_server["logins"] == []
    # a server showing that trusted certificate for ftp.example.net, reached as 127.0.0.1: refused
    with _ftps(ftps_server["root"], other, other_key) as (port, logins):
        with pytest.raises(UnavailableError, match="certificate verify failed: IP address mismatch"):
            Storage(f"ftps://billing:s3cret@127.0.0.1:{port}/space", retries=1).exists("x.txt")
        assert logins == []


def test_an_ftps_ca_file_that_holds_no_certificate_is_a_configuration_error(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("WORKBENCH_STORAGE_CA_FILE", str(tmp_path / "no-such.pem"))
    with pytest.raises(ConfigError, match="WORKBENCH_STORAGE_CA_FILE: .*no-such.pem' is not a file of certificates"):
        Storage("ftps://billing@127.0.0.1:2121/space")
    (tmp_path / "notes.pem").write_text("not a certificate\n")
    monkeypatch.setenv("WORKBENCH_STORAGE_CA_FILE", str(tmp_path / "notes.pem"))
    with pytest.raises(ConfigError, match="notes.pem' is not a file of certificates \\(PEM\\): "):
        Storage("ftps://billing@127.0.0.1:2121/space")  # refused when made: nothing connects
    assert "Traceback" not in capfd.readouterr().err

"""Mail transports: where a message is handed over (setting ``smtp_url``).

* empty (the embedded default): :class:`Outbox` writes each message to
  ``<outbox_dir>/<invoice number>-<recipient>.eml`` (a temporary file renamed into place);
* ``smtp://[user@]host[:587]``: :class:`SmtpRelay` with STARTTLS (plain text is accepted only to
  a loopback relay that does not offer it); ``smtps://[user@]host[:465]``: TLS from the start.
  The password is never part of the URL: it comes from ``WORKBENCH_SMTP_PASSWORD`` only.

A transport's ``send`` raises :class:`~workbench.errors.RefusedError` when the server refuses
this recipient or message (the delivery fails, the batch goes on) and
:class:`~workbench.errors.UnavailableError` when the server or folder cannot be used now (the
batch stops); :class:`PossiblySent`, a kind of the latter, when the connection was lost after
the whole message was sent and before the server's reply (it may have been accepted). A set-up
that cannot work raises :class:`~workbench.errors.ConfigError` when the
transport is made, before anything is sent.
"""

from __future__ import annotations

import ipaddress
import os
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as DEFAULT_POLICY
from pathlib import Path
from urllib.parse import unquote, urlparse

from workbench.config import SECRETS, Settings, secret
from workbench.errors import ConfigError, RefusedError, UnavailableError
from workbench.mail.message import one_line, outbox_name

#: seconds an SMTP connection may wait on the network
SMTP_TIMEOUT = 30.0


class PossiblySent(UnavailableError):
    """The connection was lost after the message's last byte and before the server's reply: the
    server may have accepted it (and will deliver it) or not; nobody can tell from here."""


class _DataTracking:
    """``smtplib``'s DATA command (same steps as ``smtplib.SMTP.data``), noting in
    ``message_out`` when the whole message, its final ``.`` included, has left: from then on a
    lost connection leaves the message possibly accepted."""

    message_out = False

    def data(self, msg):
        self.message_out = False
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        if isinstance(msg, str):
            msg = smtplib._fix_eols(msg).encode("ascii")
        data = smtplib._quote_periods(msg)
        if data[-2:] != smtplib.bCRLF:
            data += smtplib.bCRLF
        self.send(data + b"." + smtplib.bCRLF)
        self.message_out = True
        return self.getreply()


class _SMTP(_DataTracking, smtplib.SMTP):
    pass


class _SMTP_SSL(_DataTracking, smtplib.SMTP_SSL):
    pass


class Outbox:
    """The embedded default: each message as ``<outbox_dir>/<invoice number>-<recipient>.eml``."""

    knows_delivered = True  # a message handed over is a file that is there

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def describe(self) -> str:
        return f"outbox folder {self.folder}"

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnavailableError(f"cannot create it: {exc}") from None

    def path(self, number: str, recipient: str) -> Path:
        return self.folder / outbox_name(number, recipient)

    def delivered(self, number: str, recipient: str, message_id: str) -> str | None:
        """The file of this very message if a previous run wrote it (then crashed)."""
        path = self.path(number, recipient)
        try:
            with path.open("rb") as fh:
                headers = BytesParser(policy=DEFAULT_POLICY).parse(fh, headersonly=True)
        except OSError:
            return None
        return str(path) if str(headers.get("Message-ID", "")).strip() == message_id else None

    def send(self, message: EmailMessage, sender: str, recipient: str, number: str) -> str:
        path = self.path(number, recipient)
        data = message.as_bytes(policy=SMTP_POLICY)
        temp = None
        try:
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, path)
        except OSError as exc:
            if temp is not None:
                Path(temp).unlink(missing_ok=True)
            raise UnavailableError(f"cannot write {path.name}: {exc}") from None
        return str(path)

    def close(self) -> None:
        pass


class SmtpRelay:
    """An SMTP relay: one connection for the batch, one transaction per message."""

    knows_delivered = False

    def __init__(self, url: str, timeout: float, ssl_context: ssl.SSLContext | None):
        parsed = urlparse(url)
        setting = "setting smtp_url (WORKBENCH_SMTP_URL)"
        if parsed.password is not None:  # first: no message below may show it
            raise ConfigError(f"must not contain the password: set it in {SECRETS['smtp_password']}", source=setting)
        if parsed.scheme not in ("smtp", "smtps"):
            raise ConfigError(f"{url!r}: use smtp://[user@]host[:port] (STARTTLS) or smtps://... (TLS)",
                              source=setting)
        if not parsed.hostname:
            raise ConfigError(f"{url!r} has no host", source=setting)
        try:
            port = parsed.port
        except ValueError as exc:
            raise ConfigError(f"{url!r}: {exc}", source=setting) from None
        self.tls = parsed.scheme == "smtps"
        self.host, self.port = parsed.hostname, port or (465 if self.tls else 587)
        self.user = unquote(parsed.username) if parsed.username else None
        self.password = secret("smtp_password") if self.user else None
        if self.user and not self.password:
            raise ConfigError(f"logs in as {self.user!r}: set the password in {SECRETS['smtp_password']}",
                              source=setting)
        self.timeout = timeout
        self.context = ssl_context
        self.connection: smtplib.SMTP | None = None
        try:
            self.loopback = self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            self.loopback = False

    def describe(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    def open(self) -> None:
        context = self.context or ssl.create_default_context()
        local = "localhost" if self.loopback else None
        connection = None
        try:
            if self.tls:
                connection = _SMTP_SSL(self.host, self.port, local_hostname=local, timeout=self.timeout,
                                              context=context)
            else:
                connection = _SMTP(self.host, self.port, local_hostname=local, timeout=self.timeout)
                connection.ehlo()
                if connection.has_extn("starttls"):
                    connection.starttls(context=context)
                    connection.ehlo()
                elif not self.loopback:
                    raise UnavailableError("it does not offer STARTTLS, and mail is not sent in clear text to another "
                                       "host (use smtps:// or a relay with STARTTLS)")
            if self.user:
                connection.login(self.user, self.password or "")
        except UnavailableError:
            self._close(connection)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            self._close(connection)
            raise UnavailableError(f"login as {self.user!r} refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self._close(connection)
            raise UnavailableError(f"cannot connect: {_describe(exc)}") from None
        self.connection = connection

    def delivered(self, number: str, recipient: str, message_id: str) -> str | None:
        return None  # an SMTP server cannot be asked what it already accepted

    def send(self, message: EmailMessage, sender: str, recipient: str, number: str) -> str:
        assert self.connection is not None
        self.connection.message_out = False
        try:
            refused = self.connection.send_message(message, from_addr=sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            if code == 421:
                raise UnavailableError(f"the server closed the session: {code} {_text(reply)}") from None
            raise RefusedError(f"recipient refused by the server: {code} {_text(reply)}") from None
        except smtplib.SMTPSenderRefused as exc:
            raise UnavailableError(f"sender {exc.sender!r} refused: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPResponseException as exc:  # SMTPDataError and the others with a reply
            if exc.smtp_code == 421:
                raise UnavailableError(f"the server closed the session: 421 {_text(exc.smtp_error)}") from None
            raise RefusedError(f"message refused by the server: {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            if self.connection.message_out:
                raise PossiblySent(f"connection lost after the whole message was sent, before the server's reply "
                                   f"({_describe(exc)}): possibly sent") from None
            raise UnavailableError(f"connection lost: {_describe(exc)}") from None
        except smtplib.SMTPException as exc:
            raise RefusedError(f"not sent: {_describe(exc)}") from None
        if refused:
            code, reply = next(iter(refused.values()))
            raise RefusedError(f"recipient refused by the server: {code} {_text(reply)}")
        return f"smtp://{self.host}:{self.port}"

    def close(self) -> None:
        self._close(self.connection)
        self.connection = None

    @staticmethod
    def _close(connection: smtplib.SMTP | None) -> None:
        if connection is None:
            return
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()


def _text(reply: bytes | str) -> str:
    return one_line(reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply)


def _describe(exc: BaseException) -> str:
    return one_line(str(exc)) or type(exc).__name__


def open_transport(settings: Settings, timeout: float, ssl_context: ssl.SSLContext | None) -> Outbox | SmtpRelay:
    if not settings.smtp_url.strip():
        return Outbox(settings.outbox_dir)
    return SmtpRelay(settings.smtp_url.strip(), timeout, ssl_context)


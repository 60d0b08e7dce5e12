"""The reviewers' logins: a users file (setting ``users_file``) of names and scrypt hashes.

One line per reviewer, ``NAME:scrypt$N$r$p$SALT$HASH`` (salt and hash in hex; :func:`hashlib.scrypt`
with N=2**14, r=8, p=1, a 16-byte random salt, a 32-byte key). No password is ever stored, shipped
or defaulted: without a users file nobody can log in to the dashboards. ``workbench add-reviewer
NAME`` adds a reviewer or changes their password (:func:`add_reviewer`); the dashboards' login
page checks a name and password with :func:`check_login`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from workbench.billing.approvals import check_reviewer_name
from workbench.config import Settings
from workbench.errors import ConfigError, InputError

#: scrypt's cost parameters (RFC 7914): about 16 MiB and a few tens of milliseconds a check
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: the shortest password accepted
MIN_PASSWORD = 10


def _hash(password: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def _read(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})",
                          source="setting users_file (WORKBENCH_USERS_FILE)") from None
    users = {}
    for line in text.splitlines():
        name, _, hashed = line.strip().partition(":")
        if name and hashed and not name.startswith("#"):
            users[name] = hashed
    return users


def add_reviewer(settings: Settings, name: str, password: str) -> Path:
    """Add reviewer ``name`` to the users file with ``password`` hashed (or change their
    password); returns the file (created readable by its owner only).
    :class:`~workbench.errors.InputError` for a bad name or a password shorter than
    :data:`MIN_PASSWORD` characters."""
    check_reviewer_name(name)
    if len(password or "") < MIN_PASSWORD:
        raise InputError(f"the password must have at least {MIN_PASSWORD} characters", code="weak_password")
    path = Path(settings.users_file)
    users = _read(path)
    salt = secrets.token_bytes(16)
    users[name] = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${_hash(password, salt).hex()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{user}:{hashed}\n" for user, hashed in sorted(users.items())))
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except OSError:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def check_login(settings: Settings, name: str, password: str) -> bool:
    """Whether ``name`` is a reviewer of the users file and ``password`` is theirs (compared in
    constant time; an unknown name costs a hash too)."""
    users = _read(Path(settings.users_file))
    hashed = users.get(name or "")
    try:
        scheme, n, r, p, salt, digest = (hashed or "").split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        computed = _hash(password or "", bytes.fromhex(salt), int(n), int(r), int(p))
        return hmac.compare_digest(computed, bytes.fromhex(digest))
    except ValueError:
        _hash(password or "", b"\0" * 16)  # the same time for a name that is not there
        return False


def reviewers(settings: Settings) -> list[str]:
    """The reviewers' names in the users file."""
    return sorted(_read(Path(settings.users_file)))

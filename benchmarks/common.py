"""What the benchmark scripts share: timing a step and the peak memory."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def peak_rss_gib() -> float:
    """The process's peak resident memory, in GiB: Linux's ``VmHWM`` of this process (``ru_maxrss``
    keeps the parent's high-water mark across ``exec``: a child started by a parent that had
    generated 10 million calls reported the parent's peak), else ``ru_maxrss`` (KiB)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 2**20


def timed(label: str, func, *args, width: int = 40, **kwargs):
    """Run ``func``, print how long it took; returns (result, seconds)."""
    t0 = time.perf_counter()
    result = func(*args, **kwargs)
    seconds = time.perf_counter() - t0
    print(f"{label:<{width}} {seconds:8.2f} s", flush=True)
    return result, seconds


@contextlib.contextmanager
def postgres_server():
    """A throwaway PostgreSQL server on 127.0.0.1 in a temporary folder (``initdb``, ``pg_ctl``,
    as the ``postgres`` user when run as root; fsync off), as the test suite's fixture starts
    it; yields its URL without database, stops it and removes its files at the end."""
    def binary(name: str) -> str:
        found = shutil.which(name) or (sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [None])[-1]
        if not found:
            raise SystemExit(f"PostgreSQL's {name} is missing (make system-deps)")
        return found

    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    base = Path(tempfile.mkdtemp(prefix="workbench-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        os.chmod(base, 0o755)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run([*prefix, initdb, "-D", str(base / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-locale"], check=True, capture_output=True)
    options = f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off -c full_page_writes=off -c max_wal_size=4GB"
    subprocess.run([*prefix, pg_ctl, "-D", str(base / "data"), "-o", options, "-l", str(base / "log"), "-w", "start"],
                   check=True, capture_output=True, timeout=60)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(base / "data"), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def new_postgres_database(server_url: str, name: str) -> str:
    """A new empty database on the server; its URL."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return f"{server_url}/{name}"

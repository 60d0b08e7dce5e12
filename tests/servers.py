"""Servers on 127.0.0.1 for the tests: a free port; Voila started on one, ready when it
answers HTTP, its log kept in the test's folder, and a dashboard opened in Chromium until its
content shows."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port of 127.0.0.1 free at the time of asking (another process may take it before
    the caller binds it: the callers start again on another one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Voila:
    """A Voila server of one notebook: its process, address and log (stdout and stderr)."""

    process: subprocess.Popen
    url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


def start_voila(notebook: Path, log_dir: Path, args: tuple[str, ...] = (), env: dict | None = None,
                ready_within: float = 60) -> Voila:
    """Voila serving ``notebook`` on a free port of 127.0.0.1, once it answers HTTP (any status):
    a port that only accepts connections may be another process's (a kernel's ZMQ socket that
    took the free port first), where a page never loads. Started again on another port when the
    process exits before answering (its port was taken before it bound it); ``RuntimeError``
    with its log when it neither answers nor exits within ``ready_within`` seconds."""
    for _ in range(3):
        port = free_port()
        log = log_dir / f"voila-{notebook.stem}-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
                 "--Voila.ip=127.0.0.1", "--Voila.tornado_settings={'debug': False}", *args],
                cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT, env=env)
        server = Voila(process, f"http://127.0.0.1:{port}/", log)
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"{server.url}api/kernelspecs", timeout=2).close()
                return server
            except urllib.error.HTTPError:  # an HTTP answer all the same
                return server
            except OSError:
                time.sleep(0.2)
        if process.poll() is None:
            server.stop()
            raise RuntimeError(f"voila did not answer within {ready_within:g} s:\n{server.log_tail()}")
    raise RuntimeError(f"voila exited before answering, three times:\n{server.log_tail()}")


def _stalled(page) -> str | None:
    """Voila's "Executing N of M" if the page still shows it (its notebook not finished), else None."""
    loading = page.locator("#loading_text")
    if loading.count() and loading.first.is_visible():
        text = loading.first.inner_text().strip()
        return text if text.startswith("Executing") else None
    return None


#: loads of a dashboard page that stays on Voila's "Executing N of N" (see :func:`show`)
LOADS = 3


def show(page, server: Voila, ready: str, timeout: float = 90_000) -> None:
    """Waits until ``ready`` (a selector) shows in ``page``, a page of ``server``'s.

    Voila (0.5, with nbclient 0.10-0.11) now and then stays on "Executing N of N" after the
    kernel has run the notebook's last cell and gone idle: about one page load in 30 of a
    dashboard of widgets (voila-dashboards/voila#1395, jupyter/nbclient#312); loaded again, the
    same page shows in seconds. Under load (the whole suite on two cores) it happens more often,
    and has been seen twice in a row. So a page still on "Executing ..." after ``timeout`` ms is
    loaded again (a new kernel), up to :data:`LOADS` loads in all, with a warning quoting the
    server's log. Anything else (a page that finished without ``ready``: an error, a wrong page)
    fails at once, and so does the last load: an ``AssertionError`` quoting the log."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(1, LOADS + 1):
        try:
            page.wait_for_selector(ready, timeout=timeout)
            return
        except PlaywrightTimeout as exc:
            stalled = _stalled(page)
            if attempt == LOADS or stalled is None:
                raise AssertionError(
                    f"{page.url} showed no {ready!r} (load {attempt}; Voila's page "
                    f"{'still on ' + repr(stalled) if stalled else 'finished'}; {exc}). "
                    f"Voila's log ({server.log.name}):\n{server.log_tail()}") from None
            warnings.warn(f"{page.url} still on {stalled!r} after {timeout / 1000:g} s, without {ready!r}: "
                          f"loaded again. Voila's log ({server.log.name}):\n{server.log_tail()}", stacklevel=2)
        page.reload(timeout=timeout, wait_until="commit")


def open_dashboard(page, serve: Callable[[str], Voila], notebook: str, ready: str,
                   timeout: float = 90_000) -> Voila:
    """``notebook`` served by ``serve``, opened in ``page`` until ``ready`` shows (:func:`show`)."""
    server = serve(notebook)
    page.goto(server.url, timeout=timeout, wait_until="commit")
    show(page, server, ready, timeout)
    return server

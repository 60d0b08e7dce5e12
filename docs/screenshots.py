"""Take the README's dashboard screenshots (``make screenshots``).

A generated operator (``--customers``, ``--calls``) in a temporary folder goes through the demo's
month (``workbench demo``: load, rate, pre-production, production, delivery, direct debits), then
a pre-production run of the next month waits for review; both dashboards are served by Voila
and photographed in headless Chromium (Playwright) at 1280 x 900: the review of the draft, the
profile of the dashboard's default customer from its mandates on.

    .venv/bin/python docs/screenshots.py [--customers 20] [--calls 2000] [--out docs]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(notebook: str, env: dict) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "voila", str(ROOT / "notebooks" / "dashboards" / notebook), "--no-browser",
         f"--port={port}", "--Voila.ip=127.0.0.1"], cwd=str(ROOT), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}/"
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError("voila did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from workbench import jobs
    from workbench.cli import main as workbench
    from workbench.config import load_settings
    from workbench.sample import generate_operator

    base = Path(tempfile.mkdtemp(prefix="workbench-screenshots-"))
    try:
        generate_operator(base / "data", seed=5, customers=args.customers, calls=args.calls)
        env = dict(os.environ, WORKBENCH_DATABASE_URL=f"sqlite:///{base / 'wb.sqlite'}",
                   WORKBENCH_STORAGE_URL=str(base / "ftp"), WORKBENCH_OUTBOX_DIR=str(base / "outbox"),
                   WORKBENCH_OUTPUT_DIR=str(base / "out"))
        os.environ.update(env)
        if workbench(["demo", "--data", str(base / "data"), "--period", "2026-10"]) == 2:
            raise SystemExit("the demo failed: no screenshots taken")
        settings = load_settings(None)
        engine = jobs.open_database(settings)
        # the draft to review: November, against October as issued
        jobs.preprod(engine, settings, jobs.run_options(settings, "2026-11"))
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            review, url = _serve("review.ipynb", env)
            try:
                page.goto(url, timeout=180_000)
                page.wait_for_selector("text=Anomalies by kind", timeout=180_000)
                page.wait_for_timeout(2000)
                page.screenshot(path=str(Path(args.out) / "dashboard-review.png"))
            finally:
                review.terminate()
            profile, url = _serve("client_profile.ipynb", env)
            try:
                page.goto(url, timeout=180_000)
                page.wait_for_selector("h4:has-text('Subscriptions')", timeout=180_000)
                page.wait_for_timeout(2000)
                # from the mandates on: the documents with what became of them, the twelve months
                page.locator("h4:has-text('Mandates')").scroll_into_view_if_needed()
                page.evaluate("document.querySelector('h4 + *') && [...document.querySelectorAll('h4')]"
                              ".find(h => h.textContent === 'Mandates').scrollIntoView()")
                page.screenshot(path=str(Path(args.out) / "dashboard-profile.png"))
            finally:
                profile.terminate()
            browser.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

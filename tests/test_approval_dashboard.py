"""Approving a run in the review dashboard, served by Voila behind the reviewers' login and opened
in headless Chromium (Playwright): nobody gets in without logging in, the run's author cannot
approve it, another reviewer's approval is recorded under their logged-in name."""

from __future__ import annotations

import http.client
import os
import urllib.parse
from datetime import datetime

import pytest
from servers import show, start_voila
from test_notebooks import CHROMIUM, NOTEBOOKS, ROOT, browser, workspace  # noqa: F401 - fixtures

from workbench import jobs

NOW = datetime(2026, 11, 1, 6, 0)
PASSWORDS = {"alice": "alice-password-2026", "bob": "bob-password-2026"}


@pytest.fixture
def reviewed(workspace, monkeypatch, tmp_path):  # noqa: F811
    """Alice and Bob in the users file; a pre-production run of October launched by Alice; the
    review dashboard served by Voila with the reviewers' login on 127.0.0.1."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian chromium is missing")
        pytest.skip("Debian chromium is missing")
    users = workspace["base"] / "reviewers"
    monkeypatch.setenv("WORKBENCH_USERS_FILE", str(users))
    settings = workspace["settings"]
    settings = type(settings)(**{**settings.__dict__, "users_file": str(users)})
    for name, password in PASSWORDS.items():
        jobs.add_reviewer(settings, name, password)
    engine = workspace["engine"]
    jobs.load_cdrs(engine, settings, jobs.cdr_files(workspace["base"] / "data" / "cdrs"), clock=lambda: NOW)
    jobs.rate(engine, settings, "2026-10", NOW)
    run = jobs.preprod(engine, settings, jobs.run_options(settings, "2026-10"), NOW, created_by="alice").run
    env = {**os.environ, "WORKBENCH_REVIEWER": "mallory"}  # never taken from the server's environment
    server = start_voila(NOTEBOOKS / "dashboards" / "review.ipynb", tmp_path, env=env, args=(
        "--Voila.identity_provider_class=workbench.ui.login.ReviewerIdentityProvider",
        "--VoilaConfiguration.multi_kernel_manager_class=workbench.ui.login.ReviewerKernelManager"))
    yield {"url": server.url, "server": server, "run": run.run_id, "engine": engine, "settings": settings}
    server.stop()


def _request(url: str, method: str, path: str) -> tuple[int, str, bytes]:
    """An HTTP request without a login cookie, redirects not followed: status, Location, body."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, "/" + path, body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        return response.status, response.getheader("Location") or "", response.read()
    finally:
        connection.close()


def _log_in(browser, url: str, name: str, password: str):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, timeout=90_000)
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#login_submit")
    return page


def test_without_logging_in_a_request_gets_no_data_and_cannot_approve(reviewed, browser):  # noqa: F811
    url, run_id = reviewed["url"], reviewed["run"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, timeout=90_000)
    assert "/login" in page.url  # the login page, nothing of the run
    assert page.locator("#username").count() == 1
    assert f"PRE-{run_id}" not in page.content() and "Approve" not in page.content()
    # the server's API answers nothing either: no kernel can be started to approve through it
    for method, path in (("GET", ""), ("GET", "api/kernels"), ("POST", "api/kernels"), ("GET", "api/sessions")):
        status, location, body = _request(url, method, path)
        assert status in (302, 403), (method, path, status)
        assert status == 403 or location.startswith("/login"), location
        assert b"PRE-" not in body and b'"id"' not in body
    # a wrong password is refused
    page = _log_in(browser, url, "alice", "not-her-password")
    assert page.get_by_text("Invalid credentials").count() == 1 and "/login" in page.url
    assert jobs.run_approvals(reviewed["engine"]).empty


def test_the_author_cannot_approve_another_reviewer_does_under_their_login(reviewed, browser, tmp_path):  # noqa: F811
    url, run_id, engine = reviewed["url"], reviewed["run"], reviewed["engine"]
    # Alice launched the run: the dashboard shows it to her, and does not let her approve it
    page = _log_in(browser, url, "alice", PASSWORDS["alice"])
    show(page, reviewed["server"], f"button:has-text('Approve run {run_id} as alice')")  # its approval panel
    button = page.get_by_role("button", name=f"Approve run {run_id} as alice")
    page.wait_for_selector("text=You (alice) launched this run", timeout=60_000)
    assert button.is_disabled()
    assert page.get_by_text("Not approved yet").count() == 1
    assert jobs.run_approvals(engine, run_id).empty
    page.close()
    # Bob approves it, with a comment; the approval is recorded under his login, not a typed name
    page = _log_in(browser, url, "bob", PASSWORDS["bob"])
    show(page, reviewed["server"], f"button:has-text('Approve run {run_id} as bob')")
    button = page.get_by_role("button", name=f"Approve run {run_id} as bob")
    assert button.is_enabled()
    page.locator("textarea").first.fill("totals checked against September")
    button.click()
    page.wait_for_selector(f"text=Run {run_id} approved by bob", timeout=60_000)
    page.screenshot(path=str(tmp_path / "approved.png"))
    if os.environ.get("WORKBENCH_SCREENSHOTS"):  # the README's picture: WORKBENCH_SCREENSHOTS=docs pytest ...
        page.screenshot(path=str(ROOT / os.environ["WORKBENCH_SCREENSHOTS"] / "dashboard-approval.png"))
    recorded = jobs.run_approvals(engine, run_id)
    assert recorded[["approved_by", "comment", "forced"]].values.tolist() == [
        ["bob", "totals checked against September", False]]
    assert page.locator("ul.approvals li").filter(has_text="Approved by bob").count() == 1
    assert jobs.approved_run(engine, "2026-10") == run_id

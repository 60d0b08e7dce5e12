"""Approvals of pre-production runs: four eyes, production refused without one unless forced
(the reason kept), the approved run of a period, and the reviewers' users file."""

from __future__ import annotations

import stat
from dataclasses import replace
from datetime import datetime

import pytest
from sqlalchemy import func, select
from test_billing import NOW, OPTIONS, october  # noqa: F401 - the October scenario, a fixture

from workbench import jobs
from workbench.billing import delete_run, preprod
from workbench.config import ConfigError, Settings, load_settings
from workbench.db import schema as s
from workbench.errors import InputError, RefusedError
from workbench.jobs.reviewers import add_reviewer, check_login, reviewers

LATER = datetime(2026, 11, 2, 9, 30)


def _issued(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).where(s.Invoice.status == "issued")).scalar_one()


def test_the_author_of_a_run_cannot_approve_it_another_reviewer_can(october):  # noqa: F811
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW, created_by="alice").run_id
    with pytest.raises(RefusedError, match=f"run {run} was launched by alice: another reviewer must approve it") as e:
        jobs.approve_run(engine, settings, run, "alice", "looks fine", LATER)
    assert e.value.code == "four_eyes"
    with pytest.raises(RefusedError, match="log in to approve") as e:
        jobs.approve_run(engine, settings, run, None, "", LATER)
    assert e.value.code == "not_logged_in"
    assert jobs.run_approvals(engine, run).empty
    approval = jobs.approve_run(engine, settings, run, "bob", "  totals  checked\nagainst October ", LATER)
    assert (approval.approved_by, approval.approved_at, approval.comment) == ("bob", LATER,
                                                                               "totals checked against October")
    recorded = jobs.run_approvals(engine, run)
    assert recorded[["run_id", "approved_by", "comment", "forced"]].values.tolist() == [
        [run, "bob", "totals checked against October", False]]
    # a setting lifts the rule, for an operator with a single reviewer
    alone = replace(settings, allow_self_approval="yes")
    assert jobs.approve_run(engine, alone, run, "alice", "", LATER).approved_by == "alice"


def test_production_refuses_a_run_nobody_approved_unless_forced_with_a_reason(october):  # noqa: F811
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW, created_by="alice").run_id
    with pytest.raises(RefusedError, match=f"run {run} is not approved: a reviewer other than alice") as e:
        jobs.promote(engine, settings, run, LATER)
    assert e.value.code == "not_approved" and _issued(engine) == 0
    with pytest.raises(RefusedError, match="is not approved"):
        jobs.promote(engine, settings, run, LATER, force_reason="   ")  # a blank reason is no reason
    promotion = jobs.promote(engine, settings, run, LATER, launched_by="carol",
                             force_reason="the reviewer is away; totals checked by phone")
    assert promotion.run.invoices == 4 and _issued(engine) == 4
    kept = jobs.run_approvals(engine, run)
    assert kept[["approved_by", "comment", "forced"]].values.tolist() == [
        ["carol", "the reviewer is away; totals checked by phone", True]]
    with engine.connect() as connection:  # the production run says who issued it
        assert connection.execute(select(s.BillingRun.created_by).where(
            s.BillingRun.source_run_id == run)).scalar_one() == "carol"
    # a forced production is not an approval: the run cannot be approved after it is issued either
    with pytest.raises(RefusedError, match="already issued"):
        jobs.approve_run(engine, settings, run, "bob", "", LATER)


def test_the_approved_run_of_a_period_is_the_one_approved_last_and_not_yet_issued(october):  # noqa: F811
    engine, settings = october.engine, october.settings
    with pytest.raises(RefusedError, match="no pre-production run of 2026-10 is approved"):
        jobs.approved_run(engine, "2026-10")
    first = preprod(engine, OPTIONS, settings, NOW, created_by="alice").run_id
    second = preprod(engine, OPTIONS, settings, NOW, created_by="alice").run_id
    jobs.approve_run(engine, settings, second, "bob", "", datetime(2026, 11, 2, 8, 0))
    jobs.approve_run(engine, settings, first, "bob", "", datetime(2026, 11, 2, 9, 0))
    assert jobs.approved_run(engine, "2026-10") == first  # approved last
    result = jobs.production(engine, settings, None, "2026-10", False, LATER, approved=True)
    assert result.source_run_id == first and result.promotion.run.invoices == 4
    # first is issued: the job run again takes second, reviewed before first was issued, so refused
    assert jobs.approved_run(engine, "2026-10") == second
    with pytest.raises(RefusedError, match=f"run {second} no longer matches the data it was reviewed on"):
        jobs.production(engine, settings, None, "2026-10", False, LATER, approved=True)
    assert _issued(engine) == 4
    delete_run(engine, second)  # all approved runs issued: the job run again says so, nothing issued twice
    assert jobs.approved_run(engine, "2026-10") == first
    again = jobs.production(engine, settings, None, "2026-10", False, LATER, approved=True)
    assert "already issued" in again.promotion.run.message and _issued(engine) == 4
    with pytest.raises(InputError, match="not a billing period"):
        jobs.approved_run(engine, "2026-13")


def test_deleting_a_run_deletes_its_approvals(october):  # noqa: F811
    engine, settings = october.engine, october.settings
    run = preprod(engine, OPTIONS, settings, NOW, created_by="alice").run_id
    jobs.approve_run(engine, settings, run, "bob", "", LATER)
    assert delete_run(engine, run) == 4
    assert jobs.run_approvals(engine).empty


def test_reviewers_log_in_with_their_own_hashed_password(tmp_path):
    settings = Settings(users_file=str(tmp_path / "etc" / "reviewers"))
    assert reviewers(settings) == [] and not check_login(settings, "alice", "")  # no file: nobody gets in
    path = add_reviewer(settings, "alice", "correct horse battery")
    add_reviewer(settings, "bob", "another long password")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "correct horse" not in text and text.startswith("alice:scrypt$16384$8$1$")
    assert check_login(settings, "alice", "correct horse battery")
    assert not check_login(settings, "alice", "another long password")  # bob's password is bob's
    assert not check_login(settings, "mallory", "correct horse battery")
    add_reviewer(settings, "alice", "a new password for alice")  # a password changed: the old one is out
    assert not check_login(settings, "alice", "correct horse battery")
    assert reviewers(settings) == ["alice", "bob"]
    with pytest.raises(InputError, match="at least 10 characters"):
        add_reviewer(settings, "carol", "short")
    with pytest.raises(InputError, match="not a login name"):
        add_reviewer(settings, "carol:x", "long enough password")


def test_the_approval_and_report_settings_are_checked(monkeypatch):
    monkeypatch.setenv("WORKBENCH_ALLOW_SELF_APPROVAL", "maybe")
    with pytest.raises(ConfigError, match="neither yes nor no"):
        load_settings()
    monkeypatch.setenv("WORKBENCH_ALLOW_SELF_APPROVAL", "no")
    monkeypatch.setenv("WORKBENCH_REPORT_RECIPIENTS", "billing@operateur.example, not an address")
    with pytest.raises(ConfigError, match="'not an address' not an email address"):
        load_settings()
    monkeypatch.setenv("WORKBENCH_REPORT_RECIPIENTS", "a@operateur.example; b@operateur.example, a@operateur.example")
    assert load_settings().report_addresses == ("a@operateur.example", "b@operateur.example")

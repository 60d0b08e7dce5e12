"""The approval of a pre-production run in the review dashboard: who launched it, its approvals
(name, time, comment) and, for a logged-in reviewer other than its author, a comment box and the
button that approves it (:func:`workbench.jobs.approve_run`). The approver is the logged-in
reviewer (:func:`workbench.ui.identity.logged_in_user`), never a name typed in the page.
"""

from __future__ import annotations

import html

from workbench import jobs
from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.ui.display import _widgets
from workbench.ui.identity import logged_in_user


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _state_html(state: dict, run_id: int) -> str:
    parts = [f"<p>Run {run_id} launched by <b>{html.escape(str(state['created_by']))}</b> on "
             f"{_when(state['created_at'])}.</p>"]
    approvals = state["approvals"]
    signed = approvals[~approvals["forced"].astype(bool)] if len(approvals) else approvals
    forced = approvals[approvals["forced"].astype(bool)] if len(approvals) else approvals
    if len(signed):
        parts.append("<ul class='approvals'>" + "".join(
            f"<li>Approved by <b>{html.escape(r.approved_by)}</b> on {_when(r.approved_at)}"
            + (f": {html.escape(r.comment)}" if r.comment else "") + "</li>" for r in signed.itertuples()) + "</ul>")
    else:
        parts.append("<p class='not-approved'>Not approved yet: production refuses it until a reviewer other than "
                     "its author approves it.</p>")
    for r in forced.itertuples():
        parts.append(f"<p>Issued without approval by {html.escape(r.approved_by)} on {_when(r.approved_at)}: "
                     f"{html.escape(r.comment)}</p>")
    return "".join(parts)


def approval_panel(settings: Settings, engine, run_id: int):
    """The approval box of run ``run_id`` (a widget): its state, and the approve button when the
    logged-in reviewer may approve it; a refusal (not logged in, the run's author, a run already
    issued) is shown as a message, nothing recorded."""
    w = _widgets()
    state_box, message = w.HTML(), w.HTML()
    comment = w.Textarea(placeholder="What was checked (kept with the approval)", layout=w.Layout(width="520px"))
    reviewer = logged_in_user()
    button = w.Button(description=f"Approve run {run_id}" + (f" as {reviewer}" if reviewer else ""),
                      button_style="success", icon="check", layout=w.Layout(width="auto"))

    def refresh() -> dict:
        state = jobs.run_state(engine, run_id)
        state_box.value = _state_html(state, run_id)
        return state

    state = refresh()
    reasons = []
    if state["kind"] != "preprod" or state["status"] != "done":
        reasons.append("This run is not awaiting approval (a production run, or one already issued).")
    elif reviewer is None:
        reasons.append("Log in to approve: the dashboards record the logged-in reviewer as the approver.")
    elif reviewer == state["created_by"] and not settings.self_approval:
        reasons.append(f"You ({reviewer}) launched this run: another reviewer approves it (four eyes).")
    button.disabled = bool(reasons)
    message.value = "".join(f"<p class='approval-note'>{html.escape(r)}</p>" for r in reasons)

    def on_click(_):
        try:
            approval = jobs.approve_run(engine, settings, run_id, logged_in_user(), comment.value)
        except WorkbenchError as exc:
            message.value = f"<p class='approval-error' style='color:#b00020'>{html.escape(str(exc))}</p>"
            return
        refresh()
        button.disabled = True
        comment.value = ""
        message.value = (f"<p class='approval-done'>Run {approval.run_id} approved by "
                         f"{html.escape(approval.approved_by)}.</p>")

    button.on_click(on_click)
    return w.VBox([w.HTML("<h4>Approval</h4>"), state_box, comment, button, message])

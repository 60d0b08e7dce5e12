"""Who is at the keyboard of a notebook or dashboard.

A kernel started for a logged-in reviewer (the dashboards and JupyterLab behind
:class:`workbench.ui.login.ReviewerIdentityProvider`) has the reviewer's login name in its
environment, :data:`REVIEWER_ENV`, set by the server for that kernel alone
(:class:`workbench.ui.login.ReviewerKernelManager`), never typed by anyone.
"""

from __future__ import annotations

import getpass
import os

#: the environment variable of a kernel that holds its logged-in reviewer's name
REVIEWER_ENV = "WORKBENCH_REVIEWER"


def logged_in_user() -> str | None:
    """The logged-in reviewer of this kernel, or ``None`` (a kernel of a server without logins)."""
    return (os.environ.get(REVIEWER_ENV) or "").strip() or None


def launcher() -> str:
    """Who launches a run from this kernel: the logged-in reviewer, else the system user."""
    return logged_in_user() or getpass.getuser()

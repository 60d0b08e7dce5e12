"""Each reviewer logs in as themselves: a Jupyter server identity provider for the dashboards
(Voila) and JupyterLab.

:class:`ReviewerIdentityProvider` shows a login page (name and password) and checks them against
the users file (setting ``users_file``, written by ``workbench add-reviewer NAME``: scrypt hashes,
:mod:`workbench.jobs.reviewers`); there is no token and no default password: a server without a
users file lets nobody in. A request without a valid login cookie gets the login page (or 403),
never a dashboard, a kernel or data. :class:`ReviewerKernelManager` starts each kernel with its
reviewer's login name in :data:`~workbench.ui.identity.REVIEWER_ENV` (the name of the request that
starts it), which the approval panel records as the approver (:mod:`workbench.ui.approval`).

Voila (``make dashboards``)::

    voila notebooks/dashboards/ --Voila.ip=127.0.0.1 \\
        --Voila.identity_provider_class=workbench.ui.login.ReviewerIdentityProvider \\
        --VoilaConfiguration.multi_kernel_manager_class=workbench.ui.login.ReviewerKernelManager

JupyterLab::

    jupyter lab --ServerApp.ip=127.0.0.1 \\
        --ServerApp.identity_provider_class=workbench.ui.login.ReviewerIdentityProvider \\
        --ServerApp.kernel_manager_class=workbench.ui.login.ReviewerKernelManager
"""

from __future__ import annotations

import contextvars
import html
import os

from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.auth.login import LoginFormHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.escape import url_escape

from workbench.config import load_settings
from workbench.jobs.reviewers import check_login, reviewers
from workbench.ui.identity import REVIEWER_ENV

#: the reviewer of the request being handled (set for every request by the identity provider)
_reviewer: contextvars.ContextVar[str | None] = contextvars.ContextVar("workbench_reviewer", default=None)


class ReviewerLoginHandler(LoginFormHandler):
    """The login page: a name and a password, checked by :meth:`ReviewerIdentityProvider.process_login_form`."""

    def _render(self, message=None):
        error = f"<p class='error'>{html.escape(message['error'])}</p>" if message and message.get("error") else ""
        target = url_escape(self.get_argument("next", default=self.base_url))
        self.write(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Billing workbench: log in</title>"
            "<style>body{font-family:sans-serif;margin:4em auto;max-width:22em}label,input,button{display:block;"
            "margin:.4em 0;width:100%}.error{color:#b00020}</style></head><body><h2>Billing workbench</h2>"
            f"{error}<form method='post' action='{html.escape(self.base_url)}login?next={html.escape(target)}'>"
            f"{self.xsrf_form_html()}<label for='username'>Name</label>"
            "<input id='username' name='username' autocomplete='username' required autofocus>"
            "<label for='password'>Password</label><input id='password' name='password' type='password' "
            "autocomplete='current-password' required><button type='submit' id='login_submit'>Log in</button>"
            "</form></body></html>")


class ReviewerIdentityProvider(IdentityProvider):
    """Reviewers log in with their name and password from the users file (see the module
    docstring); the shared token of a Jupyter server is not accepted (it identifies nobody)."""

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def get_handlers(self) -> list:
        return [(r"/login", ReviewerLoginHandler), (r"/logout", self.logout_handler_class)]

    def get_user_token(self, handler):
        return None  # a token is shared: it says nothing of who is there

    def validate_security(self, app, ssl_options=None) -> None:
        pass  # no token and no password of the server's own: the users file is the only way in

    async def get_user(self, handler) -> User | None:
        user = await self._get_user(handler)
        if user is not None and user.username not in reviewers(load_settings()):
            self.clear_login_cookie(handler)  # a reviewer removed from the users file is out at once
            user = None
        _reviewer.set(user.username if user is not None else None)
        return user

    def process_login_form(self, handler) -> User | None:
        name = handler.get_argument("username", default="").strip()
        password = handler.get_argument("password", default="")
        if not name or not check_login(load_settings(), name, password):
            self.log.warning("Failed login for %r", name)
            return None
        return User(username=name, name=name, display_name=name)


class ReviewerKernelManager(AsyncMappingKernelManager):
    """Starts each kernel with the login name of the reviewer whose request starts it in
    :data:`~workbench.ui.identity.REVIEWER_ENV` (removed when there is none: a name never comes
    from the server's own environment)."""

    async def start_kernel(self, *, kernel_id=None, path=None, **kwargs):
        env = dict(kwargs.pop("env", None) or os.environ)
        env.pop(REVIEWER_ENV, None)
        reviewer = _reviewer.get()
        if reviewer:
            env[REVIEWER_ENV] = reviewer
        return await super().start_kernel(kernel_id=kernel_id, path=path, env=env, **kwargs)

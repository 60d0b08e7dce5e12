"""Configuration: where the database (and, later, the FTP space and mail) live.

Read, in order of precedence: environment variables, then a TOML file (``--config`` or
``$WORKBENCH_CONFIG``, else ``workbench.toml`` in the working directory if present), then the
embedded defaults, which need no set-up (a SQLite file under ``var/``).

==========================  ========================  =====================================
environment variable        TOML key                  default
==========================  ========================  =====================================
``WORKBENCH_DATABASE_URL``  ``database_url``          ``sqlite:///var/workbench.sqlite``
``WORKBENCH_TIMEZONE``      ``timezone``              ``Europe/Paris``
``WORKBENCH_COUNTRY_CODE``  ``home_country_code``     ``33``
``WORKBENCH_OUTPUT_DIR``    ``output_dir``            ``var`` (reports, documents)
``WORKBENCH_CALLS_VAT``     ``consumption_vat_rate``  ``20`` (percent, on calls)
``WORKBENCH_PAYMENT_DAYS``  ``payment_days``          ``30`` (due date after invoice date)
==========================  ========================  =====================================
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_VAR_DIR = Path("var")


class ConfigError(ValueError):
    """A configuration that cannot be used (names the setting and the problem)."""


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_VAR_DIR / 'workbench.sqlite'}"
    timezone: str = "Europe/Paris"
    home_country_code: str = "33"
    output_dir: str = str(DEFAULT_VAR_DIR)
    consumption_vat_rate: str = "20"
    payment_days: str = "30"


_ENV = {
    "database_url": "WORKBENCH_DATABASE_URL",
    "timezone": "WORKBENCH_TIMEZONE",
    "home_country_code": "WORKBENCH_COUNTRY_CODE",
    "output_dir": "WORKBENCH_OUTPUT_DIR",
    "consumption_vat_rate": "WORKBENCH_CALLS_VAT",
    "payment_days": "WORKBENCH_PAYMENT_DAYS",
}


def load_settings(config_file: str | Path | None = None, **overrides: str | None) -> Settings:
    """Settings from (highest first) ``overrides``, the environment, the TOML file, defaults."""
    values: dict[str, str] = {}
    path = config_file or os.environ.get("WORKBENCH_CONFIG")
    if path is None and Path("workbench.toml").exists():
        path = "workbench.toml"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"configuration file {path}: {exc}") from exc
        known = {f.name for f in fields(Settings)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"configuration file {path}: unknown settings {sorted(unknown)}")
        values.update({k: str(v) for k, v in data.items()})
    for key, env in _ENV.items():
        if os.environ.get(env):
            values[key] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)

"""Turning a ``postgresql://`` URL and keyword options into connection settings.

Nothing here imports asyncpg. The password stays a `Secret`
until `PostgresConfig.connect_kwargs` hands it to the driver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storage_core import ConfigurationError
from storage_core.backend import Secret, StorageURL

__all__ = ["OPTIONS", "PostgresConfig"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
MAX_PARTITIONS = 1024
"""The most hash partitions ``partitions=`` accepts (each is two tables and
their indexes; beyond this planning and DDL cost more than they save)."""

OPTIONS: dict[str, str] = {
    "min_size": "connections the pool opens at start and keeps (default 1)",
    "max_size": "most connections the pool opens (default 10)",
    "connect_timeout": "seconds to wait for a new connection (default 10)",
    "command_timeout": "seconds to wait for one call's statement (default 30; 0 = none)",
    "schema": "schema holding the tables (default public; created if missing)",
    "pgbouncer": "1 behind a transaction-mode pooler: no prepared statements (default 0)",
    "prepared_statements": "0 to never prepare statements (implied by pgbouncer=1)",
    "sslmode": "disable, allow, prefer, require, verify-ca or verify-full",
    "host": "server host or Unix-socket directory, when the URL has no host",
    "partitions": "N (2-1024): create the conversations table hash-partitioned by user_id "
    "into N partitions; 0: a plain table; unset: use the table as it is",
}
"""The options a URL query or ``make_storage`` keyword may set, with their meaning."""


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be 1/0, true/false, yes/no or on/off, got {value!r}")


def _number(name: str, value: object, *, minimum: float, integer: bool) -> float:
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a number, got {value!r}")
    try:
        number = int(str(value)) if integer else float(str(value))
    except ValueError:
        kind = "an integer" if integer else "a number of seconds"
        raise ConfigurationError(f"{name} must be {kind}, got {value!r}") from None
    if number < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum:g}, got {value!r}")
    return number


@dataclass(frozen=True)
class PostgresConfig:
    """Everything needed to open the pool; printing it never shows the password."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: Secret | None = field(default=None, repr=False)
    database: str | None = None
    min_size: int = 1
    max_size: int = 10
    connect_timeout: float = 10.0
    command_timeout: float | None = 30.0
    schema: str = "public"
    prepared_statements: bool = True
    sslmode: str | None = None
    partitions: int | None = None
    """None: the table's layout as found (a plain table when missing); 0: a
    plain table is expected; N: hash-partitioned by user_id into N."""

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ConfigurationError(f"max_size must be at least 1, got {self.max_size}")
        if self.min_size > self.max_size:
            raise ConfigurationError(
                f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})"
            )
        if not _IDENTIFIER.fullmatch(self.schema):
            raise ConfigurationError(
                f"schema must be a plain identifier (letters, digits, _; at most 63), "
                f"got {self.schema!r}"
            )
        if self.sslmode is not None and self.sslmode not in _SSLMODES:
            raise ConfigurationError(
                f"sslmode must be one of {', '.join(_SSLMODES)}, got {self.sslmode!r}"
            )
        if self.partitions is not None and not (
            self.partitions == 0 or 2 <= self.partitions <= MAX_PARTITIONS
        ):
            raise ConfigurationError(
                f"partitions must be 0 (a plain table) or 2 to {MAX_PARTITIONS} hash "
                f"partitions, got {self.partitions}"
            )

    @classmethod
    def from_url(cls, url: StorageURL, options: Mapping[str, Any]) -> PostgresConfig:
        """Read the URL; keyword ``options`` (the same names, plus ``password``)
        override its query."""
        if url.opaque:
            raise ConfigurationError(
                f"a PostgreSQL URL looks like postgresql://user:password@host:5432/database "
                f"(got {url})"
            )
        settings: dict[str, object] = {k: url.query_value(k) for k in url.query}
        password = url.password
        for name, value in options.items():
            if name == "password":
                if not isinstance(value, (str, Secret)):
                    raise ConfigurationError("password must be a string")
                password = value if isinstance(value, Secret) else Secret(value)
                continue
            settings[name] = value
        unknown = sorted(set(settings) - set(OPTIONS))
        if unknown:
            known = ", ".join(OPTIONS)
            raise ConfigurationError(
                f"unknown postgresql:// option(s) {', '.join(unknown)}; known: {known}"
            )
        pgbouncer = _flag("pgbouncer", settings.get("pgbouncer", False))
        prepared = _flag("prepared_statements", settings.get("prepared_statements", True))
        host = url.host
        if settings.get("host") is not None:
            if host is not None:
                raise ConfigurationError("the host is given both in the URL and as an option")
            host = str(settings["host"])
        timeout = _number("command_timeout", settings.get("command_timeout", 30.0),
                          minimum=0, integer=False)
        sslmode = settings.get("sslmode")
        partitions = settings.get("partitions")
        return cls(
            host=host,
            port=url.port,
            user=url.username or None,
            password=password,
            database=url.path or None,
            min_size=int(_number("min_size", settings.get("min_size", 1),
                                 minimum=0, integer=True)),
            max_size=int(_number("max_size", settings.get("max_size", 10),
                                 minimum=1, integer=True)),
            connect_timeout=_number("connect_timeout", settings.get("connect_timeout", 10.0),
                                    minimum=0.001, integer=False),
            command_timeout=timeout or None,
            schema=str(settings.get("schema", "public")),
            prepared_statements=prepared and not pgbouncer,
            sslmode=None if sslmode is None else str(sslmode).lower(),
            partitions=None if partitions is None else int(
                _number("partitions", partitions, minimum=0, integer=True)),
        )

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect``, one connection of the pool
        (the password revealed); ``min_size`` and ``max_size`` are the pool's."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "database": self.database,
            "timeout": self.connect_timeout,
            "command_timeout": self.command_timeout,
        }
        if self.password is not None:
            kwargs["password"] = self.password.reveal()
        if self.sslmode is not None:
            kwargs["ssl"] = self.sslmode
        if not self.prepared_statements:
            kwargs["statement_cache_size"] = 0
        return kwargs

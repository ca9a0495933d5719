"""From a parsed storage URL and ``make_storage`` options to a backend.

``file:`` URLs get the SQLite backend's own engine; every other scheme gets a
`LibsqlBackend` talking Hrana to sqld or Turso.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storage_core import ConfigurationError
from storage_core.backend import Secret, StorageURL, parse_url

__all__ = [
    "REMOTE_SCHEMES",
    "Endpoint",
    "RemoteConfig",
    "check_known",
    "remote_config",
    "seconds_option",
    "token_option",
]

REMOTE_SCHEMES = ("libsql", "wss", "ws", "https", "http")
DEFAULT_TIMEOUT = 20.0

_URL_OPTIONS = ("authToken", "tls", "primary", "replica", "replica_reads", "timeout",
                "max_concurrent_writes")
_KW_OPTIONS = ("auth_token", "primary_url", "replica", "replica_reads", "timeout",
               "max_concurrent_writes")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Endpoint:
    """One server: the URL handed to libsql-client (no query, no secret)
    and the URL as shown to people (secrets hidden)."""

    driver_url: str
    shown: str


@dataclass(frozen=True)
class RemoteConfig:
    """Everything a `LibsqlBackend` needs."""

    endpoint: Endpoint
    auth_token: Secret | None = None
    primary: Endpoint | None = None
    replica: bool = False
    replica_reads: bool = False
    timeout: float = DEFAULT_TIMEOUT
    max_concurrent_writes: int | None = None


def remote_config(url: StorageURL, options: Mapping[str, Any]) -> RemoteConfig:
    """Check the URL and options of a remote libSQL database."""
    check_known("libSQL", url, options, _URL_OPTIONS, _KW_OPTIONS)
    token = token_option(url, options.get("auth_token"))
    primary_text = options.get("primary_url", url.query_value("primary"))
    primary = None
    if primary_text is not None:
        if not isinstance(primary_text, str) or not primary_text:
            raise ConfigurationError("primary_url must be a libSQL server URL")
        primary_url = parse_url(primary_text)
        if primary_url.scheme not in REMOTE_SCHEMES:
            raise ConfigurationError(
                f"primary_url must be one of {', '.join(s + '://' for s in REMOTE_SCHEMES)} "
                f"(got {primary_url.scheme}:)"
            )
        if set(primary_url.query) - {"tls"}:
            raise ConfigurationError(
                "primary_url takes no parameters but tls; the auth token (the same for "
                "the primary and its replicas) goes in auth_token or the authToken parameter"
            )
        primary = _endpoint(primary_url)
    replica = _flag("replica", options.get("replica", url.query_value("replica")))
    replica_reads = _flag(
        "replica_reads", options.get("replica_reads", url.query_value("replica_reads"))
    )
    if replica_reads and primary is None:
        raise ConfigurationError("replica_reads needs primary_url (the replica's primary)")
    return RemoteConfig(
        endpoint=_endpoint(url),
        auth_token=token,
        primary=primary,
        replica=replica or primary is not None,
        replica_reads=replica_reads,
        timeout=seconds_option(
            "timeout", options.get("timeout", url.query_value("timeout")), DEFAULT_TIMEOUT
        ),
        max_concurrent_writes=_positive_int(
            "max_concurrent_writes",
            options.get("max_concurrent_writes", url.query_value("max_concurrent_writes")),
        ),
    )


def _endpoint(url: StorageURL) -> Endpoint:
    if url.opaque or not url.host:
        raise ConfigurationError(f"a {url.scheme}:// URL needs a host: {url.scheme}://host[:port]")
    if url.username is not None or url.password is not None:
        # The driver URL carries no user information: say so rather than drop it.
        raise ConfigurationError(
            f"a libSQL server URL takes no user name or password (got {url}); the server "
            "checks only the auth token: auth_token or the authToken parameter"
        )
    tls_text = url.query_value("tls")
    if tls_text not in (None, "0", "1"):
        raise ConfigurationError(f"tls must be 0 or 1, got {tls_text!r}")
    scheme = url.scheme
    if scheme == "libsql":
        # Turso serves libsql:// over TLS WebSockets; ?tls=0 for a plain local sqld.
        if tls_text == "0" and url.port is None:
            raise ConfigurationError("a libsql:// URL with tls=0 needs an explicit port")
        scheme = "ws" if tls_text == "0" else "wss"
    elif tls_text is not None and (tls_text == "1") != scheme.endswith("s"):
        raise ConfigurationError(f"tls={tls_text} contradicts the {scheme}:// scheme")
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    path = f"/{url.path}" if url.path else ""
    return Endpoint(f"{scheme}://{host}{port}{path}", url.render())


def check_known(
    what: str, url: StorageURL, options: Mapping[str, Any],
    url_known: tuple[str, ...], kw_known: tuple[str, ...],
) -> None:
    """Refuse keyword options and URL parameters not in the known ones."""
    unknown = set(options) - set(kw_known)
    if unknown:
        raise ConfigurationError(
            f"unknown {what} option(s) {', '.join(sorted(unknown))}; known: {', '.join(kw_known)}"
        )
    unknown = set(url.query) - set(url_known)
    if unknown:
        raise ConfigurationError(
            f"unknown {what} URL parameter(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(url_known)}"
        )


def token_option(url: StorageURL, option: Any) -> Secret | None:
    """The auth token: the ``auth_token`` keyword, else the ``authToken`` parameter."""
    if option is not None:
        if isinstance(option, Secret):
            return option if option else None
        if not isinstance(option, str):
            raise ConfigurationError("auth_token must be a string")
        return Secret(option) if option else None
    value = url.query.get("authToken")
    if isinstance(value, Secret) and value:
        return value
    return None


def _flag(name: str, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be 0 or 1, got {value!r}")


def seconds_option(name: str, value: Any, default: float) -> float:
    """A positive, finite number of seconds (``default`` if None)."""
    if value is None:
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be seconds, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    return value

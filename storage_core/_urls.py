"""Parsing storage URLs and showing them without their secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from .errors import ConfigurationError

__all__ = ["REDACTED", "Secret", "StorageURL", "parse_url", "redact_text", "scrub_exception"]

REDACTED = "***"

# Query parameters whose values are secrets wherever they appear.
_SECRET_PARAMS = frozenset(
    {"authtoken", "auth_token", "token", "password", "passwd", "pwd", "secret", "key",
     "apikey", "api_key", "access_token", "jwt"}
)

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


class Secret:
    """A string that never shows itself in ``str``, ``repr`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself; use only where it is sent to a server."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))


def is_secret_param(name: str) -> bool:
    """Whether a URL query parameter of this name carries a secret."""
    return name.lower() in _SECRET_PARAMS


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL.

    ``scheme`` is lower-cased and includes any ``+driver`` suffix
    (``postgresql+asyncpg``); ``base_scheme`` is the part before ``+``.
    ``path`` is the URL path with percent-escapes decoded; for ``file:x.db``
    and ``sqlite:///x.db`` it is ``x.db``. The password and secret query
    parameters are :class:`Secret` objects, so printing the URL is safe.
    """

    scheme: str
    username: str | None = None
    password: Secret | None = None
    host: str | None = None
    port: int | None = None
    path: str = ""
    query: Mapping[str, str | Secret] = field(default_factory=lambda: MappingProxyType({}))
    opaque: bool = False

    @property
    def base_scheme(self) -> str:
        return self.scheme.split("+", 1)[0]

    @property
    def driver(self) -> str | None:
        parts = self.scheme.split("+", 1)
        return parts[1] if len(parts) == 2 else None

    def query_value(self, name: str) -> str | None:
        """The value of a query parameter, secrets revealed, or None."""
        value = self.query.get(name)
        if isinstance(value, Secret):
            return value.reveal()
        return value

    def render(self, *, reveal: bool = False) -> str:
        """The URL as text; secrets are replaced by ``***`` unless ``reveal``."""

        def show(secret: Secret) -> str:
            return quote(secret.reveal(), safe="") if reveal else REDACTED

        if self.opaque:
            text = f"{self.scheme}:{self.path}"
        else:
            netloc = ""
            if self.username is not None or self.password is not None:
                netloc = quote(self.username or "", safe="")
                if self.password is not None:
                    netloc += ":" + show(self.password)
                netloc += "@"
            if self.host is not None:
                netloc += f"[{self.host}]" if ":" in self.host else self.host
            if self.port is not None:
                netloc += f":{self.port}"
            # parse_url drops one leading slash from the path; put it back.
            path = "/" + quote(self.path, safe="/:") if self.path else ""
            text = f"{self.scheme}://{netloc}{path}"
        if self.query:
            pairs = [
                (k, show(v) if isinstance(v, Secret) else v) for k, v in self.query.items()
            ]
            text += "?" + urlencode(pairs, safe="*")
        return text

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"StorageURL({self.render()!r})"


def parse_url(url: str) -> StorageURL:
    """Parse ``url`` into a :class:`StorageURL`.

    Raises :class:`ConfigurationError` (which never repeats a password) when
    the text is not a URL with a scheme.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"storage URL must be a string, not {type(url).__name__}")
    match = _SCHEME_RE.match(url)
    if match is None:
        raise ConfigurationError(
            f"not a storage URL (no scheme such as sqlite:// or postgresql://): "
            f"{redact_text(url)!r}"
        )
    scheme = match.group(1).lower()
    rest = url[match.end():]
    if not rest.startswith("//"):
        # Opaque form, as in ``file:local.db`` or ``memory:``.
        path, _, query = rest.partition("?")
        return StorageURL(
            scheme=scheme, path=unquote(path), query=_parse_query(query), opaque=True
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"malformed storage URL {redact_text(url)!r}") from None
    path = unquote(parts.path)
    if path.startswith("/"):
        # sqlite:///x.db -> "x.db"; sqlite:////abs.db -> "/abs.db"; pg://h/db -> "db"
        path = path[1:]
    return StorageURL(
        scheme=scheme,
        username=unquote(parts.username) if parts.username is not None else None,
        password=Secret(unquote(parts.password)) if parts.password is not None else None,
        host=parts.hostname,
        port=port,
        path=path,
        query=_parse_query(parts.query),
    )


def _parse_query(query: str) -> Mapping[str, str | Secret]:
    values: dict[str, str | Secret] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        values[key] = Secret(value) if is_secret_param(key) else value
    return MappingProxyType(values)


_USERINFO_RE = re.compile(r"(//[^/?#@:]*):([^/?#@]*)@")
_QUERY_SECRET_RE = re.compile(r"([?&])([^=&#]+)=([^&#]*)")


def redact_text(text: str) -> str:
    """Replace URL passwords and secret query values inside free text."""
    text = _USERINFO_RE.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    return _QUERY_SECRET_RE.sub(
        lambda m: f"{m.group(1)}{m.group(2)}={REDACTED}"
        if is_secret_param(unquote(m.group(2)))
        else m.group(0),
        text,
    )


def scrub_exception(exc: BaseException, secrets: tuple[str, ...] | list[str]) -> None:
    """Replace each of ``secrets`` in an exception's string arguments."""
    secrets = [s for s in secrets if s]
    if not secrets:
        return
    args = []
    for arg in exc.args:
        if isinstance(arg, str):
            for secret in secrets:
                arg = arg.replace(secret, REDACTED)
        args.append(arg)
    exc.args = tuple(args)

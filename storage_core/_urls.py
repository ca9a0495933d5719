"""Parsing storage URLs and showing them without their secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import (
    parse_qsl,
    quote,
    quote_plus,
    unquote,
    unquote_plus,
    urlencode,
    urlsplit,
)

from .errors import ConfigurationError, StorageError

__all__ = [
    "REDACTED", "Secret", "StorageURL", "parse_url", "redact_text", "scrub_exception",
    "url_secrets",
]

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
    and ``sqlite:///x.db`` it is ``x.db``. The password, secret-named query
    parameters and query values that are URLs with credentials are
    `Secret` objects, so printing the URL is safe.
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
            pairs = [(k, self._show_value(k, v, reveal)) for k, v in self.query.items()]
            text += "?" + urlencode(pairs, safe="*")
        return text

    @staticmethod
    def _show_value(name: str, value: str | Secret, reveal: bool) -> str:
        if not isinstance(value, Secret):
            return value
        if reveal:
            return value.reveal()
        # A nested URL with credentials shows with them hidden.
        return REDACTED if is_secret_param(name) else _redact_url(value.reveal())

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"StorageURL({self.render()!r})"


def parse_url(url: str) -> StorageURL:
    """Parse ``url`` into a [`StorageURL`][storage_core.backend.StorageURL].

    Raises [`ConfigurationError`][storage_core.errors.ConfigurationError] (which never
    repeats a password) when the text is not a URL with a scheme, or when it is
    ambiguous: a ``#``, a space in the user name or password, or an ``@`` outside the user
    information and nested URLs (a password with a raw ``/``, ``?`` or ``#``
    reads that way).
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"storage URL must be a string, not {type(url).__name__}")
    match = _SCHEME_RE.match(url)
    if match is None:
        raise ConfigurationError(
            f"not a storage URL (no scheme such as sqlite:// or postgresql://): "
            f"{_redact_url(url)!r}"
        )
    scheme = match.group(1).lower()
    rest = url[match.end():]
    if not rest.startswith("//"):
        # Opaque form, as in ``file:local.db`` or ``memory:``.
        path, _, query = rest.partition("?")
        problem = _query_ambiguity(query)
        if problem:
            raise ConfigurationError(
                f"ambiguous storage URL {_redact_url(url)!r}: {problem}; {_ENCODE_HINT}"
            )
        return StorageURL(
            scheme=scheme, path=unquote(path), query=_parse_query(query), opaque=True
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigurationError(
            f"malformed storage URL {_redact_url(url)!r}; {_ENCODE_HINT}"
        ) from None
    problem = _ambiguity(url, parts.netloc, parts.path, parts.query)
    if problem:
        raise ConfigurationError(
            f"ambiguous storage URL {_redact_url(url)!r}: {problem}; {_ENCODE_HINT}"
        )
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


_ENCODE_HINT = (
    "percent-encode / ? # @ % & and spaces in a user name, password or token (/ is %2F, "
    "? %3F, # %23, @ %40, % %25, & %26, a space %20)"
)


def _ambiguity(url: str, netloc: str, path: str, query: str) -> str | None:
    """Why a URL that ``urlsplit`` accepted may not mean what it seems, or None.

    Each case is a password or user name with a raw ``/``, ``?``, ``#`` or
    space read as the start of the path, query or fragment: parsing on
    would show the rest of it as a path or option.
    """
    if "#" in url:
        return "it has a # (storage URLs take no #fragment)"
    if any(c.isspace() for c in netloc):
        return "a space before the host"
    if "@" in path and (netloc or ":" in path.partition("@")[0]):
        return "an @ after the host"
    return _query_ambiguity(query)


def _query_ambiguity(query: str) -> str | None:
    after_secret = False
    for piece in query.split("&"):
        if not piece:
            continue  # a doubled or trailing &: after a secret, still inside it
        key, equals, value = piece.partition("=")
        if "@" in key or ("@" in value and not _URL_RE.match(unquote_plus(value))):
            return "an @ in the query outside a nested URL"
        if after_secret and not (equals and _PLAIN_NAME_RE.match(key)):
            return "an & inside a secret value"
        decoded = unquote_plus(value)
        after_secret = bool(equals) and (
            is_secret_param(unquote_plus(key)) or _redact_url(decoded) != decoded
        )
    return None


def _parse_query(query: str) -> Mapping[str, str | Secret]:
    values: dict[str, str | Secret] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        secret = is_secret_param(key) or _redact_url(value) != value
        values[key] = Secret(value) if secret else value
    return MappingProxyType(values)


# A URL (or a scheme-less ``//host`` reference) inside free text: up to the
# next space, so an @ anywhere in it may end the user information.
_URL_IN_TEXT_RE = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//\S*")
# A whole URL percent-encoded (once or more), as in a query value: http%3A%2F%2F...
_ENCODED_URL_RE = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*%(?:25)*3A%(?:25)*2F%(?:25)*2F[^\s&'\"]*", re.IGNORECASE
)
_URL_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//")
# The start of a query parameter; its value is found separately, so a
# parameter inside another's value (a nested URL's) is found too.
_PARAM_RE = re.compile(r"[?&]([^=&#?\s]+)=")
# Where a secret value ends: at an & that starts another plain name=value
# (so a raw & in a token cannot end it early), and in free text at a space.
_NEXT_PARAM = r"&(?![A-Za-z_][A-Za-z0-9_.\-]*=)"
_TEXT_VALUE_RE = re.compile(rf"[^&\s]*(?:{_NEXT_PARAM}[^&\s]*)*")
_URL_VALUE_RE = re.compile(rf"[^&]*(?:{_NEXT_PARAM}[^&]*)*")
_PLAIN_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# A user name shown in front of a hidden password holds none of these.
_NOT_A_USER_RE = re.compile(r"[/?#@\s]")


def _userinfo_span(text: str, begin: int, end: int) -> tuple[int, int] | None:
    """What to hide of the user information of the URL at ``text[begin:end]``.

    Whatever lies between its ``//`` and its last ``@`` is user information:
    a raw ``@``, ``/``, ``?``, ``#`` or ``:`` in a password cannot end it
    early. The user name stays when it is plainly one (text before the first
    ``:`` without ``/ ? # @``): then only the password is hidden.
    """
    start = text.index("//", begin, end) + 2
    at = text.rfind("@", start, end)
    if at < 0:
        return None
    user, colon, _ = text[start:at].partition(":")
    if _NOT_A_USER_RE.search(user):
        return (start, at)
    if colon:
        return (start + len(user) + 1, at)
    return None


def _secret_value_spans(text: str, value_re: re.Pattern[str]) -> list[tuple[int, int]]:
    spans = []
    for match in _PARAM_RE.finditer(text):
        if is_secret_param(unquote_plus(match.group(1))):
            value = value_re.match(text, match.end())
            assert value is not None  # both patterns match the empty string
            spans.append((match.end(), value.end()))
    return spans


def _hide(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span (overlapping ones merged) replaced by ``***``."""
    merged: list[list[int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    pieces, last = [], 0
    for begin, end in merged:
        pieces += [text[last:begin], REDACTED]
        last = end
    return "".join(pieces) + text[last:]


def _hide_encoded_urls(text: str) -> str:
    def nested(match: re.Match[str]) -> str:
        decoded = unquote_plus(match.group(0))
        shown = redact_text(decoded)
        return match.group(0) if shown == decoded else quote(shown, safe="*")

    return _ENCODED_URL_RE.sub(nested, text)


def _redact_url(url: str) -> str:
    """``url`` with its secrets hidden, without parsing it: the whole text is
    one URL (a space or quote in a password cannot end it). Text that is no
    URL (``user:pw@host``, the scheme forgotten) loses all before its last ``@``.
    """
    spans = _secret_value_spans(url, _URL_VALUE_RE)
    if "//" in url:
        userinfo = _userinfo_span(url, 0, len(url))
        spans += [userinfo] if userinfo else []
    elif "@" in url:
        spans.append((0, url.rfind("@")))
    return _hide_encoded_urls(_hide(url, spans))


def redact_text(text: str) -> str:
    """Hide the secrets of every URL inside free text.

    The user information of each URL (all of it up to the last ``@`` before
    the next space), secret-named query values, and the same in URLs nested
    in query values, raw or percent-encoded, become ``***``.
    """
    spans = _secret_value_spans(text, _TEXT_VALUE_RE)
    for match in _URL_IN_TEXT_RE.finditer(text):
        userinfo = _userinfo_span(text, match.start(), match.end())
        spans += [userinfo] if userinfo else []
    return _hide_encoded_urls(_hide(text, spans))


def url_secrets(url: str) -> list[str]:
    """Every secret in the text of a storage URL, for a scrub list.

    The password and each secret-named query value, and those of URLs nested
    in query values, each as written, decoded and percent-encoded (with
    ``%20`` and with ``+`` for a space).
    """
    found: list[str] = []

    def add(raw: str) -> None:
        decoded = unquote(raw)
        for form in (raw, decoded, unquote_plus(raw), quote(decoded, safe=""),
                     quote_plus(decoded, safe="")):
            if form and form not in found:
                found.append(form)

    match = _SCHEME_RE.match(url)
    rest = url[match.end():] if match else url
    query = ""
    if rest.startswith("//"):
        try:
            parts = urlsplit(url)
            netloc, query = parts.netloc, parts.query
            if _ambiguity(url, netloc, parts.path, query):
                raise ValueError
        except ValueError:
            # Unparseable or ambiguous: read as _userinfo_span reads it.
            netloc = rest[2:]
        userinfo = netloc.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        if _NOT_A_USER_RE.search(user):
            add(userinfo)
        elif colon:
            add(password)
    else:
        query = rest.partition("?")[2]
    for piece in query.split("&"):
        raw_key, _, raw_value = piece.partition("=")
        value = unquote_plus(raw_value)
        if is_secret_param(unquote_plus(raw_key)):
            add(raw_value)
        elif _URL_RE.match(value):
            found += [s for s in url_secrets(value) if s not in found]
    return found


def scrub_exception(exc: BaseException, secrets: tuple[str, ...] | list[str]) -> None:
    """Replace each of ``secrets`` in an exception's string arguments, and in
    those of its causes and contexts (a traceback shows them too).

    A cause or context whose text still holds a secret after that (an
    ``OSError``'s own fields, a custom ``__str__``) is replaced in the chain
    by a [`StorageError`][storage_core.errors.StorageError] with its scrubbed text.
    """
    # The longest first, so a secret that holds another is replaced whole.
    secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not secrets:
        return
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        _scrub_args(current, secrets)
        for link in ("__cause__", "__context__"):
            linked = getattr(current, link)
            if linked is not None:
                _scrub_args(linked, secrets)
                if _holds(linked, secrets):
                    stand_in = StorageError(_scrub(f"{type(linked).__name__}: {linked}", secrets))
                    stand_in.__traceback__ = linked.__traceback__
                    setattr(current, link, stand_in)
        current = current.__cause__ or current.__context__


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _scrub_args(exc: BaseException, secrets: list[str]) -> None:
    exc.args = tuple(_scrub(a, secrets) if isinstance(a, str) else a for a in exc.args)
    if isinstance(exc, OSError):
        for name in ("strerror", "filename", "filename2"):
            value = getattr(exc, name)
            if isinstance(value, str):
                setattr(exc, name, _scrub(value, secrets))


def _holds(exc: BaseException, secrets: list[str]) -> bool:
    try:
        text = f"{exc}\n{exc!r}"
    except Exception:
        return True
    return any(secret in text for secret in secrets)

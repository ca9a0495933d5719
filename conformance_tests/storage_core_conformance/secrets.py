"""Checking that a secret never shows: the secret-hygiene probe every backend runs.

``secret_leaks(url, secret, options)`` opens a storage with a canary password
or token (in the URL, in ``options``, or both), drives it through every public
call, and collects everything a user or operator could see: ``str`` and
``repr`` of the storage, its backend and the parsed URL, each exception's
message and full traceback (causes included), every log record at DEBUG from
every logger (with tracebacks), and the output of the ``storage-core``
command line for the URL. It returns the places where the secret (or its
percent-encoded form) appeared: an empty list is a pass.

The storage may work (the secret is right) or fail (it is wrong): both paths
are where secrets leak.

``url_shape_leaks(url)`` runs the same probe over the URL shapes that have
leaked before, built from a backend's own URL: passwords with raw ``/ ? # @
:`` or percent-encoded, user names with raw ``@`` or ``/``, URLs with
credentials nested in query values (raw and percent-encoded), and tokens
with raw or encoded reserved characters. Each shape hides canary pieces
that must never show, whole or in part, and must also vanish from free text
passed through ``redact_text``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import traceback
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from storage_core import make_storage
from storage_core.backend import TableTools, parse_url, redact_text
from storage_core.cli import main as cli_main

__all__ = ["secret_leaks", "url_shape_leaks", "url_shapes"]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@contextlib.contextmanager
def _debug_logs() -> Iterator[_Capture]:
    root = logging.getLogger()
    handler = _Capture()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _exception_text(exc: BaseException) -> str:
    return f"{exc}\n{exc!r}\n" + "".join(traceback.format_exception(exc))


async def _drive(url: str, options: Mapping[str, Any], seen: dict[str, str]) -> None:
    try:
        storage = make_storage(url, **options)
    except Exception as exc:
        seen["make_storage error"] = _exception_text(exc)
        return
    seen["repr(storage)"] = repr(storage) + str(storage) + storage.url
    seen["repr(backend)"] = repr(storage.backend) + str(storage.backend)
    calls: list[tuple[str, Any]] = [
        ("initialize", storage.initialize),
        ("save_chat_message", lambda: storage.save_chat_message(
            "secret-probe", "s", "a", {"role": "user", "content": [{"text": "probe"}]})),
        ("save_chat_messages", lambda: storage.save_chat_messages(
            "secret-probe", "s", "a", [{"role": "assistant", "content": "x"}], 10)),
        ("append_messages", lambda: storage.append_messages(
            "secret-probe", "s", "a", [{"role": "user", "content": "y"}])),
        ("fetch_chat", lambda: storage.fetch_chat("secret-probe", "s", "a", 5)),
        ("fetch_all_chats", lambda: storage.fetch_all_chats("secret-probe", "s")),
        ("list_sessions", lambda: storage.list_sessions("secret-probe")),
        ("delete_session", lambda: storage.delete_session("secret-probe", "s")),
        ("delete_user", lambda: storage.delete_user("secret-probe")),
    ]
    if isinstance(storage.backend, TableTools):
        calls.append(("describe", storage.describe))
    try:
        for name, call in calls:
            try:
                await asyncio.wait_for(call(), 60)
            except Exception as exc:
                seen[f"{name} error"] = _exception_text(exc)
    finally:
        try:
            await storage.close()
        except Exception as exc:
            seen["close error"] = _exception_text(exc)


def _cli(url: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    texts = []
    for args in (["doctor", url], ["sessions", url, "secret-probe"]):
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            contextlib.suppress(SystemExit),
        ):
            cli_main(args, out=out)
        texts.append(out.getvalue() + err.getvalue())
    return "\n".join(texts)


def secret_leaks(
    url: str, secret: str, options: Mapping[str, Any] | None = None, *, cli: bool = True
) -> list[str]:
    """Where ``secret`` showed while using ``url`` (empty list: nowhere).

    Runs its own event loop; call it from a synchronous test. ``cli`` also
    runs ``storage-core doctor`` and ``sessions`` on the URL (keyword
    ``options`` cannot reach the command line, so only URL secrets matter there).
    """
    return _leaks(url, {secret, quote(secret, safe="")}, options, cli=cli)


def _leaks(
    url: str, forms: set[str], options: Mapping[str, Any] | None, *, cli: bool
) -> list[str]:
    seen: dict[str, str] = {}
    with _debug_logs() as logs:
        try:
            parsed = parse_url(url)
            seen["parsed URL"] = repr(parsed) + str(parsed)
        except Exception as exc:
            seen["parse_url error"] = _exception_text(exc)
        asyncio.run(_drive(url, dict(options or {}), seen))
        if cli:
            seen["command line"] = _cli(url)
    seen["logs"] = "\n".join(logs.texts)
    return [place for place, text in seen.items() if any(f in text for f in forms)]


# Canary pieces: letters and digits only, so each shows the same encoded or not.
_A, _B = "Kq7VxCanary2Lm", "Rt4WzCanary9Pn"
# A server that is never asked: every nested URL points at the discard port.
_NESTED = "http://probe:{}@127.0.0.1:9"


def url_shapes(url: str) -> list[tuple[str, str]]:
    """The leak-prone variants of a backend's ``url``: (what it is, the URL).

    Every one hides the canary pieces ``url_shape_leaks`` looks for. URLs
    with a ``//`` authority get user-information shapes (the URL's own user
    name kept, so a server with trust authentication still lets them in);
    every URL gets the query shapes.
    """
    shapes: list[tuple[str, str]] = []
    parts = urlsplit(url)
    if url.partition(":")[2].startswith("//"):
        user = parts.username or "probe"
        scheme, _, rest = url.partition("://")
        host_and_rest = rest.partition("@")[2] if "@" in parts.netloc else rest
        for name, userinfo in [
            ("a raw / in the password", f"{user}:{_A}/{_B}"),
            ("a raw # in the password", f"{user}:{_A}#{_B}"),
            ("a raw ? in the password", f"{user}:{_A}?{_B}"),
            ("a raw @ in the password", f"{user}:{_A}@{_B}"),
            ("a raw : in the password", f"{user}:{_A}:{_B}"),
            ("raw / ? # @ : in the password", f"{user}:{_A}/?#@:{_B}"),
            ("a raw @ in the user name", f"{user}@x:{_A}"),
            ("a raw / in the user name", f"{user}/x:{_A}"),
            ("a percent-encoded password", f"{user}:{quote(f'{_A}/?#@:% {_B}', safe='')}"),
            ("a password and no user name", f":{_A}"),
        ]:
            shapes.append((name, f"{scheme}://{userinfo}@{host_and_rest}"))
    sep = "&" if "?" in url else "?"
    for name, query in [
        ("a nested URL with a password", f"primary={_NESTED.format(_A)}"),
        ("a percent-encoded nested URL with a password",
         f"primary={quote(_NESTED.format(_A), safe='')}"),
        ("a nested URL with a raw / in its password",
         f"primary={_NESTED.format(f'{_A}/{_B}')}"),
        ("a token in a nested URL",
         f"primary={quote(f'http://127.0.0.1:9?authToken={_A}', safe='')}"),
        ("a token with a raw #", f"authToken={_A}#{_B}"),
        ("a percent-encoded token", f"authToken={quote(f'{_A}/?#@&= {_B}', safe='')}"),
        ("a secret-named parameter", f"password={_A}"),
    ]:
        shapes.append((name, f"{url}{sep}{query}"))
    return shapes


def url_shape_leaks(url: str, *, cli: bool = True) -> list[str]:
    """Where a canary piece showed, for each of :func:`url_shapes` of ``url``:
    ``"<shape>: <place>"`` entries (empty list: nowhere).

    ``url`` is a URL the backend serves (``postgresql://user@host/db``,
    ``http://host:port``, ``sqlite:///path``); the shapes may open it or
    fail on it, and both must keep every piece hidden.
    """
    pieces = {_A, _B}
    found: list[str] = []
    for name, shape in url_shapes(url):
        places = _leaks(shape, pieces, None, cli=cli)
        text = redact_text(f"failed to open {shape}: no answer")
        if any(piece in text for piece in pieces):
            places.append("redact_text")
        found += [f"{name}: {place}" for place in places]
    return found

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
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import traceback
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from storage_core import TableTools, make_storage, parse_url
from storage_core.cli import main as cli_main

__all__ = ["secret_leaks"]


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
    forms = {secret, quote(secret, safe="")}
    return [place for place, text in seen.items() if any(f in text for f in forms)]

"""The ``storage-core`` command line.

Application commands (``demo``, ``backends``) and data tools (``sessions``,
``show``, ``export``, ``import``, ``copy``, ``prune``, ``doctor``). Errors are
one line on stderr with secrets redacted, never a traceback. Exit status: 0
success, 1 the operation failed (server, authentication, a problem ``doctor``
found), 2 bad usage, configuration or input, 130 interrupted (Ctrl-C).

Commands that only read (and ``prune``) open an existing database only
(``make_storage(create=False)``), so a mistyped file path is an error rather
than a new empty database. Stored text shown in the human format has its
control characters escaped; JSON output escapes them as JSON does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import os
import re
import shlex
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timezone
from typing import IO, Any, TextIO, TypeVar

from ._backend import TableRow
from ._factory import make_storage
from ._limits import Limits
from ._model import SessionInfo, StoredMessage
from ._plugins import build_registry, load_failures
from ._storage import ChatStorage
from ._urls import REDACTED, redact_text
from .errors import ConfigurationError, StorageError, ValidationError

DEFAULT_DEMO_URL = "sqlite:///storage_core_demo.db"
_BATCH = 500
T = TypeVar("T")

_DEMO_TURNS: tuple[tuple[str, str, str], ...] = (
    ("billing", "user", "Why was I charged twice this month?"),
    ("billing", "assistant", "I see two charges on the 3rd; one is a pending authorisation."),
    ("billing", "user", "Will the pending one disappear?"),
    ("billing", "assistant", "Yes, within 3 business days. I have noted it on your account."),
    ("tech", "user", "Also, the app logs me out every hour."),
    ("tech", "assistant", "That is the session timeout; enable 'remember me' to keep it."),
    ("tech", "user", "Found it, thanks."),
    ("tech", "assistant", "Glad it works now."),
)


class UsageError(Exception):
    """Bad command-line input (exit status 2)."""


class CommandError(Exception):
    """A failure already worded for the operator, with its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# -- showing stored text safely ----------------------------------------------

# Bidirectional embeddings, overrides and isolates: they reorder what follows.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# C0 and C1 controls (ESC starts terminal sequences), DEL, line/paragraph separators.
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_UNSAFE_IN_BLOCK = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f\u2028\u2029{_BIDI}]")  # json escapes C0 itself
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe(text: str) -> str:
    """``text`` as one line a terminal shows as it is: control characters,
    bidi controls and line breaks become visible escapes (``\\x1b``,
    ``\\u202e``, ``\\n``)."""
    return _UNSAFE.sub(_escape, text)


def _safe_block(text: str, indent: str) -> str:
    # A message may span lines: keep its newlines and tabs, indent every line
    # after the first so no line of content can pass for a line of output.
    lines = text.replace("\r\n", "\n").split("\n")
    return ("\n" + indent).join(_UNSAFE_IN_BLOCK.sub(_escape, line) for line in lines)


def _json_safe(line: str) -> str:
    # Such characters can only occur inside JSON strings (everything else
    # json.dumps writes is printable ASCII), where \uXXXX means the same.
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def _text(message: StoredMessage) -> str:
    content = message.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("text", json.dumps(content[0], ensure_ascii=False)))
    return json.dumps(content, ensure_ascii=False)


def _when(ms: int) -> str:
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):  # beyond year 9999
        return f"{ms} ms after 1970"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_INT = 2**63 - 1  # the largest integer every backend's SQL takes


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"not a duration: {text!r} (use e.g. 90s, 15m, 12h, 30d, 2w)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds):
        raise UsageError(f"the duration {text[:40]!r}... is too long")
    return seconds


def _whole_number(text: str, minimum: int) -> int:
    """A whole number from ``minimum`` up to the index limit, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    if value > _MAX_INT:
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_INT}, got {text}")
    return value


def _positive_int(text: str) -> int:
    """argparse type: a whole number from 1 up."""
    return _whole_number(text, 1)


def _index(text: str) -> int:
    """argparse type: a message index, a whole number from 0 up."""
    return _whole_number(text, 0)


def _cursor_timestamp(text: str) -> int:
    """argparse type: a session's last activity in milliseconds (``last_timestamp``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a whole number of milliseconds: {text!r}") from None
    if not -_MAX_INT - 1 <= value <= _MAX_INT:
        raise argparse.ArgumentTypeError(f"out of range: {text}")
    return value


def _next_command(command: str, positional: Sequence[str], options: Sequence[str]) -> str:
    """A command line to run next (``--`` before the positional arguments
    if one starts with ``-``), with a note when the URL's secret is hidden."""
    url = positional[0]
    rest = ["--", *positional] if any(p.startswith("-") for p in positional) else positional
    line = shlex.join(["storage-core", command, *options, *rest])
    if REDACTED in url:
        line += f"  (with the secret in place of {REDACTED})"
    return line


# -- opening and closing storages ----------------------------------------------


def _open(url: str, *, create: bool) -> contextlib.AbstractAsyncContextManager[ChatStorage]:
    """The storage at ``url``, connected, closed on the way out whatever happens.
    ``create=False`` for commands that must find an existing database."""
    return _opened(make_storage(url, create=create))


@contextlib.asynccontextmanager
async def _opened(storage: ChatStorage) -> AsyncIterator[ChatStorage]:
    try:
        await storage.initialize()
        yield storage
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            await _close(storage)
        raise
    await _close(storage)


async def _close(storage: ChatStorage) -> None:
    # Ctrl-C cancels the command's task; the close must still finish, or the
    # driver's connections and threads outlive the event loop.
    closing = asyncio.ensure_future(storage.close())
    interrupted = False
    while not closing.done():
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError
    closing.result()


@contextlib.asynccontextmanager
async def _closing(rows: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator when done with it, even if left early."""
    try:
        yield rows
    finally:
        aclose = getattr(rows, "aclose", None)
        if aclose is not None:
            await aclose()


@contextlib.contextmanager
def _blame(side: str | None) -> Iterator[None]:
    """Prefix errors raised inside with ``side`` (``source``, ``target``)."""
    if side is None:
        yield
        return
    try:
        yield
    except CommandError:
        raise
    except (UsageError, StorageError, OSError) as exc:
        raise CommandError(f"{side}: {_message(exc)}", _status(exc)) from exc


# -- application commands ---------------------------------------------------


async def _demo(args: Any, out: TextIO) -> int:
    async with _open(args.url, create=True) as storage:
        user, session = "demo-user", "demo-session"
        await storage.delete_session(user, session)  # a re-run starts afresh
        for agent, role, text in _DEMO_TURNS:
            await storage.save_chat_message(
                user, session, agent, {"role": role, "content": [{"text": text}]},
                max_history_size=20,
            )
        # A repeated role is not stored (the agent-squad rule).
        await storage.save_chat_message(
            user, session, "tech", {"role": "assistant", "content": [{"text": "(dropped)"}]}
        )
        print(f"storage: {storage.url}", file=out)
        print(f"user {user}, session {session}", file=out)
        print("\nbilling, newest 2 messages (fetch_chat, max_history_size=2):", file=out)
        for m in await storage.fetch_chat(user, session, "billing", max_history_size=2):
            print(f"  #{m.index} {m.role:<9} {_text(m)}", file=out)
        print("\nthe whole session as every agent sees it (fetch_all_chats):", file=out)
        for m in await storage.fetch_all_chats(user, session):
            print(f"  {m.agent_id:<8} {m.role:<9} {_text(m)}", file=out)
        for s in await storage.list_sessions(user):
            print(f"\nsession {s.session_id}: {s.message_count} messages, "
                  f"agents {', '.join(s.agent_ids)}", file=out)
        if storage.capabilities.persistent:
            command = shlex.join(["storage-core", "show", storage.url, user, session])
            print(f"\ntry next: {command}", file=out)
            if REDACTED in storage.url:
                print(f"(with the secret in place of {REDACTED})", file=out)
        else:
            print(f"\n{storage.url} keeps nothing once this process ends; run the demo on "
                  "a file (the default) to look at it again with storage-core show", file=out)
    return 0


def _backends(out: TextIO) -> int:
    rows = [(s.scheme + "://", s.distribution, s.description) for s in build_registry()]
    width = max(len(r[0]) for r in rows) + 2
    dist_width = max(len(r[1]) for r in rows) + 2
    print(f"{'scheme':<{width}}{'package':<{dist_width}}description", file=out)
    for scheme, dist, description in rows:
        print(f"{scheme:<{width}}{dist:<{dist_width}}{description}", file=out)
    for failure in load_failures():
        print(f"broken plugin {failure.name!r} from {failure.distribution}: "
              f"{safe(str(failure.error))}", file=out)
    return 0


# -- data tools ---------------------------------------------------------------


async def _sessions(args: Any, out: TextIO) -> int:
    if (args.before_session is None) != (args.before_timestamp is None):
        raise UsageError("--before-session and --before-timestamp go together (the last "
                         "session of the previous page and its last activity)")
    before = None
    if args.before_session is not None:
        before = SessionInfo(args.before_session, (), 0, args.before_timestamp)
    async with _open(args.url, create=False) as storage:
        sessions = await storage.list_sessions(args.user_id, limit=args.limit, before=before)
        url = storage.url
    more = None
    if args.limit is not None and len(sessions) == args.limit:
        last = sessions[-1]
        more = _next_command("sessions", [url, args.user_id], [
            "--limit", str(args.limit), f"--before-session={last.session_id}",
            f"--before-timestamp={last.last_timestamp}", *(["--json"] if args.json else []),
        ])
    if args.json:
        for s in sessions:
            print(_json_safe(json.dumps(
                {"session_id": s.session_id, "agent_ids": list(s.agent_ids),
                 "message_count": s.message_count, "last_timestamp": s.last_timestamp},
                ensure_ascii=False)), file=out)
        if more is not None:  # not on stdout: that stays JSON Lines
            print(f"next page: {safe(more)}", file=sys.stderr)
        return 0
    if not sessions:
        what = "no more sessions" if before is not None else "no sessions"
        print(f"{what} for user {safe(repr(args.user_id))}", file=out)
        return 0
    names = [safe(s.session_id) for s in sessions]
    width = max(7, *(len(name) for name in names)) + 2
    print(f"{'session':<{width}}{'messages':>9}  {'last activity':<24}agents", file=out)
    for name, s in zip(names, sessions, strict=True):
        print(f"{name:<{width}}{s.message_count:>9}  {_when(s.last_timestamp):<23} "
              f"{safe(', '.join(s.agent_ids))}", file=out)
    if more is not None:
        print(f"next page: {safe(more)}", file=out)
    return 0


async def _show(args: Any, out: TextIO) -> int:
    if args.before is not None and args.agent_id is None:
        raise UsageError("--before needs an AGENT_ID: message indexes count within one "
                         "agent's conversation")
    async with _open(args.url, create=False) as storage:
        url = storage.url
        if args.agent_id is None:
            messages = await storage.fetch_all_chats(args.user_id, args.session_id)
            if args.last is not None:
                messages = messages[-args.last:]
        else:
            messages = await storage.fetch_chat(
                args.user_id, args.session_id, args.agent_id, args.last,
                before_index=args.before,
            )
    for m in messages:
        if args.json:
            print(_json_safe(json.dumps(m.to_dict(), ensure_ascii=False)), file=out)
        else:
            print(f"{_when(m.timestamp)}  {safe(m.agent_id)}#{m.index}  {safe(m.role)}: "
                  f"{_safe_block(_text(m), '    ')}", file=out)
    if not messages and not args.json:
        print("no messages", file=out)
    if args.agent_id is not None and args.last is not None and messages and messages[0].index:
        older = _next_command(
            "show", [url, args.user_id, args.session_id, args.agent_id],
            ["--last", str(args.last), "--before", str(messages[0].index),
             *(["--json"] if args.json else [])],
        )
        # On stderr with --json, so that standard output stays JSON Lines.
        print(f"older: {safe(older)}", file=sys.stderr if args.json else out)
    return 0


def row_to_json(row: TableRow) -> str:
    """One exported row as a JSON Lines line (content as a JSON value)."""
    return _json_safe(json.dumps(
        {"user_id": row.user_id, "session_id": row.session_id, "agent_id": row.agent_id,
         "message_index": row.message_index, "role": row.role,
         "content": json.loads(row.content), "timestamp": row.timestamp},
        ensure_ascii=False, allow_nan=False,
    ))


_ROW_FIELDS = ("user_id", "session_id", "agent_id", "message_index", "role", "content",
               "timestamp")
_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "true/false",
               int: "number", float: "number", type(None): "null"}


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def row_from_json(line: str, number: int) -> TableRow:
    """A JSON Lines line of ``export`` -> TableRow (ValidationError if malformed)."""
    where = f"line {number}"
    try:
        data = json.loads(line)
    except RecursionError:
        raise ValidationError(f"{where} nests JSON too deeply to be an exported row") from None
    except ValueError as exc:
        raise ValidationError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(
            f"{where} is a JSON {_kind(data)}, not an exported row (an object with "
            f"the fields {', '.join(_ROW_FIELDS)})"
        )
    missing = [name for name in _ROW_FIELDS if name not in data]
    if missing:
        raise ValidationError(f"{where} lacks the field(s) {', '.join(missing)}")
    # Types and ranges are the core's to check (import_rows); its "row N"
    # becomes this line's number (_at_line).
    try:
        content = json.dumps(data["content"], ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise ValidationError(f"{where}: content nests too deeply") from None
    except ValueError:
        raise ValidationError(f"{where}: content holds NaN or Infinity (not JSON)") from None
    return TableRow(data["user_id"], data["session_id"], data["agent_id"],
                    data["message_index"], data["role"], content, data["timestamp"])


async def _export(args: Any, out: TextIO) -> int:
    count = 0
    async with _open(args.url, create=False) as storage:
        # Opened only once the storage is: a mistyped URL leaves the file alone.
        stream = out if args.output in (None, "-") else _output(args.output)
        try:
            async with _closing(storage.export(batch_size=args.batch_size)) as rows:
                async for row in rows:
                    stream.write(row_to_json(row) + "\n")
                    count += 1
        finally:
            if stream is not out:
                stream.close()
    print(f"exported {count} messages", file=sys.stderr)
    return 0


def _output(path: str) -> IO[str]:
    # The CLI's loop serves this command alone, so blocking file I/O is fine.
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path!r}: {exc.strerror or exc}") from None


def _input(path: str) -> IO[bytes]:
    if path == "-":
        if sys.stdin is None:
            raise UsageError("standard input is closed")
        buffer = getattr(sys.stdin, "buffer", None)
        return buffer if buffer is not None else io.BytesIO(sys.stdin.read().encode())
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory")
        return open(path, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror or exc}") from None


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(stream, 1):
        try:
            # utf-8-sig: a byte-order mark some editors write is not content.
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"line {number} is not UTF-8 text (byte {exc.start + 1} of the line is "
                f"0x{raw[exc.start]:02x}); export writes UTF-8"
            ) from None
        if line.strip():
            yield number, line


Batch = tuple[list[TableRow], list[int] | None]
"""Rows to import, with the input line of each (None when not from a file)."""


async def _numbered(stream: IO[bytes]) -> AsyncIterator[tuple[int | None, TableRow]]:
    for number, line in _lines(stream):
        yield number, row_from_json(line, number)


async def _unnumbered(rows: AsyncIterator[TableRow]) -> AsyncIterator[tuple[int | None, TableRow]]:
    async with _closing(rows):
        async for row in rows:
            yield None, row


async def _batches(
    rows: AsyncIterator[tuple[int | None, TableRow]], size: int, limits: Limits
) -> AsyncIterator[Batch]:
    """Rows in batches of ``size``, each within the target's batch limits."""
    size = min(size, limits.max_batch_size)
    # getattr: a core without a byte limit per batch has nothing to split for.
    max_bytes: int | None = getattr(limits, "max_batch_bytes", None)
    batch: list[TableRow] = []
    numbers: list[int] = []
    total = 0
    async with _closing(rows):
        async for number, row in rows:
            weight = len(row.content.encode()) if max_bytes is not None else 0
            if batch and max_bytes is not None and total + weight > max_bytes:
                yield batch, numbers or None
                batch, numbers, total = [], [], 0
            batch.append(row)
            total += weight
            if number is not None:
                numbers.append(number)
            if len(batch) >= size:
                yield batch, numbers or None
                batch, numbers, total = [], [], 0
    if batch:
        yield batch, numbers or None


_ROW_IN_BATCH = re.compile(r"^row (\d+)\b")


async def _import(args: Any, out: TextIO) -> int:
    stream = _input(args.file)  # before the storage: a missing file creates nothing
    try:
        async with _open(args.url, create=True) as storage:
            batches = _batches(_numbered(stream), args.batch_size, storage.limits)
            read, inserted = await _load(storage, batches, None)
    finally:
        if stream is not getattr(sys.stdin, "buffer", None):
            stream.close()
    print(f"read {read} messages, inserted {inserted}, already present {read - inserted}",
          file=out)
    return 0


async def _load(
    storage: ChatStorage,
    batches: AsyncIterator[Batch],
    progress: Any,
    sides: tuple[str | None, str | None] = (None, None),
) -> tuple[int, int]:
    read = inserted = 0
    source_side, target_side = sides
    async with _closing(batches):
        while True:
            with _blame(source_side):
                try:
                    rows, numbers = await batches.__anext__()
                except StopAsyncIteration:
                    break
            with _blame(target_side):
                try:
                    inserted += await storage.import_rows(rows)
                except ValidationError as exc:
                    raise _at_line(exc, numbers) from exc
            read += len(rows)
            if progress is not None:
                progress(read, inserted)
    await asyncio.sleep(0)  # an interrupt during the last read takes effect here
    return read, inserted


def _at_line(exc: ValidationError, numbers: list[int] | None) -> ValidationError:
    """The core's "row N" (N counted in the batch) as the input line it came from."""
    text = str(exc)
    match = _ROW_IN_BATCH.match(text)
    if numbers is None or match is None or int(match.group(1)) >= len(numbers):
        return ValidationError(text)
    return ValidationError(f"line {numbers[int(match.group(1))]}{text[match.end():]}")


class _NoBar:
    """Stands in for rich's progress bar when rich is not installed."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _progress(total: object, quiet: bool) -> Any:
    """rich's progress bar for ``copy``, or none without the ``cli`` extra."""
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        if not quiet:
            print("storage-core: no progress bar without rich "
                  "(pip install 'storage-core[cli]')", file=sys.stderr)
        return _NoBar()
    return Progress(
        TextColumn("copying"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} msg/s, {task.fields[inserted]} new"),
        TimeElapsedColumn(), console=_console(), transient=False,
        disable=quiet,
    )


async def _copy(args: Any, out: TextIO) -> int:
    with _blame("source"):
        opening_source = _open(args.source, create=False)
    async with contextlib.AsyncExitStack() as stack:
        with _blame("source"):
            source = await stack.enter_async_context(opening_source)
            total = (await source.describe()).get("row_count")
        with _blame("target"):
            target = await stack.enter_async_context(_open(args.target, create=True))
        started = time.monotonic()
        with _progress(total, args.quiet) as bar:
            task = bar.add_task("copy", total=total if isinstance(total, int) else None,
                                rate="-", inserted=0)

            def report(read: int, inserted: int) -> None:
                rate = read / max(time.monotonic() - started, 1e-9)
                bar.update(task, completed=read, rate=f"{rate:,.0f}", inserted=inserted)

            rows = _unnumbered(source.export(batch_size=args.batch_size))
            read, inserted = await _load(
                target, _batches(rows, args.batch_size, target.limits), report,
                ("source", "target"),
            )
    print(f"copied {read} messages from {source.url} to {target.url}: inserted {inserted}, "
          f"already present {read - inserted}", file=out)
    return 0


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


async def _prune(args: Any, out: TextIO) -> int:
    age = parse_duration(args.older_than)
    now = time.time()
    if age > now:
        raise UsageError(
            f"--older-than {args.older_than} reaches back before 1970, "
            "when no message can have been written"
        )
    cutoff = int((now - age) * 1000)
    async with _open(args.url, create=False) as storage:
        if args.dry_run:
            deleted, conversations = await _would_prune(storage, cutoff)
            print(f"would delete {deleted} messages in {conversations} conversations idle "
                  f"since before {_when(cutoff)} (dry run: nothing deleted)", file=out)
            return 0
        deleted = await storage.prune(cutoff)
    print(f"deleted {deleted} messages of conversations idle since before {_when(cutoff)}",
          file=out)
    return 0


async def _would_prune(storage: ChatStorage, cutoff: int) -> tuple[int, int]:
    """What ``prune(cutoff)`` would delete: (messages, conversations).

    Export yields rows conversation by conversation, so one pass with one
    conversation in hand counts them, on every backend."""
    messages = conversations = 0
    key: tuple[str, str, str] | None = None
    count = newest = 0

    def settle() -> None:
        nonlocal messages, conversations
        if key is not None and newest < cutoff:
            messages += count
            conversations += 1

    async with _closing(storage.export()) as rows:
        async for row in rows:
            row_key = (row.user_id, row.session_id, row.agent_id)
            if row_key != key:
                settle()
                key, count, newest = row_key, 0, row.timestamp
            count += 1
            newest = max(newest, row.timestamp)
    settle()
    return messages, conversations


async def _doctor(args: Any, out: TextIO) -> int:
    problems: list[str] = []
    started = time.perf_counter()
    storage = make_storage(args.url, create=False)
    print(f"storage:        {storage.url}", file=out)
    async with _opened(storage):
        print(f"connect:        ok ({(time.perf_counter() - started) * 1000:.1f} ms, "
              "credentials accepted)", file=out)
        facts = await storage.describe()
        print(f"server:         {safe(str(facts.get('server', '?')))}", file=out)
        version = facts.get("schema_version")
        print(f"schema version: {safe(str(version))}", file=out)
        indexes = facts.get("indexes")
        if isinstance(indexes, list) and indexes:
            print(f"indexes:        {safe(', '.join(map(str, indexes)))}", file=out)
        if "row_count" in facts:
            print(f"messages:       {safe(str(facts['row_count']))}", file=out)
        found = facts.get("problems", [])
        if isinstance(found, list):
            problems.extend(safe(str(p)) for p in found)
        else:
            problems.append(f"the backend reported problems as {type(found).__name__}")
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            await storage.fetch_chat("storage-core-doctor", "probe", "probe", 20)
            timings.append((time.perf_counter() - t0) * 1000)
        timings.sort()
        print(f"read latency:   median {timings[2]:.2f} ms, max {timings[-1]:.2f} ms "
              "(5 indexed reads)", file=out)
    for problem in problems:
        print(f"problem:        {problem}", file=out)
    print("healthy" if not problems else f"{len(problems)} problem(s) found", file=out)
    return 1 if problems else 0


# -- wiring -------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storage-core",
        description="Conversation-history storage for LLM agents. Exit status: 0 success, "
        "1 the operation failed, 2 bad usage, configuration or input.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="write a short multi-agent conversation, print it")
    demo.add_argument("url", nargs="?", default=DEFAULT_DEMO_URL,
                      help=f"storage URL (default: {DEFAULT_DEMO_URL})")
    commands.add_parser("backends", help="list installed backends and their URL schemes")

    sessions = commands.add_parser("sessions", help="list a user's sessions")
    sessions.add_argument("url")
    sessions.add_argument("user_id")
    sessions.add_argument("--json", action="store_true", help="JSON Lines output")
    sessions.add_argument("--limit", type=_positive_int, metavar="N",
                          help="at most N sessions (a page); prints the command for the next")
    sessions.add_argument("--before-session", metavar="SESSION_ID",
                          help="start after this session (the last of the previous page)")
    sessions.add_argument("--before-timestamp", type=_cursor_timestamp, metavar="MS",
                          help="that session's last activity, as the next-page command gives")

    show = commands.add_parser("show", help="print a session, or one agent's conversation")
    show.add_argument("url")
    show.add_argument("user_id")
    show.add_argument("session_id")
    show.add_argument("agent_id", nargs="?")
    show.add_argument("--last", type=_positive_int, metavar="N",
                      help="only the newest N messages")
    show.add_argument("--before", type=_index, metavar="INDEX",
                      help="only messages with an index below INDEX (needs AGENT_ID); "
                      "with --last, the N before them")
    show.add_argument("--json", action="store_true", help="JSON Lines output")

    export = commands.add_parser("export", help="stream every message out as JSON Lines")
    export.add_argument("url")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.add_argument("--batch-size", type=_positive_int, default=1000)

    load = commands.add_parser("import", help="load JSON Lines written by export")
    load.add_argument("url")
    load.add_argument("file", help="file to read, or - for standard input")
    load.add_argument("--batch-size", type=_positive_int, default=_BATCH)

    copy = commands.add_parser(
        "copy", help="copy every message between two storages (safe to re-run)"
    )
    copy.add_argument("source")
    copy.add_argument("target")
    copy.add_argument("--batch-size", type=_positive_int, default=_BATCH)
    copy.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    prune = commands.add_parser("prune", help="delete conversations idle for longer than a time")
    prune.add_argument("url")
    prune.add_argument("--older-than", required=True, metavar="DURATION",
                       help="e.g. 90s, 15m, 12h, 30d, 2w")
    prune.add_argument("--dry-run", action="store_true",
                       help="count what would be deleted, delete nothing")

    doctor = commands.add_parser(
        "doctor", help="check connection, credentials, schema and indexes; report latency"
    )
    doctor.add_argument("url")
    return parser


_ASYNC_COMMANDS = {
    "demo": _demo, "sessions": _sessions, "show": _show, "export": _export,
    "import": _import, "copy": _copy, "prune": _prune, "doctor": _doctor,
}


def _status(exc: BaseException) -> int:
    """The exit status for an error: 2 bad usage, configuration or input, 1 a failure."""
    if isinstance(exc, CommandError):
        return exc.status
    if isinstance(exc, (UsageError, ConfigurationError, ValidationError)):
        return 2
    return 1


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return safe(redact_text(text))


def _error(text: str) -> None:
    print(f"storage-core: {text}", file=sys.stderr)


def _silence_stdout() -> None:
    # The reader went away (``... | head``): point stdout at /dev/null so the
    # interpreter's final flush does not fail again with a traceback.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    try:
        args: Any = _parser().parse_args(argv)
        if args.command == "backends":
            status = _backends(out)
        else:
            status = asyncio.run(_ASYNC_COMMANDS[args.command](args, out))
        out.flush()
        return status
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        if out is sys.stdout:
            _silence_stdout()
        return 1
    except (UsageError, CommandError, StorageError, OSError) as exc:
        _error(f"error: {_message(exc)}")
        return _status(exc)
    except Exception as exc:  # a bug: still one line, never a traceback
        _error(f"internal error: {type(exc).__name__}: {_message(exc)}")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

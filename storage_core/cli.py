"""The ``storage-core`` command line.

Application commands (``demo``, ``backends``) and data tools (``sessions``,
``show``, ``export``, ``import``, ``copy``, ``prune``, ``doctor``). Errors are
one line on stderr with secrets redacted, never a traceback. Exit status: 0
success, 1 the operation failed (server, authentication, a problem ``doctor``
found), 2 bad usage, configuration or input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timezone
from typing import IO, Any, TextIO

from ._backend import TableRow
from ._factory import make_storage
from ._model import StoredMessage
from ._plugins import build_registry, load_failures
from ._storage import ChatStorage
from ._urls import redact_text
from .errors import ConfigurationError, StorageError, ValidationError

DEFAULT_DEMO_URL = "sqlite:///storage_core_demo.db"
EXPECTED_SCHEMA_VERSION = 1
REQUIRED_INDEX = "idx_conversations_lookup"
_BATCH = 500

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


def _text(message: StoredMessage) -> str:
    content = message.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("text", json.dumps(content[0], ensure_ascii=False)))
    return json.dumps(content, ensure_ascii=False)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"not a duration: {text!r} (use e.g. 90s, 15m, 12h, 30d, 2w)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


# -- application commands ---------------------------------------------------


async def _demo(args: Any, out: TextIO) -> int:
    async with make_storage(args.url) as storage:
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
        print("\nbilling, newest 2 messages (fetch_chat, max_history_size=2):", file=out)
        for m in await storage.fetch_chat(user, session, "billing", max_history_size=2):
            print(f"  #{m.index} {m.role:<9} {_text(m)}", file=out)
        print("\nthe whole session as every agent sees it (fetch_all_chats):", file=out)
        for m in await storage.fetch_all_chats(user, session):
            print(f"  {m.agent_id:<8} {m.role:<9} {_text(m)}", file=out)
        for s in await storage.list_sessions(user):
            print(f"\nsession {s.session_id}: {s.message_count} messages, "
                  f"agents {', '.join(s.agent_ids)}", file=out)
    return 0


def _backends(out: TextIO) -> int:
    rows = [(s.scheme + "://", s.distribution, s.description) for s in build_registry()]
    width = max(len(r[0]) for r in rows) + 2
    dist_width = max(len(r[1]) for r in rows) + 2
    print(f"{'scheme':<{width}}{'package':<{dist_width}}description", file=out)
    for scheme, dist, description in rows:
        print(f"{scheme:<{width}}{dist:<{dist_width}}{description}", file=out)
    for failure in load_failures():
        print(f"broken plugin {failure.name!r} from {failure.distribution}: {failure.error}",
              file=out)
    return 0


# -- data tools ---------------------------------------------------------------


async def _sessions(args: Any, out: TextIO) -> int:
    async with make_storage(args.url) as storage:
        sessions = await storage.list_sessions(args.user_id)
    if args.json:
        for s in sessions:
            print(json.dumps({"session_id": s.session_id, "agent_ids": list(s.agent_ids),
                              "message_count": s.message_count,
                              "last_timestamp": s.last_timestamp}, ensure_ascii=False),
                  file=out)
        return 0
    if not sessions:
        print(f"no sessions for user {args.user_id!r}", file=out)
        return 0
    width = max(7, *(len(s.session_id) for s in sessions)) + 2
    print(f"{'session':<{width}}{'messages':>9}  {'last activity':<24}agents", file=out)
    for s in sessions:
        print(f"{s.session_id:<{width}}{s.message_count:>9}  {_when(s.last_timestamp):<24}"
              f"{', '.join(s.agent_ids)}", file=out)
    return 0


async def _show(args: Any, out: TextIO) -> int:
    async with make_storage(args.url) as storage:
        if args.agent_id is None:
            messages = await storage.fetch_all_chats(args.user_id, args.session_id)
            if args.last is not None:
                messages = messages[-args.last:]
        else:
            messages = await storage.fetch_chat(
                args.user_id, args.session_id, args.agent_id, args.last
            )
    for m in messages:
        if args.json:
            print(json.dumps(m.to_dict(), ensure_ascii=False), file=out)
        else:
            print(f"{_when(m.timestamp)}  {m.agent_id}#{m.index}  {m.role}: {_text(m)}",
                  file=out)
    if not messages and not args.json:
        print("no messages", file=out)
    return 0


def row_to_json(row: TableRow) -> str:
    """One exported row as a JSON Lines line (content as a JSON value)."""
    return json.dumps(
        {"user_id": row.user_id, "session_id": row.session_id, "agent_id": row.agent_id,
         "message_index": row.message_index, "role": row.role,
         "content": json.loads(row.content), "timestamp": row.timestamp},
        ensure_ascii=False, allow_nan=False,
    )


def row_from_json(line: str, number: int) -> TableRow:
    """A JSON Lines line of ``export`` -> TableRow (ValidationError if malformed)."""
    try:
        data = json.loads(line)
        return TableRow(
            data["user_id"], data["session_id"], data["agent_id"], data["message_index"],
            data["role"], json.dumps(data["content"], ensure_ascii=False, allow_nan=False),
            data["timestamp"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"line {number} is not an exported row: {exc}") from None


async def _export(args: Any, out: TextIO) -> int:
    # The CLI's loop serves this command alone, so a blocking file write is fine.
    stream: IO[str] = out if args.output in (None, "-") else open(  # noqa: SIM115, ASYNC230
        args.output, "w", encoding="utf-8"
    )
    count = 0
    try:
        async with make_storage(args.url) as storage:
            async for row in storage.export(batch_size=args.batch_size):
                stream.write(row_to_json(row) + "\n")
                count += 1
    finally:
        if stream is not out:
            stream.close()
    print(f"exported {count} messages", file=sys.stderr)
    return 0


def _lines(path: str) -> Iterator[tuple[int, str]]:
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    try:
        for number, line in enumerate(stream, 1):
            if line.strip():
                yield number, line
    finally:
        if stream is not sys.stdin:
            stream.close()


async def _batches(rows: AsyncIterator[TableRow], size: int) -> AsyncIterator[list[TableRow]]:
    batch: list[TableRow] = []
    async for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _import(args: Any, out: TextIO) -> int:
    async def rows() -> AsyncIterator[TableRow]:
        for number, line in _lines(args.file):
            yield row_from_json(line, number)

    async with make_storage(args.url) as storage:
        read, inserted = await _load(storage, rows(), args.batch_size, None)
    print(f"read {read} messages, inserted {inserted}, already present {read - inserted}",
          file=out)
    return 0


async def _load(
    storage: ChatStorage, rows: AsyncIterator[TableRow], batch_size: int, progress: Any
) -> tuple[int, int]:
    read = inserted = 0
    async for batch in _batches(rows, batch_size):
        inserted += await storage.import_rows(batch)
        read += len(batch)
        if progress is not None:
            progress(read, inserted)
    return read, inserted


async def _copy(args: Any, out: TextIO) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    async with make_storage(args.source) as source, make_storage(args.target) as target:
        total = (await source.describe()).get("row_count")
        started = time.monotonic()
        with Progress(
            TextColumn("copying"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} msg/s, {task.fields[inserted]} new"),
            TimeElapsedColumn(), console=_console(), transient=False,
            disable=args.quiet,
        ) as bar:
            task = bar.add_task("copy", total=total if isinstance(total, int) else None,
                                rate="-", inserted=0)

            def report(read: int, inserted: int) -> None:
                rate = read / max(time.monotonic() - started, 1e-9)
                bar.update(task, completed=read, rate=f"{rate:,.0f}", inserted=inserted)

            read, inserted = await _load(
                target, source.export(batch_size=args.batch_size), args.batch_size, report
            )
    print(f"copied {read} messages from {source.url} to {target.url}: inserted {inserted}, "
          f"already present {read - inserted}", file=out)
    return 0


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


async def _prune(args: Any, out: TextIO) -> int:
    cutoff = int((time.time() - parse_duration(args.older_than)) * 1000)
    async with make_storage(args.url) as storage:
        deleted = await storage.prune(cutoff)
    print(f"deleted {deleted} messages of conversations idle since before {_when(cutoff)}",
          file=out)
    return 0


async def _doctor(args: Any, out: TextIO) -> int:
    problems: list[str] = []
    started = time.perf_counter()
    storage = make_storage(args.url)
    print(f"storage:        {storage.url}", file=out)
    try:
        await storage.initialize()
        print(f"connect:        ok ({(time.perf_counter() - started) * 1000:.1f} ms, "
              "credentials accepted)", file=out)
        facts = await storage.describe()
        print(f"server:         {facts.get('server', '?')}", file=out)
        version = facts.get("schema_version")
        print(f"schema version: {version}", file=out)
        if version is not None and version != EXPECTED_SCHEMA_VERSION:
            problems.append(f"schema version {version}, expected {EXPECTED_SCHEMA_VERSION}")
        indexes = facts.get("indexes")
        if isinstance(indexes, list) and facts.get("schema_version") is not None:
            print(f"indexes:        {', '.join(map(str, indexes)) or 'none'}", file=out)
            if REQUIRED_INDEX not in indexes:
                problems.append(f"index {REQUIRED_INDEX} is missing")
        if "row_count" in facts:
            print(f"messages:       {facts['row_count']}", file=out)
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            await storage.fetch_chat("storage-core-doctor", "probe", "probe", 20)
            timings.append((time.perf_counter() - t0) * 1000)
        timings.sort()
        print(f"read latency:   median {timings[2]:.2f} ms, max {timings[-1]:.2f} ms "
              "(5 indexed reads)", file=out)
    finally:
        await storage.close()
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

    show = commands.add_parser("show", help="print a session, or one agent's conversation")
    show.add_argument("url")
    show.add_argument("user_id")
    show.add_argument("session_id")
    show.add_argument("agent_id", nargs="?")
    show.add_argument("--last", type=int, metavar="N", help="only the newest N messages")
    show.add_argument("--json", action="store_true", help="JSON Lines output")

    export = commands.add_parser("export", help="stream every message out as JSON Lines")
    export.add_argument("url")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.add_argument("--batch-size", type=int, default=1000)

    load = commands.add_parser("import", help="load JSON Lines written by export")
    load.add_argument("url")
    load.add_argument("file", help="file to read, or - for standard input")
    load.add_argument("--batch-size", type=int, default=_BATCH)

    copy = commands.add_parser(
        "copy", help="copy every message between two storages (safe to re-run)"
    )
    copy.add_argument("source")
    copy.add_argument("target")
    copy.add_argument("--batch-size", type=int, default=_BATCH)
    copy.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    prune = commands.add_parser("prune", help="delete conversations idle for longer than a time")
    prune.add_argument("url")
    prune.add_argument("--older-than", required=True, metavar="DURATION",
                       help="e.g. 90s, 15m, 12h, 30d, 2w")

    doctor = commands.add_parser(
        "doctor", help="check connection, credentials, schema and indexes; report latency"
    )
    doctor.add_argument("url")
    return parser


_ASYNC_COMMANDS = {
    "demo": _demo, "sessions": _sessions, "show": _show, "export": _export,
    "import": _import, "copy": _copy, "prune": _prune, "doctor": _doctor,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    args: Any = _parser().parse_args(argv)
    try:
        if args.command == "backends":
            return _backends(out)
        if getattr(args, "batch_size", 1) < 1:
            raise UsageError("--batch-size must be at least 1")
        return asyncio.run(_ASYNC_COMMANDS[args.command](args, out))
    except (UsageError, ConfigurationError, ValidationError) as exc:
        print(f"storage-core: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except (StorageError, OSError) as exc:
        print(f"storage-core: error: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("storage-core: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``storage-core`` command line.

``storage-core demo [URL]`` writes a short multi-agent conversation and prints
it back; ``storage-core backends`` lists the installed backends. Errors are
one line on stderr, never a traceback; exit status 2 means bad configuration
or usage, 1 any other storage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ._factory import make_storage
from ._model import StoredMessage
from ._plugins import build_registry, load_failures
from ._urls import redact_text
from .errors import ConfigurationError, StorageError

DEFAULT_DEMO_URL = "sqlite:///storage_core_demo.db"

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


def _text(message: StoredMessage) -> str:
    content = message.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("text", json.dumps(content[0])))
    return json.dumps(content, ensure_ascii=False)


async def _demo(url: str, out: TextIO) -> None:
    async with make_storage(url) as storage:
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
        sessions = await storage.list_sessions(user)
        for s in sessions:
            print(f"\nsession {s.session_id}: {s.message_count} messages, "
                  f"agents {', '.join(s.agent_ids)}", file=out)


def _backends(out: TextIO) -> None:
    registry = build_registry()
    rows = [(s.scheme + "://", s.distribution, s.description) for s in registry]
    width = max(len(r[0]) for r in rows) + 2
    dist_width = max(len(r[1]) for r in rows) + 2
    print(f"{'scheme':<{width}}{'package':<{dist_width}}description", file=out)
    for scheme, dist, description in rows:
        print(f"{scheme:<{width}}{dist:<{dist_width}}{description}", file=out)
    for failure in load_failures():
        print(f"broken plugin {failure.name!r} from {failure.distribution}: {failure.error}",
              file=out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storage-core", description="Conversation-history storage for LLM agents."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="write a short multi-agent conversation and print it back"
    )
    demo.add_argument("url", nargs="?", default=DEFAULT_DEMO_URL,
                      help=f"storage URL (default: {DEFAULT_DEMO_URL})")
    commands.add_parser("backends", help="list installed backends and their URL schemes")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    out = out or sys.stdout
    args: Any = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            asyncio.run(_demo(args.url, out))
        elif args.command == "backends":
            _backends(out)
    except ConfigurationError as exc:
        print(f"storage-core: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"storage-core: error: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

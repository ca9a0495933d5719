"""The drop-in and agent-squad's own SqlChatStorage on one SQLite file, both ways.

Also: for the same calls, the drop-in returns what the original returns.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI a missing agent-squad is a failure
    pytest.importorskip(
        "agent_squad",
        reason="agent-squad is not installed: pip install 'storage-core[agent-squad]' "
        "(Python 3.11+)",
    )

from agent_squad.storage.sql_chat_storage import SqlChatStorage
from agent_squad.types import ConversationMessage, ParticipantRole, TimestampedMessage

from storage_core.agent_squad import StorageCoreChatStorage

pytestmark = pytest.mark.asyncio

Rows = Callable[..., list[tuple[Any, ...]]]


def user(text: str) -> ConversationMessage:
    return ConversationMessage(role=ParticipantRole.USER.value, content=[{"text": text}])


def assistant(text: str) -> ConversationMessage:
    return ConversationMessage(role=ParticipantRole.ASSISTANT.value, content=[{"text": text}])


def plain(messages: list[Any]) -> list[tuple[str, Any]]:
    """Messages as comparable (role, content) pairs; every one a ConversationMessage."""
    assert all(type(m) is ConversationMessage for m in messages)
    return [(m.role, m.content) for m in messages]


async def test_original_writes_drop_in_reads_and_extends(
    original: Any, adapter: StorageCoreChatStorage, rows: Rows
) -> None:
    await original.save_chat_message("u1", "s1", "tech", user("my printer is on fire"))
    await original.save_chat_message("u1", "s1", "tech", assistant("unplug it"))
    await original.save_chat_messages(
        "u1", "s1", "tech", [user("done"), assistant("good")], max_history_size=50
    )
    await original.save_chat_message("u1", "s1", "billing", user("refund?"))
    written = plain(await original.fetch_chat("u1", "s1", "tech"))

    assert plain(await adapter.fetch_chat("u1", "s1", "tech")) == written
    assert plain(await adapter.fetch_chat("u1", "s1", "tech", 3)) == written[-3:]
    assert plain(await adapter.fetch_chat("u1", "s1", "billing")) == [
        ("user", [{"text": "refund?"}])
    ]

    after = await adapter.save_chat_message("u1", "s1", "tech", user("thanks"))
    assert plain(after) == [*written, ("user", [{"text": "thanks"}])]
    await adapter.save_chat_messages(
        "u1", "s1", "billing", [assistant("sure"), user("when?"), assistant("now")]
    )
    assert [r[0] for r in rows("u1", "s1", "tech")] == [0, 1, 2, 3, 4]
    assert [r[0] for r in rows("u1", "s1", "billing")] == [0, 1, 2, 3]

    # ... and the original reads what the drop-in added.
    assert plain(await original.fetch_chat("u1", "s1", "tech")) == plain(after)
    assert len(await original.fetch_chat("u1", "s1", "billing")) == 4


async def test_drop_in_writes_original_reads_and_extends(
    original: Any, adapter: StorageCoreChatStorage, rows: Rows
) -> None:
    await adapter.save_chat_messages(
        "u1", "s1", "tech", [user("héllo ✓"), assistant("hi"), user("bye")]
    )
    written = plain(await adapter.fetch_chat("u1", "s1", "tech"))
    assert plain(await original.fetch_chat("u1", "s1", "tech")) == written

    extended = await original.save_chat_message("u1", "s1", "tech", assistant("see you"))
    assert plain(extended) == [*written, ("assistant", [{"text": "see you"}])]
    assert [r[0] for r in rows("u1", "s1", "tech")] == [0, 1, 2, 3]
    assert plain(await adapter.fetch_chat("u1", "s1", "tech")) == plain(extended)

    # Trimming by either one keeps the newest N of the same rows.
    await adapter.save_chat_message("u1", "s1", "tech", user("again"), max_history_size=3)
    assert [r[0] for r in rows("u1", "s1", "tech")] == [2, 3, 4]
    await original.save_chat_message("u1", "s1", "tech", assistant("yes"), max_history_size=3)
    assert [r[0] for r in rows("u1", "s1", "tech")] == [3, 4, 5]
    assert plain(await adapter.fetch_chat("u1", "s1", "tech")) == plain(
        await original.fetch_chat("u1", "s1", "tech")
    )


async def test_a_database_made_by_the_original_opens_without_its_initialize(
    db_path: Path, original: Any
) -> None:
    await original.save_chat_message("u1", "s1", "tech", user("hi"))
    async with StorageCoreChatStorage(f"sqlite:///{db_path}") as storage:
        assert plain(await storage.fetch_chat("u1", "s1", "tech")) == [("user", [{"text": "hi"}])]


async def _script(storage: Any) -> list[Any]:
    """The same calls on either storage; returns what each call returned.

    A pause before each call keeps timestamps distinct, so the session
    view's order (by timestamp) is the same for both.
    """
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("fetch_chat", ("u", "s", "a")),
        ("save_chat_message", ("u", "s", "a", user("1"))),
        ("save_chat_message", ("u", "s", "a", user("1 again"))),  # same role: not stored
        ("save_chat_message", ("u", "s", "a", assistant("2"), 4)),
        ("save_chat_messages", ("u", "s", "a", [user("3"), assistant("4")], 4)),
        ("save_chat_messages", ("u", "s", "a", [])),
        ("save_chat_message", ("u", "s", "a", user("5"), 4)),  # trims to the newest 4
        ("fetch_chat", ("u", "s", "a")),
        ("fetch_chat", ("u", "s", "a", 3)),  # the newest 3 messages, not pairs
        ("fetch_chat", ("u", "s", "a", 0)),  # 0: no limit
        ("fetch_chat", ("u", "s", "other")),
        ("save_chat_message", ("u", "s", "b", user("to b"))),
        ("save_chat_message", ("u", "s", "b", assistant("from b"))),
        ("fetch_all_chats", ("u", "s")),
        ("fetch_all_chats", ("u", "nothing")),
    ]
    out: list[Any] = []
    for name, args in calls:
        await asyncio.sleep(0.003)
        out.append(await getattr(storage, name)(*args))
    return out


async def test_same_calls_same_returns(tmp_path: Path) -> None:
    theirs = SqlChatStorage(f"file:{tmp_path / 'theirs.db'}")
    await theirs.initialize()
    try:
        expected = [plain(r) for r in await _script(theirs)]
    finally:
        await theirs.close()
    async with StorageCoreChatStorage(f"sqlite:///{tmp_path / 'ours.db'}") as ours:
        got = [plain(r) for r in await _script(ours)]
    assert got == expected
    assert expected[-2][-1] == ("assistant", [{"text": "[b] from b"}])  # the script is live


async def test_a_timestamped_message_keeps_its_timestamp(
    adapter: StorageCoreChatStorage, rows: Rows
) -> None:
    await adapter.save_chat_message(
        "u", "s", "a", TimestampedMessage(role="user", content=[{"text": "x"}], timestamp=1_000)
    )
    await adapter.save_chat_messages(
        "u",
        "s",
        "a",
        [
            TimestampedMessage(role="assistant", content=[{"text": "y"}], timestamp=2_000),
            user("z"),  # no timestamp: the save's clock
        ],
    )
    stamps = [r[3] for r in rows("u", "s", "a")]
    assert stamps[:2] == [1_000, 2_000]
    assert stamps[2] > 1_600_000_000_000
    assert [m.timestamp for m in await adapter.storage.fetch_chat("u", "s", "a")] == stamps

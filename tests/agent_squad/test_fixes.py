"""Where the drop-in deliberately differs from SqlChatStorage: the original's bugs, fixed.

And the parts of its interface that are the drop-in's own (construction,
errors, the storage underneath).
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

from agent_squad.storage import ChatStorage as AgentSquadChatStorage
from agent_squad.types import ConversationMessage, ParticipantRole

from storage_core import ClosedError, ConfigurationError, ValidationError, make_storage
from storage_core.agent_squad import SqlChatStorage, StorageCoreChatStorage

pytestmark = pytest.mark.asyncio

Rows = Callable[..., list[tuple[Any, ...]]]


def msg(role: str, text: str) -> ConversationMessage:
    return ConversationMessage(role=role, content=[{"text": text}])


async def test_it_is_an_agent_squad_chat_storage(adapter: StorageCoreChatStorage) -> None:
    assert isinstance(adapter, AgentSquadChatStorage)
    assert SqlChatStorage is StorageCoreChatStorage
    assert "sqlite:///" in repr(adapter)


async def test_concurrent_saves_lose_nothing(adapter: StorageCoreChatStorage, rows: Rows) -> None:
    # The original reads MAX(message_index) and inserts later: concurrent saves
    # collide on the primary key. Here each save is one atomic step.
    await asyncio.gather(
        *(
            adapter.save_chat_messages(
                "u", "s", "a", [msg("user", f"q{i}"), msg("assistant", f"a{i}")]
            )
            for i in range(16)
        )
    )
    stored = rows("u", "s", "a")
    assert [r[0] for r in stored] == list(range(32))
    assert [r[1] for r in stored] == ["user", "assistant"] * 16


async def test_concurrent_same_role_saves_store_one(
    adapter: StorageCoreChatStorage, rows: Rows
) -> None:
    await adapter.save_chat_message("u", "s", "a", msg("assistant", "hello"))
    await asyncio.gather(
        *(adapter.save_chat_message("u", "s", "a", msg("user", "q")) for _ in range(8))
    )
    assert [r[1] for r in rows("u", "s", "a")] == ["assistant", "user"]


async def test_a_batch_is_all_or_nothing(adapter: StorageCoreChatStorage, rows: Rows) -> None:
    await adapter.save_chat_message("u", "s", "a", msg("user", "q"))
    good = msg("assistant", "fine")
    with pytest.raises(ValueError, match=r"new_messages\[1\].*list of dictionaries"):
        await adapter.save_chat_messages(
            "u", "s", "a", [good, ConversationMessage(role="user", content=["not a dict"])]
        )
    with pytest.raises(ValidationError, match=r"new_messages\[1\].*cannot be None"):
        await adapter.save_chat_messages("u", "s", "a", [good, ConversationMessage(role="user")])
    with pytest.raises(ValidationError, match=r"messages\[1\] role"):
        await adapter.save_chat_messages("u", "s", "a", [good, msg("", "no role")])
    assert len(rows("u", "s", "a")) == 1


async def test_a_batch_applies_the_consecutive_role_rule(
    adapter: StorageCoreChatStorage,
) -> None:
    # The original's batch save skips the check (a TODO in every agent-squad storage).
    await adapter.save_chat_message("u", "s", "a", msg("user", "q"))
    history = await adapter.save_chat_messages(
        "u", "s", "a", [msg("user", "q again"), msg("assistant", "a"), msg("assistant", "a2")]
    )
    assert [(m.role, m.content[0]["text"]) for m in history] == [("user", "q"), ("assistant", "a")]


async def test_the_session_view_keeps_every_block(adapter: StorageCoreChatStorage) -> None:
    tool_first = ConversationMessage(
        role="assistant", content=[{"toolUse": {"name": "lookup"}}, {"text": "found it"}]
    )
    await adapter.save_chat_message("u", "s", "a", msg("user", "q"))
    await asyncio.sleep(0.003)
    await adapter.save_chat_message("u", "s", "a", tool_first)
    await asyncio.sleep(0.003)
    await adapter.save_chat_message(
        "u", "s", "b", ConversationMessage(role="user", content="plain")
    )
    await asyncio.sleep(0.003)
    await adapter.save_chat_message(
        "u",
        "s",
        "b",
        ConversationMessage(role="assistant", content=[{"text": "one"}, {"image": {"id": 1}}]),
    )
    await asyncio.sleep(0.003)
    await adapter.save_chat_message(
        "u", "s", "c", ConversationMessage(role="assistant", content=[])
    )
    view = await adapter.fetch_all_chats("u", "s")
    assert all(type(m) is ConversationMessage for m in view)
    assert [(m.role, m.content) for m in view] == [
        ("user", [{"text": "q"}]),
        ("assistant", [{"toolUse": {"name": "lookup"}}, {"text": "[a] found it"}]),
        ("user", [{"text": "plain"}]),  # a plain string comes back as one text block
        ("assistant", [{"text": "[b] one"}, {"image": {"id": 1}}]),
        ("assistant", []),
    ]


async def test_roles_may_be_participant_roles(adapter: StorageCoreChatStorage, rows: Rows) -> None:
    await adapter.save_chat_message(
        "u", "s", "a", ConversationMessage(role=ParticipantRole.USER, content=[{"text": "q"}])
    )
    history = await adapter.save_chat_message(
        "u", "s", "a", ConversationMessage(role=ParticipantRole.USER, content=[{"text": "again"}])
    )
    assert [m.role for m in history] == ["user"]
    assert [r[1] for r in rows("u", "s", "a")] == ["user"]


async def test_zero_means_no_limit_and_negative_is_refused(
    adapter: StorageCoreChatStorage, rows: Rows
) -> None:
    # The original's fetch reads 0 as "no limit" (and its save deletes the
    # whole conversation, the new message included); both read it as no limit here.
    for i, role in enumerate(["user", "assistant", "user"]):
        await adapter.save_chat_message("u", "s", "a", msg(role, str(i)), max_history_size=0)
    assert len(rows("u", "s", "a")) == 3
    assert len(await adapter.fetch_chat("u", "s", "a", 0)) == 3
    with pytest.raises(ValidationError, match="max_history_size"):
        await adapter.fetch_chat("u", "s", "a", -1)
    with pytest.raises(ValidationError, match="max_history_size"):
        await adapter.save_chat_message("u", "s", "a", msg("assistant", "x"), max_history_size=-1)
    assert len(rows("u", "s", "a")) == 3


async def test_a_made_storage_can_be_wrapped() -> None:
    core = make_storage("memory://")
    storage = StorageCoreChatStorage(core)
    assert storage.storage is core
    await storage.save_chat_message("u", "s", "a", msg("user", "q"))
    assert len(await core.fetch_chat("u", "s", "a")) == 1
    with pytest.raises(ConfigurationError):
        StorageCoreChatStorage(core, "token")
    await storage.close()
    with pytest.raises(ClosedError):
        await storage.fetch_chat("u", "s", "a")


async def test_options_and_token_go_to_make_storage(db_path: Path) -> None:
    storage = StorageCoreChatStorage(f"sqlite:///{db_path}", skip_consecutive_roles=False)
    async with storage:
        await storage.save_chat_message("u", "s", "a", msg("user", "q"))
        assert len(await storage.save_chat_message("u", "s", "a", msg("user", "q2"))) == 2
    with pytest.raises(ConfigurationError, match="auth_token") as info:
        StorageCoreChatStorage(f"sqlite:///{db_path}", "secret-token")
    assert "secret-token" not in str(info.value)


async def test_the_originals_own_url_works_with_storage_core_libsql(
    db_path: Path, original: Any
) -> None:
    # ``file:`` (and ``libsql://`` with a token) is storage-core-libsql's scheme.
    pytest.importorskip("storage_core_libsql", reason="storage-core-libsql is not installed")
    await original.save_chat_message("u", "s", "a", msg("user", "q"))
    async with StorageCoreChatStorage(f"file:{db_path}") as storage:
        history = await storage.save_chat_message("u", "s", "a", msg("assistant", "a"))
    assert [m.role for m in history] == ["user", "assistant"]
    assert [m.role for m in await original.fetch_chat("u", "s", "a")] == ["user", "assistant"]

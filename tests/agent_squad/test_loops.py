"""The drop-in used from several event loops, as agent-squad's SupervisorAgent does."""

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

from agent_squad.types import ConversationMessage

from storage_core.agent_squad import StorageCoreChatStorage

Rows = Callable[..., list[tuple[Any, ...]]]


def msg(role: str, text: str) -> ConversationMessage:
    return ConversationMessage(role=role, content=[{"text": text}])


@pytest.mark.asyncio
async def test_calls_from_worker_threads_run_on_the_storages_loop(
    adapter: StorageCoreChatStorage, rows: Rows
) -> None:
    # SupervisorAgent.send_messages runs asyncio.run(storage...) in worker threads
    # while the orchestrator's loop waits for them.
    await adapter.save_chat_message("u", "s", "lead", msg("user", "go"))

    def send(i: int) -> int:
        agent = f"member-{i}"
        asyncio.run(adapter.fetch_chat("u", "s", agent))
        batch = [msg("user", f"task {i}"), msg("assistant", f"done {i}")]
        return len(asyncio.run(adapter.save_chat_messages("u", "s", agent, batch)))

    sent = await asyncio.wait_for(
        asyncio.gather(*(asyncio.to_thread(send, i) for i in range(4))), timeout=30
    )
    assert sent == [2, 2, 2, 2]
    assert all([r[0] for r in rows("u", "s", f"member-{i}")] == [0, 1] for i in range(4))
    assert len(await adapter.fetch_all_chats("u", "s")) == 9


def test_sequential_event_loops_take_over(db_path: Path) -> None:
    storage = StorageCoreChatStorage(f"sqlite:///{db_path}")
    asyncio.run(storage.initialize())
    asyncio.run(storage.save_chat_message("u", "s", "a", msg("user", "q")))
    assert len(asyncio.run(storage.fetch_chat("u", "s", "a"))) == 1
    asyncio.run(storage.close())

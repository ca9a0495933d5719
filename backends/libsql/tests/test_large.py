"""Conversations and batches larger than a libSQL server sends or takes in
one message: sqld refuses a response over 10 MB (``--max-response-size``) and
closes a WebSocket on a message over 16 MiB, while the core allows 4 MiB
messages and 64 MiB batches. Reads come back in parts, large batches on a
WebSocket URL go over HTTP, and nothing of this shows to the caller."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from storage_core import RetryPolicy, make_storage

pytestmark = pytest.mark.asyncio

MIB = 1024 * 1024


def _big(role: str, n: int, size: int) -> dict[str, Any]:
    return {"role": role, "content": [{"text": f"{n:04d}" + "ü\"x" * (size // 4)}]}


@pytest.mark.parametrize("kind", ["ws", "http"])
async def test_a_conversation_over_the_response_limit_reads_back(
    sqld_server: Any, kind: str
) -> None:
    url = sqld_server.ws_url if kind == "ws" else sqld_server.http_url
    agent = f"large-{secrets.token_hex(4)}"
    batch = [_big("user" if n % 2 == 0 else "assistant", n, 3 * MIB) for n in range(8)]
    # No retries: a refused request must not be hidden by a repeat.
    async with make_storage(url, retry=RetryPolicy(attempts=1)) as storage:
        stored = await storage.append_messages("u", "s", agent, batch)  # ~26 MiB as JSON
        assert [m.index for m in stored] == list(range(8))
        history = await storage.save_chat_message("u", "s", agent, _big("user", 8, 3 * MIB))
        assert [m.index for m in history] == list(range(9))
        assert [m.content for m in history[:8]] == [m["content"] for m in batch]
        window = await storage.fetch_chat("u", "s", agent, 5)
        assert [m.index for m in window] == [4, 5, 6, 7, 8]
        older = await storage.fetch_chat("u", "s", agent, 3, before_index=4)
        assert [m.index for m in older] == [1, 2, 3]
        assert [m.content for m in await storage.fetch_chat("u", "s", agent)] == [
            m.content for m in history
        ]

"""Paging in the core: the fallback for a backend without ``SupportsPaging``
(the same pages, from the full listing), which backend call each path makes,
and the sync facade's parameters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from storage_core import ChatStorage, SessionInfo, ValidationError
from storage_core.backend import (
    ConversationKey,
    MemoryBackend,
    RowValues,
    StoredRow,
    SupportsPaging,
)
from storage_core.sync import SyncChatStorage


class CountingBackend(MemoryBackend):
    """The memory backend, recording which read each call reached."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def list_sessions(self, user_id: str) -> Sequence[SessionInfo]:
        self.calls.append("list_sessions")
        return await super().list_sessions(user_id)

    async def list_sessions_page(
        self, user_id: str, limit: int | None, before: SessionInfo | None
    ) -> Sequence[SessionInfo]:
        self.calls.append("list_sessions_page")
        return await super().list_sessions_page(user_id, limit, before)

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[StoredRow]:
        self.calls.append("fetch")
        return await super().fetch(key, limit)

    async def fetch_before(
        self, key: ConversationKey, limit: int | None, before_index: int
    ) -> Sequence[RowValues]:
        self.calls.append("fetch_before")
        return await super().fetch_before(key, limit, before_index)


class UnpagedBackend(CountingBackend):
    """Without paged reads, as a backend written before them."""

    list_sessions_page = None  # type: ignore[assignment]
    fetch_before = None  # type: ignore[assignment]


async def _fill(storage: ChatStorage, seed: int) -> None:
    rng = random.Random(seed)
    for n in range(40):
        stamp = rng.randrange(5)  # many ties
        await storage.save_chat_messages(
            "u", f"s{rng.randrange(1000):03d}", rng.choice(["a", "b"]),
            [{"role": "user", "content": [{"text": "x"}], "timestamp": stamp},
             {"role": "assistant", "content": [{"text": "y"}], "timestamp": stamp + n % 3}])


def test_fallback_pages_are_the_backends_pages() -> None:
    async def go() -> None:
        paged, unpaged = CountingBackend(), UnpagedBackend()
        assert isinstance(paged, SupportsPaging)
        assert not isinstance(unpaged, SupportsPaging)
        a, b = ChatStorage(paged), ChatStorage(unpaged)
        await _fill(a, 7)
        await _fill(b, 7)
        full = await a.list_sessions("u")
        assert full == await b.list_sessions("u")
        cursors: list[SessionInfo | None] = [None, *full, SessionInfo("s5", (), 0, 3)]
        for limit in (None, 1, 4, 100):
            for before in cursors:
                got = await a.list_sessions("u", limit=limit, before=before)
                assert got == await b.list_sessions("u", limit=limit, before=before)
        for index in (0, 1, 2, 3, 50, 2**31, 10**20):
            for size in (None, 1, 2, 5):
                got_a = await a.fetch_chat("u", full[0].session_id, full[0].agent_ids[0], size,
                                           before_index=index)
                got_b = await b.fetch_chat("u", full[0].session_id, full[0].agent_ids[0], size,
                                           before_index=index)
                assert got_a == got_b
        assert "list_sessions_page" in paged.calls and "fetch_before" in paged.calls
        assert "list_sessions_page" not in unpaged.calls
        assert "fetch_before" not in unpaged.calls

    asyncio.run(go())


def test_each_path_makes_one_backend_read() -> None:
    async def go() -> None:
        backend = CountingBackend()
        storage = ChatStorage(backend)
        await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "x"})
        backend.calls.clear()
        await storage.list_sessions("u")
        await storage.list_sessions("u", limit=5)
        await storage.fetch_chat("u", "s", "a", 3)
        await storage.fetch_chat("u", "s", "a", 3, before_index=1)
        await storage.fetch_chat("u", "s", "a", 3, before_index=2**31)  # above every index
        # (The memory backend builds its page from its own listing.)
        assert backend.calls == ["list_sessions", "list_sessions_page", "list_sessions",
                                 "fetch", "fetch_before", "fetch"]

    asyncio.run(go())


def test_sync_facade_pages() -> None:
    with SyncChatStorage(ChatStorage(MemoryBackend())) as storage:
        for n in range(5):
            storage.save_chat_message("u", f"s{n}", "a",
                                      {"role": "user", "content": "x", "timestamp": n})
        storage.save_chat_messages("u", "s4", "a", [
            {"role": "assistant", "content": f"m{i}", "timestamp": 10 + i} if i % 2 == 0
            else {"role": "user", "content": f"m{i}", "timestamp": 10 + i} for i in range(6)])
        first = storage.list_sessions("u", limit=2)
        assert [s.session_id for s in first] == ["s4", "s3"]
        rest = storage.list_sessions("u", before=first[-1])
        assert [s.session_id for s in rest] == ["s2", "s1", "s0"]
        assert [m.index for m in storage.fetch_chat("u", "s4", "a", 2, before_index=4)] == [2, 3]
        with pytest.raises(ValidationError, match="before_index"):
            storage.fetch_chat("u", "s4", "a", before_index=-1)
        with pytest.raises(ValidationError, match="limit"):
            storage.list_sessions("u", limit=0)

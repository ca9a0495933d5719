"""``pop_message``: remove and return a conversation's newest message, atomically.

Pop is optional for a backend (``storage_core.SupportsPop``); one that does
not implement it skips these tests with that reason, after checking that
``pop_message`` refuses with a ``ConfigurationError``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest

from storage_core import ConfigurationError, StoredMessage, make_storage
from storage_core.backend import SupportsPop

from ._support import (
    Conversation,
    FreshIds,
    StorageFactory,
    TimedStorage,
    msg,
    requires,
    summary,
    texts,
)

__all__ = ["PopTests", "pop_in_process"]

aio = pytest.mark.asyncio

POPPED = 20  # messages stored before the concurrent pops
EXTRA_POPS = 5  # pops beyond them, which must find the conversation empty
PROCESSES = 4


def _full(m: StoredMessage) -> tuple[Any, ...]:
    return (m.agent_id, m.index, m.role, m.content, m.timestamp)


def _numbered(i: int) -> dict[str, Any]:
    return msg("user" if i % 2 == 0 else "assistant", f"m{i}", 1000 + i)


@asynccontextmanager
async def _popper(factory: StorageFactory, **options: Any) -> AsyncIterator[TimedStorage]:
    async with factory.open(**options) as storage:
        if not isinstance(storage.raw.backend, SupportsPop):
            with pytest.raises(ConfigurationError, match="pop_message"):
                await storage.pop_message("u", "s", "a")
            pytest.skip("backend implements no pop (storage_core.SupportsPop)")
        yield storage


def pop_in_process(
    url: str, options: dict[str, Any], conv: tuple[str, str, str], count: int, timeout: float
) -> list[tuple[int, str] | None]:
    """Worker of the multi-process test: ``count`` pops, each its own call.

    Module-level so a spawned process can import it. Returns (index, text)
    of each popped message, None for a pop that found nothing.
    """
    return asyncio.run(_pop_many(url, options, Conversation(*conv), count, timeout))


async def _pop_many(
    url: str, options: dict[str, Any], conv: Conversation, count: int, timeout: float
) -> list[tuple[int, str] | None]:
    storage = make_storage(url, **options)
    try:
        await asyncio.wait_for(storage.initialize(), timeout)
        out: list[tuple[int, str] | None] = []
        for _ in range(count):
            m = await asyncio.wait_for(storage.pop_message(*conv), timeout)
            out.append(None if m is None else (m.index, texts([m])[0]))
        return out
    finally:
        await asyncio.wait_for(storage.close(), timeout)


def _check_popped_once(popped: list[tuple[int, str] | None], stored: list[StoredMessage]) -> None:
    got = [p for p in popped if p is not None]
    want = [(m.index, t) for m, t in zip(stored, texts(stored), strict=True)]
    twice = [p for p, n in Counter(got).items() if n > 1]
    assert not twice, f"concurrent pops returned the same message more than once: {twice[:5]}"
    assert sorted(got) == want, (
        f"{len(got)} of {len(want)} messages popped; expected each exactly once")
    assert popped.count(None) == len(popped) - len(want)


class PopTests:
    """Pop returns the newest message once, leaves the rest, and is atomic."""

    @requires("read_your_writes")
    @aio
    async def test_pop_of_empty_conversation_returns_none(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        neighbour = c._replace(agent_id=fresh_ids("other-agent"))
        async with _popper(storage_factory) as s:
            await s.save_chat_messages(*neighbour, [msg("user", "keep", 1),
                                                    msg("assistant", "me", 2)])
            before = await s.fetch_all_chats(c.user_id, c.session_id)
            assert await s.pop_message(*c) is None
            assert await s.pop_message(*c) is None
            assert await s.fetch_chat(*c) == []
            assert await s.fetch_all_chats(c.user_id, c.session_id) == before

    @requires("read_your_writes")
    @aio
    async def test_pop_returns_the_newest_and_leaves_the_rest(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with _popper(storage_factory) as s:
            await s.save_chat_messages(*c, [
                msg("user", "one", 10),
                {"role": "assistant", "content": [{"text": "two"}, {"toolUse": {"n": 1}}],
                 "timestamp": 20},
                msg("user", "three", 30),
            ])
            before = await s.fetch_chat(*c)
            popped = await s.pop_message(*c)
            assert popped is not None
            assert _full(popped) == _full(before[-1]), "pop did not return the newest message"
            assert (popped.index, popped.role, texts([popped])[0], popped.timestamp) == (
                2, "user", "three", 30)
            rest = await s.fetch_chat(*c)
            assert [_full(m) for m in rest] == [_full(m) for m in before[:-1]]
            second = await s.pop_message(*c)
            assert second is not None
            assert _full(second) == _full(before[1])
            assert second.content == [{"text": "two"}, {"toolUse": {"n": 1}}]
            assert summary(await s.fetch_chat(*c)) == [(0, "user", "one")]

    @requires("read_your_writes")
    @aio
    async def test_save_after_pop_takes_the_next_index_after_the_highest_left(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """The popped message's index is given again by the next save."""
        c = fresh_ids.conv()
        async with _popper(storage_factory) as s:
            await s.save_chat_messages(*c, [msg("user", "a", 1), msg("assistant", "b", 2),
                                            msg("user", "c", 3)])
            popped = await s.pop_message(*c)
            assert popped is not None
            assert popped.index == 2
            history = await s.save_chat_message(*c, msg("user", "d", 4))
            assert summary(history) == [(0, "user", "a"), (1, "assistant", "b"), (2, "user", "d")]
            while await s.pop_message(*c) is not None:
                pass
            stored = await s.append_messages(*c, [msg("assistant", "e", 5)])
            assert [m.index for m in stored] == [0], "an emptied conversation starts at 0"

    @requires("read_your_writes")
    @aio
    async def test_pop_and_the_role_rule(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """After a pop the role rule compares with the new last message."""
        c = fresh_ids.conv()
        async with _popper(storage_factory) as s:
            await s.save_chat_messages(*c, [msg("user", "q", 1), msg("assistant", "a", 2)])
            await s.pop_message(*c)
            history = await s.save_chat_message(*c, msg("assistant", "again", 3))
            assert summary(history) == [(0, "user", "q"), (1, "assistant", "again")]
            history = await s.save_chat_message(*c, msg("assistant", "same role", 4))
            assert summary(history) == [(0, "user", "q"), (1, "assistant", "again")]

    @requires("read_your_writes")
    @aio
    async def test_pop_touches_only_its_conversation(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        others = [
            c._replace(agent_id=fresh_ids("agent2")),
            c._replace(session_id=fresh_ids("session2")),
            c._replace(user_id=fresh_ids("user2")),
        ]
        async with _popper(storage_factory) as s:
            for conv in [c, *others]:
                await s.save_chat_messages(*conv, [msg("user", "x", 1), msg("assistant", "y", 2)])
            before = [summary(await s.fetch_chat(*conv)) for conv in others]
            sessions = await s.list_sessions(others[2].user_id)
            popped = await s.pop_message(*c)
            assert popped is not None
            assert popped.agent_id == c.agent_id
            assert summary(await s.fetch_chat(*c)) == [(0, "user", "x")]
            assert [summary(await s.fetch_chat(*conv)) for conv in others] == before
            assert await s.list_sessions(others[2].user_id) == sessions

    @requires("read_your_writes")
    @aio
    async def test_concurrent_pops_return_each_message_once(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with _popper(storage_factory, skip_consecutive_roles=False) as s:
            await s.save_chat_messages(*c, [_numbered(i) for i in range(POPPED)])
            stored = await s.fetch_chat(*c)
            results = await asyncio.gather(
                *(s.pop_message(*c) for _ in range(POPPED + EXTRA_POPS)))
            popped = [None if m is None else (m.index, texts([m])[0]) for m in results]
            _check_popped_once(popped, stored)
            assert await s.fetch_chat(*c) == [], "the conversation is not empty after the pops"

    @requires("read_your_writes")
    @aio
    async def test_pops_racing_saves_lose_and_repeat_nothing(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """Every saved message is either popped exactly once or still stored."""
        c = fresh_ids.conv()
        writers, per_writer, poppers = 4, 15, 4
        async with _popper(storage_factory, skip_consecutive_roles=False) as s:

            async def writer(n: int) -> list[str]:
                for i in range(per_writer):
                    await s.append_messages(*c, [msg("user", f"w{n}:{i}")])
                return []

            async def popper() -> list[str]:
                out: list[str] = []
                for _ in range(per_writer):
                    m = await s.pop_message(*c)
                    if m is not None:
                        out += texts([m])
                return out

            results = await asyncio.gather(
                *(writer(n) for n in range(writers)), *(popper() for _ in range(poppers)))
            left = await s.fetch_chat(*c)
        popped = [t for r in results for t in r]
        everything = Counter(popped + texts(left))
        saved = {f"w{n}:{i}" for n in range(writers) for i in range(per_writer)}
        assert set(everything) == saved, "messages were lost (or invented)"
        twice = [t for t, k in everything.items() if k > 1]
        assert not twice, f"messages popped twice or popped and still stored: {twice[:5]}"
        indexes = [m.index for m in left]
        assert indexes == sorted(set(indexes)), "the stored indexes are not increasing"

    @requires("shared_across_processes", "read_your_writes")
    @aio
    async def test_concurrent_processes_pop(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with _popper(storage_factory, skip_consecutive_roles=False) as s:
            await s.save_chat_messages(*c, [_numbered(i) for i in range(POPPED)])
            stored = await s.fetch_chat(*c)
        per_process = -(-(POPPED + EXTRA_POPS) // PROCESSES)
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        timeout = storage_factory.timeout
        with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
            futures = [
                loop.run_in_executor(
                    pool, pop_in_process, storage_factory.url, storage_factory.options,
                    (c.user_id, c.session_id, c.agent_id), per_process, timeout)
                for _ in range(PROCESSES)
            ]
            reported = await asyncio.wait_for(asyncio.gather(*futures), timeout * 2)
        _check_popped_once([p for r in reported for p in r], stored)
        async with storage_factory.open() as s:
            assert await s.fetch_chat(*c) == []

"""Exactly-once writes: a write repeated with its ``request_id`` is not stored again.

A backend declaring ``Capabilities.exactly_once`` records each write's request
id in the write's transaction. The core repeats a write whose failure was
ambiguous with the same id, and a caller may do the same after a crash: the
repeat must store nothing and return what the first call stored. These tests
repeat calls the way a caller does; the core's own retries on top of them
are tested with failures injected into the in-memory backend (the project's
``tests/test_storage.py``) and under real outages by its fault suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import pytest

from storage_core import (
    REQUESTS_REMEMBERED,
    ConfigurationError,
    StoredMessage,
    ValidationError,
)

from ._support import Conversation, FreshIds, StorageFactory, TimedStorage, msg, requires, summary

__all__ = ["RequestIdTests"]

aio = pytest.mark.asyncio

Call = Callable[[TimedStorage, Conversation, str], Awaitable[list[StoredMessage]]]


def _pair(n: int) -> list[dict[str, Any]]:
    return [msg("user", f"q{n}", 1000 + 2 * n), msg("assistant", f"a{n}", 1001 + 2 * n)]


async def _save_one(s: TimedStorage, conv: Conversation, rid: str) -> list[StoredMessage]:
    return await s._t(s.raw.save_chat_message(*conv, msg("user", "one", 5000), request_id=rid))


async def _save_many(s: TimedStorage, conv: Conversation, rid: str) -> list[StoredMessage]:
    return await s._t(s.raw.save_chat_messages(*conv, _pair(9), request_id=rid))


async def _save_trimmed(s: TimedStorage, conv: Conversation, rid: str) -> list[StoredMessage]:
    return await s._t(s.raw.save_chat_messages(*conv, _pair(9), 3, request_id=rid))


async def _append(s: TimedStorage, conv: Conversation, rid: str) -> list[StoredMessage]:
    return await s._t(s.raw.append_messages(*conv, _pair(9), request_id=rid))


async def _append_one(s: TimedStorage, conv: Conversation, rid: str) -> list[StoredMessage]:
    return await s._t(s.raw.append_messages(*conv, [msg("user", "one", 5000)], request_id=rid))


CALLS: dict[str, Call] = {
    "save_chat_message": _save_one,
    "save_chat_messages": _save_many,
    "save_chat_messages-trimmed": _save_trimmed,
    "append_messages": _append,
    "append_messages-one": _append_one,
}

BAD_REQUEST_IDS: dict[str, object] = {
    "empty": "",
    "int": 7,
    "bytes": b"r1",
    "lone-surrogate": "r\ud800",
    "too-long": "r" * 801,
}


async def _seed(s: TimedStorage, conv: Conversation) -> None:
    """Two earlier pairs, ending with an assistant message."""
    await s.save_chat_messages(*conv, _pair(0) + _pair(1))


def _another(factory: StorageFactory, storage: TimedStorage) -> AbstractAsyncContextManager[
    TimedStorage
]:
    """A second storage on the same database, or ``storage`` itself where a
    storage's data does not outlive it (``memory://``)."""
    if storage.capabilities.persistent:
        return factory.open()
    return nullcontext(storage)


def _full(messages: list[StoredMessage]) -> list[tuple[Any, ...]]:
    return [(m.index, m.role, m.content, m.timestamp) for m in messages]


class RequestIdTests:
    """The contract of ``request_id`` (backends declaring ``exactly_once``)."""

    @aio
    async def test_request_ids_are_refused_without_exactly_once(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        async with storage_factory.open() as s:
            if s.capabilities.exactly_once:
                return  # the rest of this class tests such a backend
            conv = fresh_ids.conv()
            with pytest.raises(ConfigurationError, match="request_id"):
                await _save_one(s, conv, "r1")
            assert await s.fetch_chat(*conv) == []

    @aio
    @requires("exactly_once", "read_your_writes")
    @pytest.mark.parametrize("call", list(CALLS))
    async def test_a_repeated_request_is_not_stored_again(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds, call: str
    ) -> None:
        conv = fresh_ids.conv()
        async with storage_factory.open() as s:
            await _seed(s, conv)
            first = await CALLS[call](s, conv, fresh_ids("request"))
            after_first = await s.fetch_chat(*conv)
            # A new storage where the data outlives one, as after a crash:
            # only the database remembers.
            async with _another(storage_factory, s) as t:
                again = await CALLS[call](t, conv, fresh_ids("request"))
                assert _full(again) == _full(first)
                assert _full(await t.fetch_chat(*conv)) == _full(after_first)

    @aio
    @requires("exactly_once", "read_your_writes")
    @pytest.mark.parametrize("limit", [None, 3])
    async def test_a_repeated_save_returns_the_history_it_left(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds, limit: int | None
    ) -> None:
        """Repeated after later writes, a save returns the conversation as the
        first call left it (up to its own last message), not as it is now."""
        conv = fresh_ids.conv()
        async with storage_factory.open() as s:
            await _seed(s, conv)
            first = await s._t(s.raw.save_chat_messages(*conv, _pair(5), limit, request_id="r"))
            await s.save_chat_messages(*conv, _pair(6))
            again = await s._t(s.raw.save_chat_messages(*conv, _pair(5), limit, request_id="r"))
            assert _full(again) == _full(first)
            assert [m.index for m in again][-2:] == [4, 5]
            assert len(await s.fetch_chat(*conv)) == (8 if limit is None else limit + 2)

    @aio
    @requires("exactly_once", "read_your_writes")
    async def test_a_repeated_pop_pops_nothing_more(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        conv = fresh_ids.conv()
        async with storage_factory.open() as s:
            await _seed(s, conv)
            first = await s._t(s.raw.pop_message(*conv, request_id=fresh_ids("pop")))
            again = await s._t(s.raw.pop_message(*conv, request_id=fresh_ids("pop")))
            assert first is not None
            assert again is not None
            assert _full([again]) == _full([first])
            assert first.index == 3
            assert [m.index for m in await s.fetch_chat(*conv)] == [0, 1, 2]
            other = await s._t(s.raw.pop_message(*conv, request_id=fresh_ids("pop2")))
            assert other is not None
            assert other.index == 2

    @aio
    @requires("exactly_once", "read_your_writes")
    async def test_request_ids_belong_to_one_conversation(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        one, two = fresh_ids.conv(agent="one"), fresh_ids.conv(agent="two")
        rid = fresh_ids("shared")
        async with storage_factory.open() as s:
            await _append(s, one, rid)
            stored = await _append(s, two, rid)
            assert [m.index for m in stored] == [0, 1]
            assert summary(await s.fetch_chat(*two)) == [(0, "user", "q9"), (1, "assistant", "a9")]

    @aio
    @requires("exactly_once", "read_your_writes")
    async def test_a_request_id_of_another_kind_of_call_is_refused(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        conv = fresh_ids.conv()
        async with storage_factory.open() as s:
            await _seed(s, conv)
            await _append_one(s, conv, "was-an-append")
            await s._t(s.raw.pop_message(*conv, request_id="was-a-pop"))
            before = _full(await s.fetch_chat(*conv))
            with pytest.raises(ValidationError, match="request_id"):
                await s._t(s.raw.pop_message(*conv, request_id="was-an-append"))
            with pytest.raises(ValidationError, match="request_id"):
                await _append_one(s, conv, "was-a-pop")
            assert _full(await s.fetch_chat(*conv)) == before

    @aio
    @requires("exactly_once", "read_your_writes")
    async def test_requests_are_remembered_across_later_writes(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """At least the newest ``REQUESTS_REMEMBERED`` writes of a conversation
        are recognised (the documented bound)."""
        conv = fresh_ids.conv()
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            first = await _append_one(s, conv, "oldest")
            for n in range(REQUESTS_REMEMBERED - 1):
                await s.append_messages(*conv, [msg("user", f"later{n}", 6000 + n)])
            again = await _append_one(s, conv, "oldest")
            assert _full(again) == _full(first)
            assert len(await s.fetch_chat(*conv)) == REQUESTS_REMEMBERED

    @aio
    @requires("exactly_once", "read_your_writes")
    async def test_concurrent_repeats_store_once(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        conv = fresh_ids.conv()
        async with storage_factory.open() as s1, _another(storage_factory, s1) as s2:
            await _seed(s1, conv)
            results = await asyncio.gather(
                *(_save_many(s, conv, "same") for s in (s1, s2, s1, s2, s1, s2))
            )
            assert all(_full(r) == _full(results[0]) for r in results)
            assert [m.index for m in await s1.fetch_chat(*conv)] == [0, 1, 2, 3, 4, 5]

    @aio
    @requires("exactly_once", "read_your_writes")
    async def test_deleting_a_conversation_forgets_its_requests(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        conv = fresh_ids.conv()
        async with storage_factory.open() as s:
            await _append(s, conv, "before-delete")
            assert await s.delete_conversation(*conv) == 2
            again = await _append(s, conv, "before-delete")
            assert [m.index for m in again] == [0, 1]
            assert len(await s.fetch_chat(*conv)) == 2

    @aio
    @requires("read_your_writes")
    @pytest.mark.parametrize("bad", list(BAD_REQUEST_IDS))
    async def test_bad_request_ids_are_refused(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds, bad: str
    ) -> None:
        conv = fresh_ids.conv()
        value = BAD_REQUEST_IDS[bad]
        async with storage_factory.open() as s:
            await _seed(s, conv)
            before = _full(await s.fetch_chat(*conv))
            for call in (_save_one, _append, _save_trimmed):
                with pytest.raises(ValidationError, match="request_id"):
                    await call(s, conv, value)  # type: ignore[arg-type]
            with pytest.raises(ValidationError, match="request_id"):
                await s._t(s.raw.pop_message(*conv, request_id=value))  # type: ignore[arg-type]
            assert _full(await s.fetch_chat(*conv)) == before

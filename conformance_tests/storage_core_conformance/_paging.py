"""Pagination: ``list_sessions(limit=, before=)`` and ``fetch_chat(before_index=)``.

Paged reads are optional for a backend (``storage_core.SupportsPaging``);
without them the core pages in Python, and these tests hold all the same.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from storage_core import Capabilities, SessionInfo, StoredMessage, ValidationError

from ._bad_input import _Snapshot
from ._support import Conversation, FreshIds, StorageFactory, TimedStorage, msg, requires

__all__ = ["PagingTests"]

aio = pytest.mark.asyncio

# Session ids whose order differs between code points (the contract's order)
# and a natural-language collation (case and punctuation ignored first).
TIE_NAMES = ("B", "a", "a-c", "ab", "Ab", "a_b", "b", "A.b", "z", "Z9")
LIMITS = (1, 2, 3, 7, 10, 100)


async def _page(
    s: TimedStorage, user_id: Any, limit: Any = None, before: Any = None
) -> list[SessionInfo]:
    return await s._t(s.raw.list_sessions(user_id, limit=limit, before=before))


async def _window(
    s: TimedStorage, conv: Conversation, size: Any = None, before_index: Any = None
) -> list[StoredMessage]:
    return await s._t(s.raw.fetch_chat(*conv, size, before_index=before_index))


def _info(session_id: Any, last_timestamp: Any) -> SessionInfo:
    """A cursor with any field values, good or bad."""
    return SessionInfo(session_id, (), 1, last_timestamp)


def _order(session: SessionInfo) -> tuple[int, str]:
    return (-session.last_timestamp, session.session_id)


async def _all_pages(s: TimedStorage, user_id: str, limit: int) -> list[list[SessionInfo]]:
    """Every page of ``limit`` sessions, each cursor the last of the page before,
    until a short page (at most one page more than the sessions could fill)."""
    pages: list[list[SessionInfo]] = []
    before: SessionInfo | None = None
    while True:
        page = await _page(s, user_id, limit, before)
        pages.append(page)
        assert len(page) <= limit, f"a page of limit {limit} holds {len(page)} sessions"
        if len(page) < limit:
            return pages
        before = page[-1]
        assert len(pages) < 1000, "paging never ends"


async def _seed_sessions(
    s: TimedStorage, fresh_ids: FreshIds, user: str
) -> dict[str, tuple[int, int]]:
    """Sessions of ``user`` with many ties of last activity, some with two
    agents: session id -> (message count, last timestamp) as saved."""
    rng = random.Random(1313)
    seeded: dict[str, tuple[int, int]] = {}
    names = [fresh_ids(n) for n in TIE_NAMES] + [fresh_ids(f"s{i:02d}") for i in range(14)]
    for n, session in enumerate(names):
        last = 1000 + 10 * rng.randrange(4)  # four distinct times: ties galore
        count = 1 + n % 3
        first = [msg("user" if i % 2 == 0 else "assistant", f"{session}:{i}", last - count + i + 1)
                 for i in range(count)]
        await s.save_chat_messages(user, session, "agent", first)
        total = count
        if n % 4 == 0:
            # A second agent whose newest message is older: the last activity stays.
            await s.save_chat_messages(user, session, "helper", [msg("user", "h", last - 5)])
            total += 1
        seeded[session] = (total, last)
    return seeded


class PagingTests:
    """Pages of sessions and windows of a conversation, as the contract says."""

    @requires("read_your_writes")
    @aio
    async def test_session_pages_concatenate_to_the_full_listing(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user, other = fresh_ids("user"), fresh_ids("other-user")
        async with storage_factory.open() as s:
            seeded = await _seed_sessions(s, fresh_ids, user)
            # Another user's sessions interleave in time and must never show.
            await s.save_chat_messages(other, fresh_ids("a"), "agent", [msg("user", "x", 1010)])
            full = await s.list_sessions(user)
            assert [x.session_id for x in full] == sorted(seeded, key=lambda k: (
                -seeded[k][1], k)), "list_sessions is not newest first, then by session id"
            assert {x.session_id: (x.message_count, x.last_timestamp) for x in full} == seeded
            assert await _page(s, user) == full, "no limit and no cursor is the full listing"
            for limit in LIMITS:
                pages = await _all_pages(s, user, limit)
                flat = [x for page in pages for x in page]
                ids = [x.session_id for x in flat]
                twice = sorted({i for i in ids if ids.count(i) > 1})
                assert not twice, f"limit {limit}: sessions on two pages: {twice}"
                assert flat == full, f"limit {limit}: the pages do not add up to the listing"
                assert all(len(page) == limit for page in pages[:-1])
                assert len(pages) == len(full) // limit + 1

    @requires("read_your_writes")
    @aio
    async def test_session_cursor_is_a_position_in_the_order(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """``before`` is a position, not a stored session: any SessionInfo works,
        and only its session_id and last_timestamp count."""
        user = fresh_ids("user")
        async with storage_factory.open() as s:
            await _seed_sessions(s, fresh_ids, user)
            full = await s.list_sessions(user)
            middle = full[len(full) // 2]
            after_middle = full[len(full) // 2 + 1:]
            assert await _page(s, user, None, middle) == after_middle
            assert await _page(s, user, 3, middle) == after_middle[:3]
            # The same position with other agents and counts, as a caller may build it.
            made = SessionInfo(middle.session_id, (), 0, middle.last_timestamp)
            assert await _page(s, user, None, made) == after_middle
            assert await _page(s, user, 5, full[-1]) == [], "nothing is after the last"
            # Positions between stored sessions, and beyond either end.
            for stamp in (999, 1000, 1005, 1010, 1030, 1031, 10**15, 0, -1):
                for sid in ("", "A", "a", "zzzz", middle.session_id):
                    cursor = SessionInfo(sid, ("x",), 1, stamp)
                    want = [x for x in full if _order(x) > _order(cursor)]
                    got = await _page(s, user, None, cursor)
                    assert got == want, f"sessions after ({stamp}, {sid!r})"
                    assert await _page(s, user, 2, cursor) == want[:2]
            gone = fresh_ids("no-such-user")
            assert await _page(s, gone, 10) == []
            assert await _page(s, gone, 10, middle) == []

    @requires("read_your_writes")
    @aio
    async def test_session_pages_see_deletes_and_new_activity(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """The cursor is live: a page reads the sessions as they are then."""
        user = fresh_ids("user")
        names = [fresh_ids(f"s{i}") for i in range(6)]
        async with storage_factory.open() as s:
            for i, session in enumerate(names):
                await s.save_chat_message(user, session, "agent", msg("user", "x", 100 - i))
            first = await _page(s, user, 2)
            assert [x.session_id for x in first] == names[:2]
            await s.delete_session(user, names[2])  # next on the list: gone
            await s.save_chat_message(user, names[5], "agent", msg("assistant", "y", 500))
            second = await _page(s, user, 2, first[-1])
            # names[5] moved to the front, before the cursor: no later page shows it.
            assert [x.session_id for x in second] == names[3:5]
            assert await _page(s, user, 2, second[-1]) == []
            assert [x.session_id for x in await _page(s, user, 1)] == [names[5]]

    @requires("read_your_writes")
    @aio
    async def test_fetch_before_index_windows(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        neighbour = c._replace(agent_id=fresh_ids("other-agent"))
        async with storage_factory.open() as s:
            await s.save_chat_messages(*c, [
                msg("user" if i % 2 == 0 else "assistant", f"m{i}", 100 + i) for i in range(12)
            ])
            await s.save_chat_messages(
                *neighbour, [msg("user", "n0", 1), msg("assistant", "n1", 2)])
            everything = await s.fetch_chat(*c)
            assert [m.index for m in everything] == list(range(12))
            for before in (0, 1, 2, 5, 11, 12, 13, 1000, 2**31 - 1, 2**31, 2**63, 10**30):
                below = [m for m in everything if m.index < before]
                assert await _window(s, c, None, before) == below, f"before_index={before}"
                for size in (1, 3, 12, 50):
                    assert await _window(s, c, size, before) == below[-size:], (
                        f"before_index={before}, max_history_size={size}")
            assert await _window(s, c, 4, None) == everything[-4:]
            # Scrolling back a window at a time meets every message once.
            seen: list[StoredMessage] = []
            window = await s.fetch_chat(*c, 5)
            while window:
                seen[:0] = window
                window = await _window(s, c, 5, window[0].index)
            assert seen == everything
            assert await _window(s, neighbour, None, 1) == (await s.fetch_chat(*neighbour))[:1]
            empty = fresh_ids.conv(agent="empty")
            assert await _window(s, empty, 3, 10) == []

    @requires("read_your_writes")
    @aio
    async def test_fetch_before_index_after_a_trim(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """Indexes no longer start at 0 once old messages are trimmed."""
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            for i in range(10):
                await s.save_chat_message(
                    *c, msg("user" if i % 2 == 0 else "assistant", f"m{i}", 10 + i), 6)
            kept = await s.fetch_chat(*c)
            assert [m.index for m in kept] == [4, 5, 6, 7, 8, 9]
            assert await _window(s, c, 5, 6) == kept[:2]
            assert await _window(s, c, None, 4) == []
            assert await _window(s, c, 2, 3) == []
            assert await _window(s, c, 2, 9) == kept[3:5]

    @requires("read_your_writes")
    @aio
    async def test_fetch_before_index_with_trim_pairs(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """The window is counted as without ``before_index``: whole pairs."""
        c = fresh_ids.conv()
        async with storage_factory.open(trim="pairs") as s:
            await s.save_chat_messages(*c, [
                msg("user" if i % 2 == 0 else "assistant", f"m{i}", 100 + i) for i in range(10)
            ])
            everything = await s.fetch_chat(*c)
            assert [m.index for m in await _window(s, c, 3, 8)] == [6, 7]
            assert [m.index for m in await _window(s, c, 4, 8)] == [4, 5, 6, 7]
            assert [m.index for m in await _window(s, c, 5, 7)] == [3, 4, 5, 6]
            assert await _window(s, c, 2, 0) == []
            assert await _window(s, c, None, 10) == everything
            with pytest.raises(ValidationError, match="max_history_size"):
                await _window(s, c, 1, 5)

    @pytest.mark.parametrize(("name", "value", "words"), [
        pytest.param("limit", 0, ("limit", "at least 1"), id="limit-zero"),
        pytest.param("limit", -1, ("limit",), id="limit-negative"),
        pytest.param("limit", True, ("limit", "bool"), id="limit-true"),
        pytest.param("limit", False, ("limit", "bool"), id="limit-false"),
        pytest.param("limit", "5", ("limit", "str"), id="limit-str"),
        pytest.param("limit", 2.0, ("limit", "float"), id="limit-float"),
        pytest.param("limit", 2**31, ("limit", "2147483647"), id="limit-2**31"),
        pytest.param("before", "session-id", ("before", "sessioninfo"), id="before-str"),
        pytest.param("before", 5, ("before", "sessioninfo"), id="before-int"),
        pytest.param("before", ("s", (), 1, 5), ("before", "sessioninfo"), id="before-tuple"),
        pytest.param("before", {"session_id": "s", "last_timestamp": 5}, ("before",),
                     id="before-dict"),
        pytest.param("before", _info(None, 5), ("before.session_id",),
                     id="before-session-none"),
        pytest.param("before", _info("a\x00b", 5), ("before.session_id", "nul"),
                     id="before-session-nul"),
        pytest.param("before", _info("\ud800", 5), ("before.session_id",),
                     id="before-session-surrogate"),
        pytest.param("before", _info("s", "5"), ("before.last_timestamp",),
                     id="before-timestamp-str"),
        pytest.param("before", _info("s", True), ("before.last_timestamp",),
                     id="before-timestamp-bool"),
        pytest.param("before", _info("s", 2**63), ("before.last_timestamp",),
                     id="before-timestamp-2**63"),
        pytest.param("before", _info("s", 1.5), ("before.last_timestamp",),
                     id="before-timestamp-float"),
        pytest.param("before_index", -1, ("before_index", "at least 0"), id="index-negative"),
        pytest.param("before_index", -(2**63), ("before_index",), id="index-very-negative"),
        pytest.param("before_index", True, ("before_index", "bool"), id="index-true"),
        pytest.param("before_index", False, ("before_index", "bool"), id="index-false"),
        pytest.param("before_index", "3", ("before_index", "str"), id="index-str"),
        pytest.param("before_index", 3.0, ("before_index", "float"), id="index-float"),
    ])
    @aio
    async def test_bad_paging_input_rejected(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities, name: str, value: Any, words: tuple[str, ...],
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_messages(*c, [msg("user", "seed", 1), msg("assistant", "a", 2)])
            calls: dict[str, Callable[[], Awaitable[object]]]
            if name == "before_index":
                calls = {
                    "fetch_chat": lambda: _window(s, c, None, value),
                    "fetch_chat with max_history_size": lambda: _window(s, c, 5, value),
                }
            else:
                kwargs = {name: value}
                calls = {
                    "list_sessions": lambda: s._t(s.raw.list_sessions(c.user_id, **kwargs)),
                    "list_sessions with the other parameter": lambda: s._t(s.raw.list_sessions(
                        c.user_id, **kwargs,
                        **({"before": None} if name == "limit" else {"limit": 5}))),
                }
            # Read back only where reads see the writes: on a lagging replica a
            # later read may see an older state than the first did.
            check = (_Snapshot(s, c, backend_capabilities)
                     if backend_capabilities.read_your_writes else contextlib.nullcontext())
            async with check:
                for what, call in calls.items():
                    with pytest.raises(ValidationError) as info:
                        await call()
                    text = str(info.value).lower()
                    missing = [w for w in words if w not in text]
                    assert not missing, f"{what}: {str(info.value)!r} does not mention {missing}"

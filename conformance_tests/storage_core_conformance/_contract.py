"""The rules of DESIGN.md, case by case."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from storage_core import ClosedError, ConfigurationError, Message, SessionInfo, ValidationError
from storage_core.backend import SupportsDeleteConversation

from ._support import FreshIds, StorageFactory, msg, requires, summary, texts

__all__ = ["ContractTests"]

aio = pytest.mark.asyncio

SQL_LOOKING = [
    "'; DROP TABLE conversations; --",
    'x" OR "1"="1',
    "Robert'); DELETE FROM conversations WHERE ('1'='1",
    "%s %d ? ?1 :name $1 \\' \\\\",
    "/* comment */ SELECT * FROM conversations",
    "100% _wild_ [a-z]*",
]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Attrs:
    """A message as an object with ``.role``/``.content`` (like agent-squad's)."""

    role: str
    content: Any


@dataclass
class _AttrsWithTimestamp:
    role: str
    content: Any
    timestamp: int


class ContractTests:
    """Each rule of the contract on its own."""

    # -- the consecutive-role rule ---------------------------------------

    @aio
    async def test_consecutive_role_single_saves(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            h = await s.save_chat_message(*c, msg("user", "a", 1))
            assert summary(h) == [(0, "user", "a")]
            h = await s.save_chat_message(*c, msg("user", "b", 2))
            assert summary(h) == [(0, "user", "a")], "a second user message must be dropped"
            h = await s.save_chat_message(*c, msg("assistant", "c", 3))
            h = await s.save_chat_message(*c, msg("assistant", "d", 4))
            assert summary(h) == [(0, "user", "a"), (1, "assistant", "c")]
            h = await s.save_chat_message(*c, msg("user", "e", 5))
            assert summary(h) == [(0, "user", "a"), (1, "assistant", "c"), (2, "user", "e")]

    @aio
    async def test_consecutive_role_within_batch(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        batch = [msg("user", "a", 1), msg("user", "b", 2), msg("assistant", "c", 3),
                 msg("assistant", "d", 4), msg("assistant", "e", 5), msg("user", "f", 6)]
        async with storage_factory.open() as s:
            h = await s.save_chat_messages(*c, batch)
            assert summary(h) == [(0, "user", "a"), (1, "assistant", "c"), (2, "user", "f")]

    @aio
    async def test_consecutive_role_across_batch_boundary(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_messages(*c, [msg("user", "a", 1), msg("assistant", "b", 2)])
            h = await s.save_chat_messages(*c, [msg("assistant", "c", 3), msg("user", "d", 4)])
            assert summary(h) == [(0, "user", "a"), (1, "assistant", "b"), (2, "user", "d")]
            h = await s.save_chat_messages(*c, [msg("user", "e", 5), msg("user", "f", 6)])
            assert summary(h)[-1] == (2, "user", "d"), (
                "a batch of only the last role stores nothing")
            stored = await s.append_messages(*c, [msg("user", "g", 7), msg("assistant", "h", 8)])
            assert summary(stored) == [(3, "assistant", "h")]

    @aio
    async def test_consecutive_roles_kept_when_rule_off(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            await s.save_chat_message(*c, msg("user", "a", 1))
            h = await s.save_chat_message(*c, msg("user", "b", 2))
            assert summary(h) == [(0, "user", "a"), (1, "user", "b")]
            h = await s.save_chat_messages(*c, [msg("user", "c", 3), msg("user", "d", 4)])
            assert summary(h)[2:] == [(2, "user", "c"), (3, "user", "d")]
            stored = await s.append_messages(*c, [msg("user", "e", 5)])
            assert summary(stored) == [(4, "user", "e")]

    @aio
    async def test_append_messages_returns_only_stored(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*c, msg("user", "a", 1))
            batch = [msg("user", "dropped", 2), msg("assistant", "b"), msg("assistant", "x"),
                     msg("user", "c", 5)]
            before = _now_ms()
            stored = await s.append_messages(*c, batch)
            after = _now_ms()
            assert summary(stored) == [(1, "assistant", "b"), (2, "user", "c")]
            assert stored[1].timestamp == 5
            assert before <= stored[0].timestamp <= after + 3
            assert all(m.agent_id == c.agent_id for m in stored)
            assert await s.append_messages(*c, [msg("user", "dropped again", 6)]) == []
            assert await s.append_messages(*c, []) == []

    # -- message_index ---------------------------------------------------

    @aio
    async def test_index_from_zero_without_gaps(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        other = c._replace(agent_id=fresh_ids("other-agent"))
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            for i in range(5):
                h = await s.save_chat_message(*c, msg("user", str(i), i))
                assert [m.index for m in h] == list(range(i + 1))
            h = await s.save_chat_messages(*c, [msg("user", str(i), i) for i in range(5, 9)])
            assert [m.index for m in h] == list(range(9))
            h = await s.save_chat_message(*other, msg("user", "o", 1))
            assert [m.index for m in h] == [0], "each conversation numbers from 0"

    @aio
    async def test_index_never_reused_after_trim(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            for i in range(5):
                h = await s.save_chat_message(*c, msg("user", str(i), i), max_history_size=2)
            assert summary(h) == [(3, "user", "3"), (4, "user", "4")]
            h = await s.save_chat_message(*c, msg("user", "5", 5), max_history_size=1)
            assert summary(h) == [(5, "user", "5")]
            h = await s.save_chat_message(*c, msg("user", "6", 6))
            assert summary(h) == [(5, "user", "5"), (6, "user", "6")]
            stored = await s.append_messages(*c, [msg("user", "7", 7)], max_history_size=1)
            assert summary(stored) == [(7, "user", "7")]
            h = await s.save_chat_messages(*c, [msg("user", "8", 8), msg("user", "9", 9)])
            assert [m.index for m in h] == [7, 8, 9]

    # -- trimming ----------------------------------------------------------

    @aio
    async def test_save_trims_to_newest_n(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            for i in range(6):
                role = "user" if i % 2 == 0 else "assistant"
                h = await s.save_chat_message(*c, msg(role, str(i), i), max_history_size=3)
                assert [m.index for m in h] == list(range(max(0, i - 2), i + 1))
            h = await s.save_chat_messages(
                *c, [msg("user", "6", 6), msg("assistant", "7", 7)], max_history_size=4
            )
            assert [m.index for m in h] == [4, 5, 6, 7]

    @requires("read_your_writes")
    @aio
    async def test_trim_deletes_older_rows(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            for i in range(6):
                await s.save_chat_message(*c, msg("user", str(i), i), max_history_size=3)
            everything = await s.fetch_chat(*c)
            assert summary(everything) == [(3, "user", "3"), (4, "user", "4"), (5, "user", "5")]
            await s.save_chat_messages(*c, [msg("user", str(i), i) for i in range(6, 11)],
                                       max_history_size=2)
            assert [m.index for m in await s.fetch_chat(*c)] == [9, 10]
            stored = await s.append_messages(*c, [msg("user", "11", 11), msg("user", "12", 12)],
                                             max_history_size=1)
            assert [m.index for m in stored] == [11, 12]
            assert summary(await s.fetch_chat(*c)) == [(12, "user", "12")]

    @requires("read_your_writes")
    @aio
    async def test_trim_pairs_keeps_even_count(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open(trim="pairs") as s:
            for i in range(7):
                role = "user" if i % 2 == 0 else "assistant"
                h = await s.save_chat_message(*c, msg(role, str(i), i), max_history_size=5)
            assert [m.index for m in h] == [3, 4, 5, 6], "N=5 with pairs keeps 4"
            assert [m.index for m in await s.fetch_chat(*c)] == [3, 4, 5, 6]
            assert [m.index for m in await s.fetch_chat(*c, max_history_size=3)] == [5, 6]
            h = await s.save_chat_message(*c, msg("assistant", "7", 7), max_history_size=2)
            assert [m.index for m in h] == [6, 7]
            assert [m.index for m in await s.fetch_chat(*c)] == [6, 7]

    @requires("read_your_writes")
    @aio
    async def test_trim_pairs_with_one_is_validation_error(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open(trim="pairs") as s:
            await s.save_chat_message(*c, msg("user", "a", 1))
            with pytest.raises(ValidationError, match="max_history_size"):
                await s.save_chat_message(*c, msg("assistant", "b", 2), max_history_size=1)
            with pytest.raises(ValidationError, match="max_history_size"):
                await s.append_messages(*c, [msg("assistant", "b", 2)], max_history_size=1)
            with pytest.raises(ValidationError, match="max_history_size"):
                await s.fetch_chat(*c, max_history_size=1)
            assert summary(await s.fetch_chat(*c)) == [(0, "user", "a")]

    @requires("read_your_writes")
    @aio
    async def test_fetch_limit_only_limits(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            await s.save_chat_messages(*c, [msg("user", str(i), i) for i in range(5)])
            assert [m.index for m in await s.fetch_chat(*c, max_history_size=2)] == [3, 4]
            assert [m.index for m in await s.fetch_chat(*c, max_history_size=9)] == list(range(5))
            assert [m.index for m in await s.fetch_chat(*c)] == list(range(5))
            assert await s.fetch_chat(*fresh_ids.conv(agent="nobody")) == []

    @requires("read_your_writes")
    @pytest.mark.parametrize("trim", ["messages", "pairs"])
    @aio
    async def test_save_returns_what_fetch_returns(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds, trim: str
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open(trim=trim) as s:
            for i, size in enumerate([None, 4, 2, None, 3, 6, 2, None]):
                role = "user" if i % 2 == 0 else "assistant"
                h = await s.save_chat_message(*c, msg(role, str(i), 10 * i), size)
                assert h == await s.fetch_chat(*c, size), f"save {i}, max_history_size={size}"
                h = await s.save_chat_message(*c, msg(role, "dropped", 10 * i + 1), size)
                assert h == await s.fetch_chat(*c, size), "a dropped message returns it too"
            batch = [msg("user", "b1", 100), msg("assistant", "b2", 101)]
            for size in (None, 2, 3):
                h = await s.save_chat_messages(*c, batch, size)
                assert h == await s.fetch_chat(*c, size)
            h = await s.save_chat_messages(*c, [], 2)
            assert h == await s.fetch_chat(*c, 2), "an empty batch returns the conversation"

    # -- timestamps --------------------------------------------------------

    @aio
    async def test_given_timestamps_kept(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        given = [0, 1_700_000_000_123, 5, 2**53 + 1, 2**63 - 1, 42]
        batch = [msg("user" if i % 2 == 0 else "assistant", str(i), ts)
                 for i, ts in enumerate(given)]
        async with storage_factory.open() as s:
            h = await s.save_chat_messages(*c, batch)
            assert [m.timestamp for m in h] == given
            h = await s.save_chat_message(*c, msg("user", "x", 7))
            assert h[-1].timestamp == 7

    @aio
    async def test_auto_timestamps_are_clock_ms_increasing_in_batch(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            before = _now_ms()
            h = await s.save_chat_message(*c, msg("user", "a"))
            after = _now_ms()
            assert before <= h[0].timestamp <= after
            batch = [msg("assistant", "b"), msg("user", "c", 17), msg("assistant", "d"),
                     msg("user", "e")]
            before = _now_ms()
            h = await s.save_chat_messages(*c, batch)
            after = _now_ms()
            auto = [h[1].timestamp, h[3].timestamp, h[4].timestamp]
            assert h[2].timestamp == 17, "a given timestamp is kept among automatic ones"
            assert auto == sorted(set(auto)), f"not strictly increasing: {auto}"
            assert before <= auto[0]
            assert auto[-1] <= after + len(batch)

    # -- the session view --------------------------------------------------

    @requires("read_your_writes")
    @aio
    async def test_session_view_order(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user, session = fresh_ids("user"), fresh_ids("session")
        a, b = fresh_ids("a-agent"), fresh_ids("b-agent")
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            await s.save_chat_messages(user, session, b, [
                msg("user", "b0", 10), msg("user", "b1", 5), msg("user", "b2", 10)])
            await s.save_chat_messages(user, session, a, [
                msg("user", "a0", 10), msg("user", "a1", 30), msg("user", "a2", 1)])
            view = await s.fetch_all_chats(user, session)
        expected = [(1, a, 2), (5, b, 1), (10, a, 0), (10, b, 0), (10, b, 2), (30, a, 1)]
        assert [(m.timestamp, m.agent_id, m.index) for m in view] == expected
        assert texts(view) == ["a2", "b1", "a0", "b0", "b2", "a1"]

    @requires("read_your_writes")
    @aio
    async def test_session_view_prefixes_assistant_text(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user, session, agent = fresh_ids.conv()
        contents: list[tuple[str, Any, Any]] = [
            ("user", [{"text": "hi"}], [{"text": "hi"}]),
            ("assistant", [{"text": "one"}, {"image": {"format": "png"}}, {"text": "two"}],
             [{"text": f"[{agent}] one"}, {"image": {"format": "png"}}, {"text": "two"}]),
            ("user", "plain user text", "plain user text"),
            ("assistant", [{"toolUse": {"name": "t"}}, {"text": "after tool"}],
             [{"toolUse": {"name": "t"}}, {"text": f"[{agent}] after tool"}]),
            ("system", [{"text": "sys"}], [{"text": "sys"}]),
            ("assistant", "plain", f"[{agent}] plain"),
            ("tool", [{"text": "result"}], [{"text": "result"}]),
            ("assistant", [{"image": {"format": "png"}}], [{"image": {"format": "png"}}]),
        ]
        batch = [{"role": r, "content": given, "timestamp": i}
                 for i, (r, given, _) in enumerate(contents)]
        async with storage_factory.open() as s:
            await s.save_chat_messages(user, session, agent, batch)
            view = await s.fetch_all_chats(user, session)
            chat = await s.fetch_chat(user, session, agent)
        assert [m.content for m in view] == [want for _, _, want in contents]
        assert [m.content for m in chat] == [given for _, given, _ in contents], (
            "fetch_chat returns content unprefixed"
        )

    @requires("read_your_writes")
    @aio
    async def test_session_view_of_unknown_session_is_empty(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        async with storage_factory.open() as s:
            assert await s.fetch_all_chats(fresh_ids("user"), fresh_ids("session")) == []

    # -- message types -----------------------------------------------------

    @aio
    async def test_message_types_accepted(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        batch: list[Any] = [
            Message("user", [{"text": "a"}], 1),
            {"role": "assistant", "content": [{"text": "b"}], "timestamp": 2},
            _Attrs("user", [{"text": "c"}]),
            _AttrsWithTimestamp("assistant", [{"text": "d"}], 4),
        ]
        async with storage_factory.open() as s:
            h = await s.save_chat_messages(*c, batch)
            assert summary(h) == [(0, "user", "a"), (1, "assistant", "b"), (2, "user", "c"),
                                  (3, "assistant", "d")]
            assert [h[0].timestamp, h[1].timestamp, h[3].timestamp] == [1, 2, 4]
            h = await s.save_chat_message(*c, _Attrs("user", [{"text": "e"}]))
            assert summary(h)[-1] == (4, "user", "e")
            h = await s.save_chat_message(*c, Message("assistant", "f", 6))
            assert (h[-1].role, h[-1].content, h[-1].timestamp) == ("assistant", "f", 6)

    # -- sessions and deletion ---------------------------------------------

    @requires("read_your_writes")
    @aio
    async def test_list_sessions(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user = fresh_ids("user")
        s1, s2, s3 = fresh_ids("s1"), fresh_ids("s2"), fresh_ids("s3")
        b, a = fresh_ids("b"), fresh_ids("a")
        async with storage_factory.open() as s:
            assert await s.list_sessions(user) == []
            await s.save_chat_messages(
                user, s1, b, [msg("user", "x", 10), msg("assistant", "y", 30)])
            await s.save_chat_message(user, s1, a, msg("user", "z", 20))
            await s.save_chat_message(user, s2, a, msg("user", "w", 50))
            await s.save_chat_message(user, s3, a, msg("user", "v", 5))
            sessions = await s.list_sessions(user)
        assert sessions == [
            SessionInfo(s2, (a,), 1, 50),
            SessionInfo(s1, tuple(sorted((a, b))), 3, 30),
            SessionInfo(s3, (a,), 1, 5),
        ]

    @requires("read_your_writes")
    @aio
    async def test_delete_session(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user, s1, s2 = fresh_ids("user"), fresh_ids("s1"), fresh_ids("s2")
        a, b = fresh_ids("a"), fresh_ids("b")
        async with storage_factory.open() as s:
            await s.save_chat_messages(
                user, s1, a, [msg("user", "1", 1), msg("assistant", "2", 2)])
            await s.save_chat_message(user, s1, b, msg("user", "3", 3))
            await s.save_chat_message(user, s2, a, msg("user", "4", 4))
            assert await s.delete_session(user, s1) == 3
            assert await s.fetch_all_chats(user, s1) == []
            assert await s.fetch_chat(user, s1, a) == []
            assert texts(await s.fetch_chat(user, s2, a)) == ["4"]
            assert [x.session_id for x in await s.list_sessions(user)] == [s2]
            assert await s.delete_session(user, s1) == 0
            assert await s.delete_session(fresh_ids("nobody"), s2) == 0

    @requires("read_your_writes")
    @aio
    async def test_delete_conversation(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user, other = fresh_ids("user"), fresh_ids("other")
        s1, s2 = fresh_ids("s1"), fresh_ids("s2")
        a, b = fresh_ids("a"), fresh_ids("b")
        async with storage_factory.open() as s:
            if not isinstance(s.raw.backend, SupportsDeleteConversation):
                with pytest.raises(ConfigurationError, match="delete_conversation"):
                    await s.delete_conversation(user, s1, a)
                pytest.skip("backend implements no delete_conversation "
                            "(storage_core.SupportsDeleteConversation)")
            await s.save_chat_messages(
                user, s1, a, [msg("user", "1", 1), msg("assistant", "2", 2)])
            await s.save_chat_message(user, s1, b, msg("user", "3", 3))
            await s.save_chat_message(user, s2, a, msg("user", "4", 4))
            await s.save_chat_message(other, s1, a, msg("user", "5", 5))
            assert await s.delete_conversation(user, s1, a) == 2
            assert await s.fetch_chat(user, s1, a) == []
            assert texts(await s.fetch_chat(user, s1, b)) == ["3"]
            assert texts(await s.fetch_chat(user, s2, a)) == ["4"]
            assert texts(await s.fetch_chat(other, s1, a)) == ["5"]
            assert await s.list_sessions(user) == [
                SessionInfo(s2, (a,), 1, 4), SessionInfo(s1, (b,), 1, 3)]
            assert await s.delete_conversation(user, s1, a) == 0
            # The next save starts the emptied conversation afresh.
            saved = await s.save_chat_message(user, s1, a, msg("user", "6", 6))
            assert texts(saved) == ["6"]

    @requires("read_your_writes")
    @aio
    async def test_delete_user(self, storage_factory: StorageFactory, fresh_ids: FreshIds) -> None:
        user, s1, s2, a = fresh_ids("user"), fresh_ids("s1"), fresh_ids("s2"), fresh_ids("a")
        async with storage_factory.open() as s:
            await s.save_chat_messages(
                user, s1, a, [msg("user", "1", 1), msg("assistant", "2", 2)])
            await s.save_chat_message(user, s2, a, msg("user", "3", 3))
            assert await s.delete_user(user) == 3
            assert await s.list_sessions(user) == []
            assert await s.fetch_chat(user, s1, a) == []
            assert await s.delete_user(user) == 0

    # -- lifecycle ---------------------------------------------------------

    @aio
    async def test_initialize_is_idempotent(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        s = storage_factory.make()
        try:
            await s.initialize()
            await s.initialize()
            await s.save_chat_message(*c, msg("user", "a", 1))
            await s.initialize()
        finally:
            await s.close()
        others = [storage_factory.make() for _ in range(4)]
        try:
            await asyncio.gather(*(o.initialize() for o in others for _ in range(2)))
            for i, o in enumerate(others):
                h = await o.save_chat_message(
                    *fresh_ids.conv(agent=f"agent{i}"), msg("user", "b", 2))
                assert summary(h) == [(0, "user", "b")]
        finally:
            await asyncio.gather(*(o.close() for o in others))

    @aio
    async def test_first_call_initializes(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        s = storage_factory.make()
        try:
            h = await s.save_chat_message(*fresh_ids.conv(), msg("user", "a", 1))
            assert summary(h) == [(0, "user", "a")]
        finally:
            await s.close()

    @aio
    async def test_close_is_idempotent(self, storage_factory: StorageFactory) -> None:
        s = storage_factory.make()
        await s.initialize()
        await s.close()
        await s.close()
        never_opened = storage_factory.make()
        await never_opened.close()
        await never_opened.close()

    @aio
    async def test_use_after_close_raises_closed_error(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user, session, agent = fresh_ids.conv()
        s = storage_factory.make()
        await s.initialize()
        await s.save_chat_message(user, session, agent, msg("user", "a", 1))
        await s.close()
        m = msg("assistant", "b", 2)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "initialize": lambda: s.initialize(),
            "save_chat_message": lambda: s.save_chat_message(user, session, agent, m),
            "save_chat_messages": lambda: s.save_chat_messages(user, session, agent, [m]),
            "append_messages": lambda: s.append_messages(user, session, agent, [m]),
            "fetch_chat": lambda: s.fetch_chat(user, session, agent),
            "fetch_all_chats": lambda: s.fetch_all_chats(user, session),
            "list_sessions": lambda: s.list_sessions(user),
            "delete_session": lambda: s.delete_session(user, session),
            "delete_user": lambda: s.delete_user(user),
        }
        for name, call in calls.items():
            try:
                await call()
            except ClosedError:
                continue
            pytest.fail(f"{name} after close() did not raise ClosedError")

    @aio
    async def test_async_with(self, storage_factory: StorageFactory, fresh_ids: FreshIds) -> None:
        c = fresh_ids.conv()
        s = storage_factory.make()
        async with s as entered:
            assert entered.raw is s.raw
            h = await s.save_chat_message(*c, msg("user", "a", 1))
            assert summary(h) == [(0, "user", "a")]
        with pytest.raises(ClosedError):
            await s.fetch_chat(*c)

    @requires("persistent", "read_your_writes")
    @aio
    async def test_data_survives_reopen(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_messages(*c, [msg("user", "a", 1), msg("assistant", "b", 2)])
        async with storage_factory.open() as s:
            assert summary(await s.fetch_chat(*c)) == [(0, "user", "a"), (1, "assistant", "b")]
            h = await s.save_chat_message(*c, msg("user", "c", 3))
            assert [m.index for m in h] == [0, 1, 2]
            assert [x.session_id for x in await s.list_sessions(c.user_id)] == [c.session_id]

    @requires("read_your_writes")
    @aio
    async def test_sql_looking_strings_stored_verbatim(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        async with storage_factory.open() as s:
            for i, text in enumerate(SQL_LOOKING):
                user, session, agent = fresh_ids(text + "u"), fresh_ids(text + "s"), text + "a"
                m = {"role": text, "content": [{"text": text, text: [text]}], "timestamp": i}
                h = await s.save_chat_message(user, session, agent, m)
                assert (h[0].role, h[0].content) == (text, m["content"])
                assert await s.fetch_chat(user, session, agent) == h
                sessions = await s.list_sessions(user)
                assert [(x.session_id, x.agent_ids) for x in sessions] == [(session, (agent,))]
                assert [x.agent_id for x in await s.fetch_all_chats(user, session)] == [agent]

    # -- exactness (second edition) ----------------------------------------

    @requires("read_your_writes")
    @aio
    async def test_roles_are_compared_exactly(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """The consecutive-role rule and the session view's prefix compare
        roles as exact strings: case variants, a trailing space, a Cyrillic
        look-alike and a composed/decomposed pair are all different roles."""
        c = fresh_ids.conv()
        roles = ["user", "User", "USER", "user ", "us\u0435r", "assistant", "Assistant",
                 "ASSISTANT", "\u00e9", "e\u0301", "assistant"]
        async with storage_factory.open() as s:
            for i, role in enumerate(roles):
                await s.save_chat_message(*c, msg(role, f"m{i}", i))
            await s.save_chat_messages(*c, [msg("assistant", "dropped", 50),
                                            msg("Assistant", "kept", 51),
                                            msg("assistant", "kept too", 52)])
            stored = await s.fetch_chat(*c)
            view = await s.fetch_all_chats(c.user_id, c.session_id)
        assert [m.role for m in stored] == [*roles, "Assistant", "assistant"], (
            "a role differing only in case, spacing or look-alike characters was dropped")
        prefixed = [m.role for m in view if texts([m])[0].startswith(f"[{c.agent_id}] ")]
        assert prefixed == ["assistant", "assistant", "assistant"], (
            "only the exact role 'assistant' is prefixed in the session view")

    @requires("read_your_writes")
    @aio
    async def test_session_view_prefix_keeps_the_rest_of_the_block(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """The prefixed text block keeps its other keys (in their order), and
        every other block is kept as it is."""
        user, session, agent = fresh_ids.conv()
        content: list[dict[str, Any]] = [
            {"toolUse": {"name": "t", "input": {"a": [1, 2]}}, "id": "x"},
            {"cachePoint": {"type": "default"}, "text": "answer", "citations": [{"n": 1}]},
            {"text": "second", "extra": True},
        ]
        async with storage_factory.open() as s:
            await s.save_chat_messages(user, session, agent, [
                {"role": "user", "content": [{"text": "q", "k": 1}], "timestamp": 1},
                {"role": "assistant", "content": content, "timestamp": 2},
            ])
            view = await s.fetch_all_chats(user, session)
        want = [content[0], {**content[1], "text": f"[{agent}] answer"}, content[2]]
        assert [m.content for m in view] == [[{"text": "q", "k": 1}], want]
        assert list(view[1].content[1]) == ["cachePoint", "text", "citations"], (
            "the prefixed block's keys changed order")

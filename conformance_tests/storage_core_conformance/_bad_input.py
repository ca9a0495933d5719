"""The bad-input matrix: each case is a ValidationError that says what is wrong,
and nothing is written."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from storage_core import Capabilities, Limits, ValidationError
from storage_core.backend import TableRow, TableTools

from ._support import Conversation, FreshIds, StorageFactory, TimedStorage, msg

__all__ = ["BadInputTests"]

aio = pytest.mark.asyncio


class _Placeholder:
    """A bad value that depends on the storage's limits, made in the test."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


TOO_LONG_ID = _Placeholder("TOO_LONG_ID")
TOO_MANY_BYTES_ID = _Placeholder("TOO_MANY_BYTES_ID")
TOO_BIG_CONTENT = _Placeholder("TOO_BIG_CONTENT")

MAX_ID_BYTES = 800  # the core's bound on an id or role as UTF-8, whatever the Limits
MAX_HISTORY_SIZE = 2**31 - 1
HUGE_INT = 10**4300  # one digit more than content integers may have


def _wide(base: str, size: int, seed: int = 0) -> str:
    """``base`` followed by random four-byte characters, ``size`` bytes of
    UTF-8 in all: text PostgreSQL cannot compress in an index entry."""
    pad = (size - len(base)) % 4
    rng = random.Random(seed)
    wide = "".join(chr(rng.randrange(0x10000, 0x110000))
                   for _ in range((size - len(base) - pad) // 4))
    return base + "_" * pad + wide


def _resolve(value: Any, storage: TimedStorage) -> Any:
    if value is TOO_LONG_ID:
        return "i" * (storage.limits.max_id_length + 1)
    if value is TOO_MANY_BYTES_ID:
        text = _wide("", MAX_ID_BYTES + 4)
        if len(text) > storage.limits.max_id_length:
            pytest.skip("max_id_length is too small for an id over the byte limit")
        return text
    if value is TOO_BIG_CONTENT:
        return [{"text": "x" * storage.limits.max_content_bytes}]
    if isinstance(value, dict):
        return {k: _resolve(v, storage) for k, v in value.items()}
    return value


BAD_IDS = [
    pytest.param("", "empty", id="empty"),
    pytest.param(42, "string", id="int"),
    pytest.param(None, "string", id="none"),
    pytest.param(b"bytes", "string", id="bytes"),
    pytest.param(TOO_LONG_ID, "limit", id="too-long"),
    pytest.param(TOO_MANY_BYTES_ID, "800 bytes", id="too-many-bytes"),
    pytest.param("a\x00b", "nul", id="nul"),
    pytest.param("a\ud800b", "surrogate", id="lone-surrogate"),
    pytest.param("\udfff", "surrogate", id="lone-low-surrogate"),
]


class _Unserialisable:
    pass


def _m(**fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": "t"}], **fields}


# (message, words the error must contain (lower case))
BAD_MESSAGES = [
    pytest.param(_m(role=""), ("role", "empty"), id="role-empty"),
    pytest.param(_m(role=7), ("role", "string"), id="role-int"),
    pytest.param(_m(role=None), ("role", "string"), id="role-none"),
    pytest.param(_m(role="us\x00er"), ("role", "nul"), id="role-nul"),
    pytest.param(_m(role=TOO_LONG_ID), ("role", "limit"), id="role-too-long"),
    pytest.param(_m(role=TOO_MANY_BYTES_ID), ("role", "800 bytes"), id="role-too-many-bytes"),
    pytest.param(_m(role="us\udc80er"), ("role", "surrogate"), id="role-lone-surrogate"),
    pytest.param({"content": []}, ("role",), id="role-missing"),
    pytest.param({"role": "user"}, ("content",), id="content-missing"),
    pytest.param(_m(content={1, 2}), ("content", "set"), id="content-set"),
    pytest.param(_m(content=b"x"), ("content", "bytes"), id="content-bytes"),
    pytest.param(_m(content=_Unserialisable()), ("content",), id="content-object"),
    pytest.param(_m(content=[{"text": "a", "x": {1}}]), ("content",), id="content-nested-set"),
    pytest.param(_m(content=[{"x": float("nan")}]), ("content", "nan"), id="content-nan"),
    pytest.param(_m(content=[{"x": float("inf")}]), ("content", "infinity"), id="content-inf"),
    pytest.param(_m(content=float("-inf")), ("content", "infinity"), id="content-minus-inf"),
    pytest.param(_m(content=[{1: "a"}]), ("content",), id="content-int-key"),
    pytest.param(_m(content="a\ud83d"), ("content", "surrogate"), id="content-lone-surrogate"),
    pytest.param(_m(content=[{"text": "x", "y": ["\udc00"]}]), ("content", "surrogate"),
                 id="content-nested-lone-surrogate"),
    pytest.param(_m(content=[{"\ud800": "key"}]), ("content", "surrogate"),
                 id="content-key-lone-surrogate"),
    pytest.param(_m(content=TOO_BIG_CONTENT), ("content", "limit"), id="content-too-big"),
    pytest.param(_m(content=HUGE_INT), ("content", "4300 digits"), id="content-int-too-long"),
    pytest.param(_m(content=[{"n": -HUGE_INT}]), ("content[0]['n']", "4300 digits"),
                 id="content-nested-int-too-long"),
    pytest.param(_m(timestamp=-1), ("timestamp",), id="timestamp-negative"),
    pytest.param(_m(timestamp=2**63), ("timestamp",), id="timestamp-too-big"),
    pytest.param(_m(timestamp="5"), ("timestamp",), id="timestamp-str"),
    pytest.param(_m(timestamp=1.5), ("timestamp",), id="timestamp-float"),
    pytest.param(_m(timestamp=True), ("timestamp",), id="timestamp-bool"),
    pytest.param("hello", ("message",), id="not-a-message-str"),
    pytest.param(42, ("message",), id="not-a-message-int"),
    pytest.param(None, ("message",), id="not-a-message-none"),
]

BAD_SIZES = [
    pytest.param(0, id="zero"),
    pytest.param(-1, id="negative"),
    pytest.param("5", id="str"),
    pytest.param(2.0, id="float"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(MAX_HISTORY_SIZE + 1, id="2**31"),
    pytest.param(2**63, id="2**63"),
]

# (field of the middle row, its bad value or a function of the conversation
# giving it, words the error must contain (lower case))
BAD_ROWS = [
    pytest.param("message_index", 2**31, ("message_index", "2147483647"), id="index-2**31"),
    pytest.param("message_index", 2**63, ("message_index", "2147483647"), id="index-2**63"),
    pytest.param("message_index", -1, ("message_index",), id="index-negative"),
    pytest.param("message_index", True, ("message_index",), id="index-bool"),
    pytest.param("message_index", "1", ("message_index",), id="index-str"),
    pytest.param("timestamp", 2**63, ("timestamp",), id="timestamp-2**63"),
    pytest.param("timestamp", -1, ("timestamp",), id="timestamp-negative"),
    pytest.param("timestamp", None, ("timestamp",), id="timestamp-none"),
    pytest.param("user_id", lambda c: _wide(c.user_id, MAX_ID_BYTES + 1),
                 ("user_id", "800 bytes"), id="user-id-too-many-bytes"),
    pytest.param("session_id", "", ("session_id", "empty"), id="session-id-empty"),
    pytest.param("agent_id", "a\x00b", ("agent_id", "nul"), id="agent-id-nul"),
    pytest.param("role", _wide("r", MAX_ID_BYTES + 1), ("role", "800 bytes"),
                 id="role-too-many-bytes"),
    pytest.param("role", None, ("role", "string"), id="role-none"),
    pytest.param("content", '"x"' + " " * (4 * 1024 * 1024), ("content", "4194304"),
                 id="content-too-big-as-given"),
    pytest.param("content", "1" + "0" * 4300, ("content", "4300 digits"),
                 id="content-int-too-long"),
    pytest.param("content", "[NaN]", ("content", "nan"), id="content-nan"),
    pytest.param("content", "[" * 100_000 + "]" * 100_000, ("content", "nested too deeply"),
                 id="content-too-deep"),
    pytest.param("content", "[1,", ("content", "json"), id="content-not-json"),
    pytest.param("content", '"\\ud800"', ("content", "surrogate"), id="content-surrogate"),
    pytest.param("content", b'"x"', ("content", "json text"), id="content-bytes"),
]


async def _expect_rejected(
    calls: dict[str, Callable[[], Awaitable[object]]], words: tuple[str, ...]
) -> None:
    for name, call in calls.items():
        error: ValidationError | None = None
        try:
            await call()
        except ValidationError as exc:
            error = exc
        if error is None:
            pytest.fail(f"{name} accepted the bad input")
        missing = [w for w in words if w.lower() not in str(error).lower()]
        assert not missing, f"{name}: the error {str(error)!r} does not mention {missing}"


async def _rejected(call: Awaitable[object]) -> ValidationError:
    """The ValidationError ``call`` raises."""
    with pytest.raises(ValidationError) as info:
        await call
    return info.value


class _Snapshot:
    """What a user's data looks like, to show a rejected call wrote nothing.

    Always on: on a backend declaring no ``read_your_writes`` the snapshot
    is taken once the seeded conversation is visible (reads may lag), so a
    write the rejected call made, once visible, still shows.
    """

    def __init__(self, storage: TimedStorage, conv: Conversation, caps: Capabilities) -> None:
        self.storage, self.conv, self.lagging = storage, conv, not caps.read_your_writes
        self.before: Any = None

    async def _take(self) -> Any:
        s, c = self.storage, self.conv
        return (await s.fetch_chat(*c), await s.fetch_all_chats(c.user_id, c.session_id),
                await s.list_sessions(c.user_id))

    async def __aenter__(self) -> None:
        self.before = await self._take()
        if self.lagging:
            loop = asyncio.get_running_loop()
            give_up = loop.time() + self.storage.timeout
            while not self.before[0] and loop.time() < give_up:
                await asyncio.sleep(0.05)  # the seed not replicated yet
                self.before = await self._take()

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            assert await self._take() == self.before, "a rejected call wrote something"


class BadInputTests:
    """Bad input is a ValidationError naming the problem, and writes nothing.

    Whether nothing was written is always read back, whatever the backend
    declares (see ``_Snapshot``).
    """

    @pytest.mark.parametrize("field", ["user_id", "session_id", "agent_id"])
    @pytest.mark.parametrize(("bad", "word"), BAD_IDS)
    @aio
    async def test_bad_id_rejected(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities, field: str, bad: Any, word: str,
    ) -> None:
        good = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*good, msg("user", "seed", 1))
            c = good._replace(**{field: _resolve(bad, s)})
            m = msg("assistant", "new", 2)
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "save_chat_message": lambda: s.save_chat_message(*c, m),
                "save_chat_messages": lambda: s.save_chat_messages(*c, [m]),
                "append_messages": lambda: s.append_messages(*c, [m], 5),
                "fetch_chat": lambda: s.fetch_chat(*c),
                "pop_message": lambda: s.pop_message(*c),
                "delete_conversation": lambda: s.delete_conversation(*c),
            }
            if field != "agent_id":
                calls["fetch_all_chats"] = lambda: s.fetch_all_chats(c.user_id, c.session_id)
                calls["delete_session"] = lambda: s.delete_session(c.user_id, c.session_id)
            if field == "user_id":
                calls["list_sessions"] = lambda: s.list_sessions(c.user_id)
                calls["delete_user"] = lambda: s.delete_user(c.user_id)
            async with _Snapshot(s, good, backend_capabilities):
                await _expect_rejected(calls, (field, word))

    @pytest.mark.parametrize(("bad", "words"), BAD_MESSAGES)
    @aio
    async def test_bad_message_rejected(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities, bad: Any, words: tuple[str, ...],
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*c, msg("user", "seed", 1))
            m = _resolve(bad, s)
            batch = [msg("assistant", "good", 2), m, msg("user", "good", 3)]
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "save_chat_message": lambda: s.save_chat_message(*c, m),
                "save_chat_messages (bad one in the middle)": (
                    lambda: s.save_chat_messages(*c, batch)),
                "append_messages (bad one in the middle)": lambda: s.append_messages(*c, batch),
            }
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected(calls, words)

    @aio
    async def test_bad_message_rejected_even_if_it_would_be_dropped(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """The consecutive-role rule never hides bad input."""
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*c, msg("user", "seed", 1))
            bad = {"role": "user", "content": {"a set"}}
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "save_chat_message": lambda: s.save_chat_message(*c, bad),
                "save_chat_messages": lambda: s.save_chat_messages(
                    *c, [msg("assistant", "a", 2), msg("user", "u", 3), bad]),
                "append_messages": lambda: s.append_messages(*c, [bad, msg("assistant", "a")]),
            }
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected(calls, ("content",))

    @pytest.mark.parametrize("size", BAD_SIZES)
    @aio
    async def test_bad_max_history_size_rejected(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities, size: Any,
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*c, msg("user", "seed", 1))
            m = msg("assistant", "new", 2)
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "save_chat_message": lambda: s.save_chat_message(*c, m, size),
                "save_chat_messages": lambda: s.save_chat_messages(*c, [m], size),
                "append_messages": lambda: s.append_messages(*c, [m], size),
                "fetch_chat": lambda: s.fetch_chat(*c, size),
            }
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected(calls, ("max_history_size",))

    @pytest.mark.parametrize(
        "batch", [{"role": "user", "content": []}, "user", None, 5], ids=repr
    )
    @aio
    async def test_batch_that_is_not_a_list_rejected(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities, batch: Any,
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*c, msg("user", "seed", 1))
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "save_chat_messages": lambda: s.save_chat_messages(*c, batch),
                "append_messages": lambda: s.append_messages(*c, batch),
            }
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected(calls, ("messages",))

    @aio
    async def test_empty_batch_stores_nothing(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        c, empty = fresh_ids.conv(), fresh_ids.conv(agent="empty")
        async with storage_factory.open() as s:
            seeded = await s.save_chat_message(*c, msg("user", "seed", 1))
            assert await s.save_chat_messages(*c, []) == seeded
            assert await s.append_messages(*c, []) == []
            assert await s.save_chat_messages(*empty, []) == []
            assert await s.append_messages(*empty, [], 3) == []
            if backend_capabilities.read_your_writes:
                assert await s.fetch_chat(*c) == seeded
                assert await s.fetch_chat(*empty) == []
                assert [x.agent_id for x in await s.fetch_all_chats(c.user_id, c.session_id)] \
                    == [c.agent_id]

    @aio
    async def test_limits_are_exact(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        limits = Limits(max_content_bytes=1024, max_id_length=40)
        async with storage_factory.open(limits=limits, skip_consecutive_roles=False) as s:
            c = fresh_ids.conv()
            longest = Conversation(*(part.ljust(40, "x") for part in c))
            emoji = Conversation(*(part.ljust(40, "\N{GRINNING FACE}") for part in c))
            for conv in (longest, emoji):
                h = await s.save_chat_message(*conv, {"role": "r" * 40, "content": "x" * 1022})
                assert (h[0].role, h[0].content) == ("r" * 40, "x" * 1022)
            h = await s.save_chat_message(*c, {"role": "user", "content": "\u00e9" * 511})
            assert h[-1].content == "\u00e9" * 511, "1024 bytes of UTF-8 JSON fit the limit"
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected({
                    "content of 1025 bytes": lambda: s.save_chat_message(
                        *c, {"role": "user", "content": "x" * 1023}),
                    "content of 1026 bytes (UTF-8)": lambda: s.save_chat_message(
                        *c, {"role": "user", "content": "\u00e9" * 512}),
                    "role of 41 characters": lambda: s.save_chat_message(
                        *c, {"role": "r" * 41, "content": "x"}),
                }, ())
                await _expect_rejected({
                    "agent_id of 41 characters": lambda: s.save_chat_message(
                        *c._replace(agent_id=longest.agent_id + "x"), msg("user", "x")),
                }, ("agent_id",))

    @aio
    async def test_ids_are_bounded_in_bytes(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """Three ids of 800 bytes each (random four-byte characters, which
        PostgreSQL cannot compress) fit every backend's index; 801 bytes, or
        three ids of 255 four-byte characters, are refused before the database
        sees them."""
        c = fresh_ids.conv()
        async with storage_factory.open(limits=Limits()) as s:
            widest = Conversation(*(_wide(part, MAX_ID_BYTES, n) for n, part in enumerate(c)))
            role = _wide("r", MAX_ID_BYTES, 9)
            saved = await s.save_chat_message(*widest, {"role": role, "content": "x"})
            assert [(m.role, m.content) for m in saved] == [(role, "x")]
            assert [m.role for m in await s.fetch_chat(*widest)] == [role]
            await s.save_chat_message(*c, msg("user", "seed", 1))
            emoji = Conversation(*(_wide("", 255 * 4, 20 + n) for n in range(3)))
            over = {"user_id": c._replace(user_id=_wide(c.user_id, MAX_ID_BYTES + 1)),
                    "session_id": c._replace(session_id=_wide(c.session_id, MAX_ID_BYTES + 1)),
                    "agent_id": c._replace(agent_id=_wide(c.agent_id, MAX_ID_BYTES + 1))}
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected({
                    "three ids of 255 four-byte characters": lambda: s.save_chat_message(
                        *emoji, msg("user", "x")),
                    "a role of 801 bytes": lambda: s.save_chat_message(
                        *c, {"role": _wide("r", MAX_ID_BYTES + 1), "content": "x"}),
                }, ("bytes as utf-8", "the limit is 800 bytes"))
                for field, conv in over.items():
                    error = await _rejected(s.save_chat_messages(*conv, [msg("user", "x")]))
                    for words in (field, "801 bytes", "the limit is 800 bytes"):
                        assert words in str(error), f"{field}: {error}"

    @aio
    async def test_max_history_size_is_bounded(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """2**31-1, the documented maximum, works everywhere; one more is refused
        with the bound in the message."""
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*c, msg("user", "seed", 1), MAX_HISTORY_SIZE)
            h = await s.save_chat_messages(*c, [msg("assistant", "a", 2)], MAX_HISTORY_SIZE)
            assert [m.index for m in h] == [0, 1]
            assert len(await s.append_messages(*c, [msg("user", "u", 3)], MAX_HISTORY_SIZE)) == 1
            assert [m.index for m in await s.fetch_chat(*c, MAX_HISTORY_SIZE)] == [0, 1, 2]
            m = msg("assistant", "new", 4)
            async with _Snapshot(s, c, backend_capabilities):
                for size in (MAX_HISTORY_SIZE + 1, 2**63, 2**64):
                    await _expect_rejected(_size_calls(s, c, m, size), (
                        "max_history_size", str(size), str(MAX_HISTORY_SIZE)))

    @aio
    async def test_batch_total_bytes_are_bounded(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """A batch whose contents together pass ``max_batch_bytes`` is refused,
        even though each message is within ``max_content_bytes``; exactly the
        limit is stored."""
        limits = Limits(max_content_bytes=1000, max_batch_bytes=2500)
        c = fresh_ids.conv()
        async with storage_factory.open(limits=limits, skip_consecutive_roles=False) as s:
            # Content "xx...x" is its length + 2 bytes as JSON: 998 + 998 + 504 = 2500.
            fits = [{"role": "user", "content": "x" * n} for n in (996, 996, 502)]
            assert len(await s.append_messages(*c, fits)) == 3
            over = [*fits[:2], {"role": "user", "content": "x" * 503}]
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected({
                    "save_chat_messages": lambda: s.save_chat_messages(*c, over),
                    "append_messages": lambda: s.append_messages(*c, over),
                }, ("messages[0:3]", "2501 bytes", "max_batch_bytes", "2500"))

    @aio
    async def test_default_batch_byte_limit_stops_what_no_server_takes(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """The issue's batch: 270 messages of 4 MiB, within the default content
        and count limits, over 1 GiB in all (PostgreSQL dropped the connection).
        The default ``max_batch_bytes`` of 64 MiB refuses it up front."""
        c = fresh_ids.conv()
        big = "x" * (4 * 1024 * 1024 - 2)  # one string, shared: the test stays small
        batch = [{"role": "user" if i % 2 else "assistant", "content": big} for i in range(270)]
        async with storage_factory.open(limits=Limits()) as s:
            await s.save_chat_message(*c, msg("user", "seed", 1))
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected({
                    "save_chat_messages": lambda: s.save_chat_messages(*c, batch),
                    "append_messages": lambda: s.append_messages(*c, batch),
                }, ("max_batch_bytes", str(64 * 1024 * 1024)))

    @aio
    async def test_batch_size_is_bounded(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """``max_batch_size`` messages are stored in one batch, one more is
        refused (also when every message would be dropped by the role rule),
        and the default limit of 1000 holds too."""
        c = fresh_ids.conv()
        async with storage_factory.open(limits=Limits(max_batch_size=3)) as s:
            assert len(await s.append_messages(*c, [msg("user", "u"), msg("assistant", "a"),
                                                   msg("user", "u")])) == 3
            four = [msg("assistant", f"a{i}") for i in range(4)]
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected({
                    "save_chat_messages": lambda: s.save_chat_messages(*c, four),
                    "append_messages": lambda: s.append_messages(*c, four, 2),
                }, ("4 messages", "limit is 3"))
        async with storage_factory.open(limits=Limits()) as s:
            await s.save_chat_message(*c, msg("user", "seed"))
            many = [msg("user" if i % 2 else "assistant", "m") for i in range(1001)]
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected({
                    "save_chat_messages": lambda: s.save_chat_messages(*c, many),
                    "append_messages": lambda: s.append_messages(*c, many),
                }, ("1001 messages", "limit is 1000"))

    @pytest.mark.parametrize("size", [0, -1, 2**31, True, "10", None])
    @aio
    async def test_bad_export_page_size_rejected(
        self, storage_factory: StorageFactory, size: Any,
    ) -> None:
        async with storage_factory.open() as s:
            if not isinstance(s.raw.backend, TableTools):
                pytest.skip("backend implements no TableTools (export, import, prune, describe)")

            async def first_page() -> None:
                async for _ in s.raw.export(batch_size=size):
                    break

            await _expect_rejected({"export": lambda: s._t(first_page())}, ("batch_size",))

    @pytest.mark.parametrize("before", [-1, 2**63, 1.5, "0", None, True])
    @aio
    async def test_bad_prune_time_rejected(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities, before: Any,
    ) -> None:
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            if not isinstance(s.raw.backend, TableTools):
                pytest.skip("backend implements no TableTools (export, import, prune, describe)")
            await s.save_chat_message(*c, msg("user", "seed", 1))
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected(
                    {"prune": lambda: s._t(s.raw.prune(before))}, ("before_timestamp",)
                )

    @pytest.mark.parametrize(("field", "bad", "words"), BAD_ROWS)
    @aio
    async def test_bad_imported_row_rejected(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities, field: str, bad: Any, words: tuple[str, ...],
    ) -> None:
        """``import_rows`` (the CLI's import and copy) checks every row as a
        save checks a message, and bounds the index to what every backend's
        column holds; one bad row in the middle and nothing is imported."""
        c = fresh_ids.conv()
        async with storage_factory.open(limits=Limits(), skip_consecutive_roles=False) as s:
            if not isinstance(s.raw.backend, TableTools):
                pytest.skip("backend implements no TableTools (export, import, prune, describe)")
            await s.save_chat_message(*c, msg("user", "seed", 1))
            target = fresh_ids.conv(agent="imported")
            rows = [_row(target, i) for i in range(3)]
            value = bad(target) if callable(bad) else bad
            rows[1] = dataclasses.replace(rows[1], **{field: value})
            async with _Snapshot(s, c, backend_capabilities):
                await _expect_rejected(
                    {"import_rows": lambda: s._t(s.raw.import_rows(rows))}, ("row 1", *words)
                )
            assert await s.fetch_chat(*target) == [], "a rejected import wrote something"

    @aio
    async def test_imports_obey_the_batch_limits(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """An import is one transaction like a batch save: at most
        ``max_batch_size`` rows and ``max_batch_bytes`` of content. The import
        at the index bound 2**31-1 is stored."""
        limits = Limits(max_content_bytes=1000, max_batch_bytes=2500, max_batch_size=4)
        async with storage_factory.open(limits=limits, skip_consecutive_roles=False) as s:
            if not isinstance(s.raw.backend, TableTools):
                pytest.skip("backend implements no TableTools (export, import, prune, describe)")
            c = fresh_ids.conv()
            last = TableRow(*c, MAX_HISTORY_SIZE, "user", json.dumps("x" * 996), 7)
            assert await s._t(s.raw.import_rows([last])) == 1
            if backend_capabilities.read_your_writes:
                assert [m.index for m in await s.fetch_chat(*c)] == [MAX_HISTORY_SIZE]
            target = fresh_ids.conv(agent="imported")
            five = [_row(target, i) for i in range(5)]
            heavy = [TableRow(*target, i, "user", json.dumps("x" * 996), 5) for i in range(3)]
            await _expect_rejected(
                {"import of 5 rows": lambda: s._t(s.raw.import_rows(five))},
                ("max_batch_size", "4"),
            )
            await _expect_rejected(
                {"import of 2994 bytes": lambda: s._t(s.raw.import_rows(heavy))},
                ("max_batch_bytes", "2500"),
            )
            assert await s.fetch_chat(*target) == [], "a rejected import wrote something"


def _size_calls(
    s: TimedStorage, c: Conversation, m: dict[str, Any], size: Any
) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every call that takes ``max_history_size``, with ``size``."""
    return {
        "save_chat_message": lambda: s.save_chat_message(*c, m, size),
        "save_chat_messages": lambda: s.save_chat_messages(*c, [m], size),
        "append_messages": lambda: s.append_messages(*c, [m], size),
        "fetch_chat": lambda: s.fetch_chat(*c, size),
    }


def _row(c: Conversation, index: int) -> TableRow:
    return TableRow(*c, index, "user" if index % 2 == 0 else "assistant",
                    json.dumps([{"text": f"row {index}"}]), 1000 + index)


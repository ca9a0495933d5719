"""The bad-input matrix: each case is a ValidationError that says what is wrong,
and nothing is written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from storage_core import Capabilities, Limits, ValidationError

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
TOO_BIG_CONTENT = _Placeholder("TOO_BIG_CONTENT")


def _resolve(value: Any, storage: TimedStorage) -> Any:
    if value is TOO_LONG_ID:
        return "i" * (storage.limits.max_id_length + 1)
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
    pytest.param("a\x00b", "nul", id="nul"),
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
    pytest.param(_m(content=TOO_BIG_CONTENT), ("content", "limit"), id="content-too-big"),
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


class _Snapshot:
    """What a user's data looks like, to show a rejected call wrote nothing."""

    def __init__(self, storage: TimedStorage, conv: Conversation, caps: Capabilities) -> None:
        self.storage, self.conv, self.enabled = storage, conv, caps.read_your_writes
        self.before: Any = None

    async def _take(self) -> Any:
        s, c = self.storage, self.conv
        return (await s.fetch_chat(*c), await s.fetch_all_chats(c.user_id, c.session_id),
                await s.list_sessions(c.user_id))

    async def __aenter__(self) -> None:
        if self.enabled:
            self.before = await self._take()

    async def __aexit__(self, *exc: object) -> None:
        if self.enabled and exc[0] is None:
            assert await self._take() == self.before, "a rejected call wrote something"


class BadInputTests:
    """Bad input is a ValidationError naming the problem, and writes nothing.

    Whether nothing was written is read back only when the backend declares
    ``read_your_writes``.
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

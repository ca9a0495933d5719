"""What the tests share: fresh id namespaces, a storage wrapper with timeouts, helpers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, NamedTuple, TypeAlias, TypeVar

import pytest

from storage_core import (
    Capabilities,
    ChatStorage,
    Limits,
    SessionInfo,
    StoredMessage,
    make_storage,
)

__all__ = [
    "AUTO_TIMESTAMP_FLOOR",
    "CAPABILITY_NAMES",
    "Conversation",
    "FreshIds",
    "RawRow",
    "RawRows",
    "StorageFactory",
    "TimedStorage",
    "msg",
    "requires",
    "summary",
    "texts",
]

T = TypeVar("T")

CAPABILITY_NAMES = (
    "shared_across_processes", "read_your_writes", "persistent", "exactly_once"
)

AUTO_TIMESTAMP_FLOOR = 10**12
"""Timestamps the tests give are below this; clock timestamps (ms) are above it."""

REQUIRES_MARKER = "storage_core_requires"

RawRow: TypeAlias = tuple[int, str, str, int]
"""``(message_index, role, content, timestamp)`` of a row as the database holds it."""


def requires(*capabilities: str) -> pytest.MarkDecorator:
    """Mark a test as needing backend capabilities (``Capabilities`` field names).

    A test whose backend declares one of them false is skipped with the reason
    ``backend declares no <capability>``.
    """
    for name in capabilities:
        if name not in CAPABILITY_NAMES:
            raise ValueError(f"unknown capability {name!r}; known: {CAPABILITY_NAMES}")
    return getattr(pytest.mark, REQUIRES_MARKER)(*capabilities)  # type: ignore[no-any-return]


class Conversation(NamedTuple):
    """``(user_id, session_id, agent_id)``; splat it into calls: ``save(*conv, m)``."""

    user_id: str
    session_id: str
    agent_id: str


class FreshIds:
    """Ids no other test (or earlier run against the same database) uses."""

    def __init__(self) -> None:
        self.prefix = uuid.uuid4().hex[:16]

    def __call__(self, name: str) -> str:
        return f"{name}-{self.prefix}"

    def conv(self, user: str = "user", session: str = "session", agent: str = "agent") -> (
        Conversation
    ):
        return Conversation(self(user), self(session), self(agent))


def msg(role: str, text: str, timestamp: int | None = None) -> dict[str, Any]:
    """A message mapping with one text block (and a timestamp if given)."""
    m: dict[str, Any] = {"role": role, "content": [{"text": text}]}
    if timestamp is not None:
        m["timestamp"] = timestamp
    return m


def texts(messages: Sequence[StoredMessage]) -> list[str]:
    """The first text block of each message."""
    out = []
    for m in messages:
        content = m.content
        out.append(content[0]["text"] if isinstance(content, list) else str(content))
    return out


def summary(messages: Sequence[StoredMessage]) -> list[tuple[int, str, str]]:
    """``(index, role, first text)`` of each message: what most checks compare."""
    return [(m.index, m.role, t) for m, t in zip(messages, texts(messages), strict=True)]


RawRows: TypeAlias = "Callable[[TimedStorage, Conversation], Awaitable[Sequence[RawRow]]]"
"""The ``raw_rows`` fixture's reader: a conversation's rows read with the driver."""


class TimedStorage:
    """A :class:`~storage_core.ChatStorage` whose every call has a timeout.

    A hung server then fails the test instead of hanging the run.
    """

    def __init__(self, storage: ChatStorage, timeout: float) -> None:
        self.raw = storage
        self.timeout = timeout

    async def _t(self, call: Awaitable[T]) -> T:
        return await asyncio.wait_for(call, self.timeout)

    @property
    def capabilities(self) -> Capabilities:
        return self.raw.capabilities

    @property
    def limits(self) -> Limits:
        return self.raw.limits

    async def initialize(self) -> None:
        await self._t(self.raw.initialize())

    async def close(self) -> None:
        await self._t(self.raw.close())

    async def __aenter__(self) -> TimedStorage:
        await self._t(self.raw.__aenter__())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._t(self.raw.__aexit__(exc_type, exc, tb))

    async def save_chat_message(
        self, user_id: Any, session_id: Any, agent_id: Any, message: Any,
        max_history_size: Any = None,
    ) -> list[StoredMessage]:
        return await self._t(self.raw.save_chat_message(
            user_id, session_id, agent_id, message, max_history_size))

    async def save_chat_messages(
        self, user_id: Any, session_id: Any, agent_id: Any, messages: Any,
        max_history_size: Any = None,
    ) -> list[StoredMessage]:
        return await self._t(self.raw.save_chat_messages(
            user_id, session_id, agent_id, messages, max_history_size))

    async def append_messages(
        self, user_id: Any, session_id: Any, agent_id: Any, messages: Any,
        max_history_size: Any = None,
    ) -> list[StoredMessage]:
        return await self._t(self.raw.append_messages(
            user_id, session_id, agent_id, messages, max_history_size))

    async def fetch_chat(
        self, user_id: Any, session_id: Any, agent_id: Any, max_history_size: Any = None
    ) -> list[StoredMessage]:
        return await self._t(self.raw.fetch_chat(user_id, session_id, agent_id, max_history_size))

    async def pop_message(
        self, user_id: Any, session_id: Any, agent_id: Any
    ) -> StoredMessage | None:
        return await self._t(self.raw.pop_message(user_id, session_id, agent_id))

    async def fetch_all_chats(self, user_id: Any, session_id: Any) -> list[StoredMessage]:
        return await self._t(self.raw.fetch_all_chats(user_id, session_id))

    async def list_sessions(self, user_id: Any) -> list[SessionInfo]:
        return await self._t(self.raw.list_sessions(user_id))

    async def delete_session(self, user_id: Any, session_id: Any) -> int:
        return await self._t(self.raw.delete_session(user_id, session_id))

    async def delete_conversation(self, user_id: Any, session_id: Any, agent_id: Any) -> int:
        return await self._t(self.raw.delete_conversation(user_id, session_id, agent_id))

    async def delete_user(self, user_id: Any) -> int:
        return await self._t(self.raw.delete_user(user_id))


class StorageFactory:
    """Makes storages on the backend under test (the ``storage_factory`` fixture).

    ``open(**options)`` is an async context manager giving an initialized
    storage that is closed on exit; ``make(**options)`` gives one not yet
    initialized, which the caller closes. ``options`` are ``make_storage``
    keyword arguments (``skip_consecutive_roles``, ``trim``, ``limits``, ...)
    and override the ``storage_options`` fixture.
    """

    def __init__(self, url: str, options: dict[str, Any], timeout: float) -> None:
        self.url = url
        self.options = dict(options)
        self.timeout = timeout

    def make(self, **options: Any) -> TimedStorage:
        return TimedStorage(make_storage(self.url, **{**self.options, **options}), self.timeout)

    @asynccontextmanager
    async def open(self, **options: Any) -> AsyncIterator[TimedStorage]:
        storage = self.make(**options)
        try:
            await storage.initialize()
            yield storage
        finally:
            await storage.close()

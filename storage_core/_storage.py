"""``ChatStorage``: the public object every call goes through.

It validates input, encodes content, applies the rules that need no stored
data, retries transient failures, keeps secrets out of errors, and hands
the rest to its backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from operator import itemgetter
from types import TracebackType
from typing import Any, TypeVar

from ._backend import (
    AppendRequest,
    AppendResult,
    Backend,
    Capabilities,
    ConversationKey,
    NewRow,
    RowValues,
    TableRow,
    TableTools,
)
from ._limits import Limits
from ._model import SessionInfo, StoredMessage, messages_from_rows
from ._retry import RetryPolicy
from ._rules import (
    TRIM_MODES,
    TrimMode,
    assign_timestamps,
    dedupe_within_batch,
    keep_count,
    session_order,
)
from ._urls import redact_text, scrub_exception
from ._validate import (
    Encoded,
    check_id,
    check_max_history_size,
    check_timestamp,
    coerce_message,
    decode_content,
    encode_content,
    encode_message,
    encode_messages,
)
from .errors import ClosedError, ConfigurationError, StorageError, ValidationError

__all__ = ["ChatStorage"]

log = logging.getLogger("storage_core")
T = TypeVar("T")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ChatStorage:
    """Conversation history on one database, the same on every backend.

    Create it with :func:`storage_core.make_storage`. Use it as
    ``async with make_storage(url) as storage:`` or call :meth:`initialize`
    and :meth:`close` yourself; a call before ``initialize()`` initializes.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        url: str = "",
        skip_consecutive_roles: bool = True,
        trim: TrimMode = "messages",
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        secrets: Iterable[str] = (),
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        if trim not in TRIM_MODES:
            raise ConfigurationError(f"trim must be one of {TRIM_MODES}, got {trim!r}")
        if not isinstance(skip_consecutive_roles, bool):
            raise ConfigurationError("skip_consecutive_roles must be a bool")
        self._backend = backend
        self._url = redact_text(url)
        self._skip = skip_consecutive_roles
        self._trim: TrimMode = trim
        self._limits = limits or Limits()
        self._retry = retry or RetryPolicy()
        self._secrets = tuple(s for s in secrets if s)
        self._clock = clock
        self._ready = False
        self._closed = False
        self._init_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<ChatStorage {self._url!r} on {type(self._backend).__name__}>"

    @property
    def url(self) -> str:
        """The storage URL with its secrets replaced by ``***``."""
        return self._url

    @property
    def backend(self) -> Backend:
        """The backend object (for plugin authors and diagnostics)."""
        return self._backend

    @property
    def capabilities(self) -> Capabilities:
        return self._backend.capabilities

    @property
    def limits(self) -> Limits:
        return self._limits

    # -- lifecycle ---------------------------------------------------------

    async def initialize(self) -> None:
        """Connect and create the schema if needed. Idempotent."""
        if self._closed:
            raise ClosedError(f"{self!r} is closed")
        if self._ready:
            return
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:
            if not self._ready:
                await self._call("initialize", self._backend.initialize, write=False)
                self._ready = True

    async def close(self) -> None:
        """Release connections. Idempotent; any later call raises ClosedError."""
        if self._closed:
            return
        self._closed = True
        await self._call("close", self._backend.close, write=False, retry=False)

    async def __aenter__(self) -> ChatStorage:
        try:
            await self.initialize()
        except BaseException:
            # ``async with`` never calls __aexit__ when __aenter__ fails, and
            # the caller holds no reference to close: release connections here.
            with contextlib.suppress(Exception):
                await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- writes ------------------------------------------------------------

    async def save_chat_message(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        new_message: Any,
        max_history_size: int | None = None,
    ) -> list[StoredMessage]:
        """Store one message and return the conversation after the save.

        The message is a :class:`Message`, a mapping with ``role`` and
        ``content`` (and optionally ``timestamp``), or any object with
        ``.role`` and ``.content``. It is not stored when its role equals the
        role of the conversation's last message (unless the storage was made
        with ``skip_consecutive_roles=False``). With ``max_history_size`` the
        oldest messages beyond it are deleted in the same transaction and the
        newest ones returned, as :meth:`fetch_chat` would.
        """
        message = encode_message(new_message, self._limits)
        return await self._save(user_id, session_id, agent_id, [message], max_history_size)

    async def save_chat_messages(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        new_messages: Sequence[Any],
        max_history_size: int | None = None,
    ) -> list[StoredMessage]:
        """Store a batch atomically (all or nothing) and return the conversation.

        The same rules as :meth:`save_chat_message` apply to each message; a
        message with the role of the one before it in the batch is not stored.
        An empty batch stores nothing and returns the conversation.
        """
        messages = encode_messages(new_messages, self._limits)
        return await self._save(user_id, session_id, agent_id, messages, max_history_size)

    async def append_messages(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        messages: Sequence[Any],
        max_history_size: int | None = None,
    ) -> list[StoredMessage]:
        """Store a batch like :meth:`save_chat_messages` but read nothing back.

        Returns only the messages that were stored, with their index and
        timestamp.
        """
        batch = encode_messages(messages, self._limits)
        key, rows, keep = self._prepare(user_id, session_id, agent_id, batch, max_history_size)
        if not rows:
            await self._ensure_ready()
            return []
        result = await self._append(key, rows, keep, history=False)
        return self._messages(result.stored)

    async def _save(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        batch: list[Encoded],
        max_history_size: int | None,
    ) -> list[StoredMessage]:
        key, rows, keep = self._prepare(user_id, session_id, agent_id, batch, max_history_size)
        if not rows:
            return await self.fetch_chat(user_id, session_id, agent_id, max_history_size)
        result = await self._append(key, rows, keep, history=True)
        assert result.history is not None, "backend returned no history"
        return self._messages(result.history)

    def _prepare(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        batch: list[Encoded],
        max_history_size: int | None,
    ) -> tuple[ConversationKey, list[NewRow], int | None]:
        """The key, the rows to insert and how many to keep. ``batch`` is
        validated already, also the messages the role rule drops below."""
        key = self._key(user_id, session_id, agent_id)
        keep = keep_count(check_max_history_size(max_history_size), self._trim)
        stamps = assign_timestamps([ts for _, _, ts in batch], self._clock())
        # tuple.__new__ skips the named tuple's Python-level __new__ (a batch
        # makes one per message).
        new = tuple.__new__
        rows = [
            new(NewRow, (role, content, ts))
            for (role, content, _), ts in zip(batch, stamps, strict=True)
        ]
        if self._skip:
            rows = dedupe_within_batch(rows)
        return key, rows, keep

    async def _append(
        self, key: ConversationKey, rows: list[NewRow], keep: int | None, *, history: bool
    ) -> AppendResult:
        request = AppendRequest(
            key=key,
            rows=rows,
            skip_same_role=self._skip,
            keep=keep,
            history=history,
            history_limit=keep,
        )
        await self._ensure_ready()
        return await self._call("append", lambda: self._backend.append(request), write=True)

    # -- reads -------------------------------------------------------------

    async def fetch_chat(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        max_history_size: int | None = None,
    ) -> list[StoredMessage]:
        """The conversation, oldest first; with ``max_history_size``, only the
        newest that many (whole pairs with ``trim="pairs"``)."""
        key = self._key(user_id, session_id, agent_id)
        limit = keep_count(check_max_history_size(max_history_size), self._trim)
        await self._ensure_ready()
        rows = await self._call("fetch_chat", lambda: self._backend.fetch(key, limit), write=False)
        return self._messages(rows)

    async def fetch_all_chats(self, user_id: str, session_id: str) -> list[StoredMessage]:
        """Every agent's messages of a session, ordered by (timestamp, agent_id,
        message_index); the first text block of each assistant message is
        prefixed with ``[agent_id] ``."""
        user_id = check_id("user_id", user_id, self._limits)
        session_id = check_id("session_id", session_id, self._limits)
        await self._ensure_ready()
        rows = await self._call(
            "fetch_all_chats", lambda: self._backend.fetch_session(user_id, session_id),
            write=False,
        )
        # (agent_id, message_index, role, content, timestamp) by (timestamp,
        # agent_id, message_index); content decoded (and prefixed) when read.
        return messages_from_rows(
            session_order(rows, itemgetter(4, 0, 1)), prefix_assistant=True
        )

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's sessions, newest activity first."""
        user_id = check_id("user_id", user_id, self._limits)
        await self._ensure_ready()
        sessions = await self._call(
            "list_sessions", lambda: self._backend.list_sessions(user_id), write=False
        )
        return sorted(sessions, key=lambda s: (-s.last_timestamp, s.session_id))

    async def delete_session(self, user_id: str, session_id: str) -> int:
        """Delete every agent's messages of a session; returns how many."""
        user_id = check_id("user_id", user_id, self._limits)
        session_id = check_id("session_id", session_id, self._limits)
        await self._ensure_ready()
        return await self._call(
            "delete_session", lambda: self._backend.delete_session(user_id, session_id),
            write=False,
        )

    async def delete_user(self, user_id: str) -> int:
        """Delete all of a user's messages; returns how many."""
        user_id = check_id("user_id", user_id, self._limits)
        await self._ensure_ready()
        return await self._call(
            "delete_user", lambda: self._backend.delete_user(user_id), write=False
        )

    # -- whole-table tools (the CLI's data commands) ----------------------

    def _tools(self, what: str) -> TableTools:
        if not isinstance(self._backend, TableTools):
            raise ConfigurationError(
                f"the {type(self._backend).__name__} backend does not support {what}"
            )
        return self._backend

    async def export(self, *, batch_size: int = 1000) -> AsyncIterator[TableRow]:
        """Every row of the database in (user, session, agent, index) order,
        read in pages of ``batch_size`` (memory stays flat however large)."""
        tools = self._tools("export")
        await self._ensure_ready()
        after: TableRow | None = None
        while True:
            page = await self._call(
                "export", functools.partial(tools.export_rows, after, batch_size), write=False
            )
            for row in page:
                yield row
            if len(page) < batch_size:
                return
            after = page[-1]

    async def import_rows(self, rows: Iterable[TableRow]) -> int:
        """Insert exported rows as they are (index and timestamp kept), in one
        transaction; rows whose (user, session, agent, index) exists are skipped,
        so importing the same rows twice adds nothing. Returns how many were
        inserted."""
        tools = self._tools("import")
        checked = [self._check_row(row, n) for n, row in enumerate(rows)]
        if not checked:
            return 0
        await self._ensure_ready()
        return await self._call("import", lambda: tools.import_rows(checked), write=False)

    def _check_row(self, row: TableRow, n: int) -> TableRow:
        where = f"row {n}"
        if not isinstance(row, TableRow):
            raise ValidationError(f"{where} is a {type(row).__name__}, not a TableRow")
        self._key(row.user_id, row.session_id, row.agent_id)
        coerce_message({"role": row.role, "content": None}, self._limits, where)
        if isinstance(row.message_index, bool) or not isinstance(row.message_index, int) or (
            row.message_index < 0
        ):
            raise ValidationError(f"{where} message_index must be an int >= 0")
        if check_timestamp(row.timestamp, f"{where} timestamp") is None:
            raise ValidationError(f"{where} has no timestamp")
        if not isinstance(row.content, str):
            raise ValidationError(f"{where} content must be JSON text")
        try:
            value = decode_content(row.content)
        except ValueError:
            raise ValidationError(f"{where} content is not valid JSON") from None
        encode_content(value, self._limits, f"{where} content")
        return row

    async def prune(self, before_timestamp: int) -> int:
        """Delete every conversation whose newest message is older than
        ``before_timestamp`` (milliseconds); returns how many messages."""
        tools = self._tools("prune")
        if check_timestamp(before_timestamp, "before_timestamp") is None:
            raise ValidationError("before_timestamp is required")
        await self._ensure_ready()
        return await self._call("prune", lambda: tools.prune(before_timestamp), write=False)

    async def describe(self) -> dict[str, object]:
        """What the backend reports about its database: ``schema_version``,
        ``indexes``, ``server`` and anything else it knows."""
        tools = self._tools("describe")
        await self._ensure_ready()
        return await self._call("describe", tools.describe, write=False)

    # -- plumbing ----------------------------------------------------------

    def _key(self, user_id: str, session_id: str, agent_id: str) -> ConversationKey:
        return ConversationKey(
            check_id("user_id", user_id, self._limits),
            check_id("session_id", session_id, self._limits),
            check_id("agent_id", agent_id, self._limits),
        )

    @staticmethod
    def _messages(rows: Sequence[RowValues]) -> list[StoredMessage]:
        return messages_from_rows(rows)

    async def _ensure_ready(self) -> None:
        if self._closed:
            raise ClosedError(f"{self!r} is closed")
        if not self._ready:
            await self.initialize()

    async def _call(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        write: bool,
        retry: bool = True,
    ) -> T:
        """Run a backend call under the retry policy, translating stray errors.

        ``write`` marks calls that must not be repeated after an ambiguous
        failure: appends. Deletes, prune and import are idempotent (repeating
        one that was committed changes nothing), so they pass ``write=False``
        and are retried like reads.
        """
        try:
            if retry:
                return await self._retry.run(call, what=what, write=write)
            return await call()
        except StorageError as exc:
            self._scrub(exc)
            raise
        except Exception as exc:
            # A backend let a driver error through; never show it untranslated.
            error = StorageError(f"{what} failed: {type(exc).__name__}: {exc}")
            self._scrub(error)
            raise error from exc

    def _scrub(self, exc: BaseException) -> None:
        scrub_exception(exc, self._secrets)

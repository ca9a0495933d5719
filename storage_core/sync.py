"""A blocking twin of ``ChatStorage``, for code that has no event loop.

::

    from storage_core.sync import make_storage

    with make_storage("sqlite:///chat.db") as storage:
        storage.save_chat_message("u1", "s1", "support", {"role": "user", "content": "hi"})
        history = storage.fetch_chat("u1", "s1", "support")

Each `SyncChatStorage` runs its ``ChatStorage`` on a private event loop in a
daemon thread and hands every call to it, so it may be used from any number
of threads at once. A call made from a thread whose event loop is running
raises `RunningLoopError` at once: it would stall that loop; await the
``ChatStorage`` (``async_storage``) there instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

from ._backend import Capabilities, TableRow
from ._factory import make_storage as _make_async_storage
from ._limits import Limits
from ._loops import LoopThread
from ._model import SessionInfo, StoredMessage
from ._storage import ChatStorage
from .errors import ClosedError, RunningLoopError

__all__ = ["SyncChatStorage", "make_storage"]

T = TypeVar("T")
P = ParamSpec("P")

_EXIT_TIMEOUT = 5.0  # seconds an unclosed storage may take to close when collected


def make_storage(url: str, **options: Any) -> SyncChatStorage:
    """Open the storage a URL names, with a blocking API.

    Takes the same URL and options as
    [`storage_core.make_storage`][storage_core.make_storage]; nothing is
    connected until ``initialize()`` or the first call. Close it with
    ``close()`` or use it as ``with make_storage(url) as storage:``.
    """
    return SyncChatStorage(_make_async_storage(url, **options))


class _Handover(Generic[T]):
    """One call handed to the loop thread, which the caller can abandon at
    any moment, even before it knows whether the call was handed over."""

    def __init__(self, call: Callable[[], Awaitable[T]]) -> None:
        self._call = call
        self._task: asyncio.Task[Any] | None = None
        self._abandoned = False

    async def run(self) -> T:
        if self._abandoned:
            raise asyncio.CancelledError
        self._task = asyncio.current_task()
        return await self._call()

    def abandon(self) -> None:
        """On the loop thread: cancel the call, or keep it from starting."""
        self._abandoned = True
        if self._task is not None:
            self._task.cancel()


def _refuse_inside_a_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RunningLoopError(
        f"SyncChatStorage.{name}() was called from a running event loop, which it "
        f"would block; in async code use the async API: "
        f"`await storage.async_storage.{name}(...)` (a storage_core.ChatStorage)"
    )


class SyncChatStorage:
    """Every method of [`ChatStorage`][storage_core.ChatStorage] as a plain
    blocking call with the same name, arguments and result.

    Wraps a ``ChatStorage`` (which it then owns: ``close()`` closes it).
    Safe to call from many threads at once; never from a thread whose event
    loop is running (`RunningLoopError`). After ``close()`` every call raises
    `ClosedError`. Ctrl-C during a call cancels the call and raises
    ``KeyboardInterrupt``.
    """

    def __init__(self, storage: ChatStorage) -> None:
        if not isinstance(storage, ChatStorage):
            raise TypeError(f"SyncChatStorage wraps a ChatStorage, not {type(storage).__name__}")
        self._storage = storage
        self._gate = threading.Lock()  # orders calls handed over against close()
        self._closed = False
        self._loop_thread = LoopThread()
        # Never closed: close it when collected or at exit, without a reference to self.
        self._finalizer = weakref.finalize(self, _close_abandoned, self._loop_thread, storage)

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return (
            f"<SyncChatStorage {self._storage.url!r} on "
            f"{type(self._storage.backend).__name__}{state}>"
        )

    @property
    def async_storage(self) -> ChatStorage:
        """The wrapped ``ChatStorage`` (to await in async code)."""
        return self._storage

    @property
    def url(self) -> str:
        """The storage URL with its secrets replaced by ``***``."""
        return self._storage.url

    @property
    def capabilities(self) -> Capabilities:
        """What the backend offers; see ``ChatStorage.capabilities``."""
        return self._storage.capabilities

    @property
    def limits(self) -> Limits:
        """The size limits in force; see ``ChatStorage.limits``."""
        return self._storage.limits

    # -- running a call on the loop thread ---------------------------------

    def _run(
        self, name: str, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Block until ``await call(*args, **kwargs)`` has run on the private
        loop; return its result."""
        _refuse_inside_a_loop(name)
        loop = self._loop_thread.loop
        handover = _Handover(functools.partial(call, *args, **kwargs))
        future: concurrent.futures.Future[T] | None = None
        try:
            with self._gate:
                if self._closed:
                    raise ClosedError(f"{self!r} is closed")
                future = asyncio.run_coroutine_threadsafe(handover.run(), loop)
            return future.result()
        except concurrent.futures.CancelledError:
            # Not cancelled by us (that is the BaseException below): close()
            # stopped the loop while this call ran.
            raise ClosedError(f"{self!r} was closed during {name}()") from None
        except BaseException:
            # KeyboardInterrupt (or another exception raised in this thread)
            # while it waited, perhaps before the future was returned: the call
            # must not go on by itself.
            if future is not None:
                future.cancel()
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(handover.abandon)
            raise

    # -- lifecycle ---------------------------------------------------------

    def initialize(self) -> None:
        """Connect and create the schema if needed; see ``ChatStorage.initialize``."""
        self._run("initialize", self._storage.initialize)

    def close(self) -> None:
        """Close the storage and stop its loop thread. Idempotent; any later
        call raises ``ClosedError``. See ``ChatStorage.close``."""
        _refuse_inside_a_loop("close")
        with self._gate:
            if self._closed:
                return
            self._closed = True
        self._finalizer.detach()
        try:
            closing = asyncio.run_coroutine_threadsafe(
                self._storage.close(), self._loop_thread.loop
            )
            try:
                closing.result()
            except BaseException:
                closing.cancel()
                raise
        finally:
            self._loop_thread.stop_blocking()

    def __enter__(self) -> SyncChatStorage:
        try:
            self.initialize()
        except BaseException:
            # ``with`` never calls __exit__ when __enter__ fails.
            with contextlib.suppress(Exception):
                self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes ------------------------------------------------------------

    def save_chat_message(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        new_message: Any,
        max_history_size: int | None = None,
        *,
        request_id: str | None = None,
    ) -> list[StoredMessage]:
        """Store one message and return the conversation; see
        ``ChatStorage.save_chat_message``."""
        return self._run(
            "save_chat_message", self._storage.save_chat_message,
            user_id, session_id, agent_id, new_message, max_history_size, request_id=request_id,
        )

    def save_chat_messages(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        new_messages: Sequence[Any],
        max_history_size: int | None = None,
        *,
        request_id: str | None = None,
    ) -> list[StoredMessage]:
        """Store a batch atomically and return the conversation; see
        ``ChatStorage.save_chat_messages``."""
        return self._run(
            "save_chat_messages", self._storage.save_chat_messages,
            user_id, session_id, agent_id, new_messages, max_history_size, request_id=request_id,
        )

    def append_messages(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        messages: Sequence[Any],
        max_history_size: int | None = None,
        *,
        request_id: str | None = None,
    ) -> list[StoredMessage]:
        """Store a batch atomically, returning only what was stored; see
        ``ChatStorage.append_messages``."""
        return self._run(
            "append_messages", self._storage.append_messages,
            user_id, session_id, agent_id, messages, max_history_size, request_id=request_id,
        )

    def pop_message(
        self, user_id: str, session_id: str, agent_id: str, *, request_id: str | None = None
    ) -> StoredMessage | None:
        """Delete and return the conversation's newest message (None when it
        is empty), atomically; see ``ChatStorage.pop_message``."""
        return self._run(
            "pop_message", self._storage.pop_message, user_id, session_id, agent_id,
            request_id=request_id,
        )

    # -- reads -------------------------------------------------------------

    def fetch_chat(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        max_history_size: int | None = None,
        *,
        before_index: int | None = None,
    ) -> list[StoredMessage]:
        """The conversation, oldest first (with ``before_index``, only the
        messages below that index); see ``ChatStorage.fetch_chat``."""
        return self._run(
            "fetch_chat", self._storage.fetch_chat,
            user_id, session_id, agent_id, max_history_size, before_index=before_index,
        )

    def fetch_all_chats(self, user_id: str, session_id: str) -> list[StoredMessage]:
        """Every agent's messages of a session; see ``ChatStorage.fetch_all_chats``."""
        return self._run("fetch_all_chats", self._storage.fetch_all_chats, user_id, session_id)

    def list_sessions(
        self,
        user_id: str,
        *,
        limit: int | None = None,
        before: SessionInfo | None = None,
    ) -> list[SessionInfo]:
        """The user's sessions, newest activity first (a page of them with
        ``limit`` and ``before``); see ``ChatStorage.list_sessions``."""
        return self._run(
            "list_sessions", self._storage.list_sessions, user_id, limit=limit, before=before
        )

    def delete_session(self, user_id: str, session_id: str) -> int:
        """Delete a session's messages, returning how many; see
        ``ChatStorage.delete_session``."""
        return self._run("delete_session", self._storage.delete_session, user_id, session_id)

    def delete_conversation(self, user_id: str, session_id: str, agent_id: str) -> int:
        """Delete one agent's messages of a session, returning how many; see
        ``ChatStorage.delete_conversation``."""
        return self._run(
            "delete_conversation", self._storage.delete_conversation,
            user_id, session_id, agent_id,
        )

    def delete_user(self, user_id: str) -> int:
        """Delete a user's messages, returning how many; see ``ChatStorage.delete_user``."""
        return self._run("delete_user", self._storage.delete_user, user_id)

    # -- whole-table tools -------------------------------------------------

    def export(self, *, batch_size: int = 1000) -> Iterator[TableRow]:
        """Every row of the database, as a plain iterator that reads one page
        of ``batch_size`` rows at a time; see ``ChatStorage.export``."""
        _refuse_inside_a_loop("export")
        if self._closed:
            raise ClosedError(f"{self!r} is closed")
        return self._export(self._storage.export(batch_size=batch_size), batch_size)

    def _export(self, rows: AsyncIterator[TableRow], batch_size: int) -> Iterator[TableRow]:
        async def page() -> tuple[list[TableRow], bool]:
            # One page per hand-over, not one row: the rows of one backend
            # page, then (next time) the backend reads the next page.
            got: list[TableRow] = []
            with contextlib.suppress(StopAsyncIteration):
                while True:  # at least once: the first step checks batch_size
                    got.append(await anext(rows))
                    if len(got) >= batch_size:
                        return got, False
            return got, True

        finished = False
        try:
            while not finished:
                got, finished = self._run("export", page)
                yield from got
        finally:
            aclose = getattr(rows, "aclose", None)
            if not finished and aclose is not None and not self._closed:
                # Stopped early: end the read on the loop; if this thread cannot
                # block now, the loop finalizes the generator itself later.
                with contextlib.suppress(Exception):
                    self._run("export", aclose)

    def import_rows(self, rows: Iterable[TableRow]) -> int:
        """Insert exported rows as they are, in one transaction; see
        ``ChatStorage.import_rows``."""
        return self._run("import_rows", self._storage.import_rows, rows)

    def prune(self, before_timestamp: int) -> int:
        """Delete conversations idle since before ``before_timestamp``; see
        ``ChatStorage.prune``."""
        return self._run("prune", self._storage.prune, before_timestamp)

    def describe(self) -> dict[str, object]:
        """What the backend reports about its database; see ``ChatStorage.describe``."""
        return self._run("describe", self._storage.describe)


def _close_abandoned(loop_thread: LoopThread, storage: ChatStorage) -> None:
    """A `SyncChatStorage` was collected, or the program ends, unclosed: close
    its storage on its loop and stop the loop (waiting only where blocking is safe)."""
    if not loop_thread.thread.is_alive():
        return
    warnings.warn(
        f"{storage.url!r}: a SyncChatStorage was never closed; closing it now "
        f"(call close() or use `with`)",
        ResourceWarning,
        stacklevel=2,
    )

    async def close() -> None:
        with contextlib.suppress(Exception):
            await storage.close()

    try:
        closing = asyncio.run_coroutine_threadsafe(close(), loop_thread.loop)
    except RuntimeError:  # the loop has closed
        return
    try:
        asyncio.get_running_loop()
        can_block = False
    except RuntimeError:
        can_block = threading.current_thread() is not loop_thread.thread
    if not can_block:
        closing.add_done_callback(lambda _: loop_thread.stop_soon())
        return
    with contextlib.suppress(Exception):
        closing.result(_EXIT_TIMEOUT)
    loop_thread.stop_blocking(_EXIT_TIMEOUT)

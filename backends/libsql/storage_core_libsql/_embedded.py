"""The embedded-replica engine: a local libSQL file kept in sync with a primary.

``file:local.db?sync_url=http://host:8080`` opens ``local.db`` with the
``libsql`` package (the optional ``embedded`` extra) as an embedded replica of
the libSQL server at ``sync_url``. Reads run on the local file at disk speed.
Writes go to the primary as one atomic Hrana batch each, through the remote
engine (`LibsqlBackend`: the statements of `storage_core_sqlite.plan`,
request ids recorded in the same batch); then a sync of the replica is queued
on its worker thread, ahead of every later read, so a read after a write sees
it. The replica also syncs when opened (``initialize()``) and every
``sync_interval`` seconds in the background (the driver's own timer), so
other writers' rows show up within that interval.

The ``libsql`` package is blocking: every call on a replica file runs on that
file's one worker thread (as aiosqlite runs sqlite3), shared by the storages
of the process on the file, and the event loop only waits for the answer.
Only ``libsql`` releases before 0.1.9 replicate from sqld: 0.1.9 and later
open the file with Turso Cloud's newer sync protocol, whose endpoints sqld
does not serve (see the backend's README).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from storage_core import (
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    SessionInfo,
    StorageError,
    TransientError,
)
from storage_core.backend import (
    REDACTED,
    AppendRequest,
    AppendResult,
    Capabilities,
    ConversationKey,
    RowValues,
    Secret,
    StorageURL,
    TableRow,
    merge_sessions,
    parse_url,
    table_rows,
)
from storage_core_sqlite import sql
from storage_core_sqlite.plan import (
    before_statement,
    export_statement,
    in_order,
    newest_statement,
    oldest_first,
    sessions_page_statement,
    to_sessions_page,
)

from ._config import Endpoint, RemoteConfig, check_known, seconds_option, token_option
from ._remote import LibsqlBackend

__all__ = ["EmbeddedBackend", "EmbeddedConfig", "embedded_config", "is_embedded"]

log = logging.getLogger("storage_core.libsql")
T = TypeVar("T")

DEFAULT_SYNC_INTERVAL = 5.0
"""Seconds between background syncs unless ``sync_interval`` says otherwise."""
DEFAULT_TIMEOUT = 20.0
_URL_OPTIONS = ("sync_url", "authToken", "sync_interval", "timeout")
_KW_OPTIONS = ("sync_url", "auth_token", "sync_interval", "timeout")
_SYNC_SCHEMES = ("http", "https", "libsql")
# Texts of driver errors (a sync, an open) meaning the primary cannot be
# reached for now. A wrong token shows as a handshake timeout too; it is told
# apart when the remote engine's initialize() is refused first.
_UNREACHABLE = ("Unavailable", "error trying to connect", "Connection refused",
                "Timeout performing handshake", "tcp connect error", "broken pipe",
                "connection closed", "Connection reset", "DeadlineExceeded")
_BUSY = ("SQLITE_BUSY", "database is locked", "database table is locked")
_AUTH = ("Unauthenticated", "PermissionDenied", "status=401", "status=403")
# libsql 0.1.9 and later against sqld: Turso Cloud's sync endpoints are missing.
_NEW_PROTOCOL = ("failed to pull db export", "generation is 0", "status=404")
_SUPPORTED = "libsql>=0.1.2,<0.1.9"


def is_embedded(url: StorageURL, options: Mapping[str, Any]) -> bool:
    """Whether a ``file:`` URL asks for an embedded replica (it names a ``sync_url``)."""
    return "sync_url" in url.query or "sync_url" in options


@dataclass(frozen=True)
class EmbeddedConfig:
    """Everything an `EmbeddedBackend` needs."""

    path: str
    sync_url: str
    """The primary's URL as handed to the driver (http:// or https://, no secret)."""
    shown: str
    """The storage URL as shown to people (secrets hidden)."""
    auth_token: Secret | None = None
    sync_interval: float | None = DEFAULT_SYNC_INTERVAL
    """Seconds between background syncs; None: only on open and after own writes."""
    timeout: float = DEFAULT_TIMEOUT


def embedded_config(url: StorageURL, path: str, options: Mapping[str, Any]) -> EmbeddedConfig:
    """Check the URL and options of an embedded replica of the local file ``path``."""
    check_known("embedded-replica", url, options, _URL_OPTIONS, _KW_OPTIONS)
    if path == ":memory:":
        raise ConfigurationError("an embedded replica needs a database file, not :memory:")
    raw = options.get("sync_url", url.query.get("sync_url"))
    if isinstance(raw, Secret):
        raise ConfigurationError(
            "sync_url takes no user name or password; the auth token goes in auth_token "
            "or the authToken parameter"
        )
    if not isinstance(raw, str) or not raw:
        raise ConfigurationError("sync_url must be the primary's URL: http://, https:// or libsql://")
    sync = parse_url(raw)
    if sync.scheme not in _SYNC_SCHEMES:
        raise ConfigurationError(
            f"sync_url must be http://, https:// or libsql:// (TLS), got {sync.scheme}:"
            " (the replica talks HTTP/2 to the primary, not WebSockets)"
        )
    if sync.opaque or not sync.host:
        raise ConfigurationError("sync_url needs a host: http://host[:port]")
    if sync.username is not None or sync.password is not None or sync.query:
        raise ConfigurationError(
            "sync_url takes no user name, password or parameters; the auth token goes in "
            "auth_token or the authToken parameter"
        )
    scheme = "https" if sync.scheme == "libsql" else sync.scheme
    host = f"[{sync.host}]" if ":" in sync.host else sync.host
    port = f":{sync.port}" if sync.port is not None else ""
    return EmbeddedConfig(
        path=path,
        sync_url=f"{scheme}://{host}{port}",
        shown=url.render(),
        auth_token=token_option(url, options.get("auth_token")),
        sync_interval=_interval(options.get("sync_interval", url.query_value("sync_interval"))),
        timeout=seconds_option("timeout", options.get("timeout", url.query_value("timeout")),
                         DEFAULT_TIMEOUT),
    )


def _interval(value: Any) -> float | None:
    if isinstance(value, str) and value.lower() in ("0", "off", "none"):
        return None
    if value == 0 and not isinstance(value, bool):
        return None
    return seconds_option("sync_interval", value, DEFAULT_SYNC_INTERVAL)


# -- errors ----------------------------------------------------------------


def _translate(exc: BaseException, what: str, token: str | None) -> StorageError:
    """The storage_core error for a ``libsql`` exception (a ValueError or a
    ``libsql.Error`` with the driver's text). The replica runs only reads and
    syncs, so none is ambiguous."""
    text = str(exc)
    if token:
        text = text.replace(token, REDACTED)
    if any(mark in text for mark in _AUTH):
        return AuthenticationError(f"{what}: the libSQL primary rejected the auth token ({text})")
    if any(mark in text for mark in _BUSY):
        return TransientError(f"{what}: the database is busy ({text})")
    if any(mark in text for mark in _UNREACHABLE):
        return TransientError(f"{what}: cannot reach the libSQL primary ({text})")
    if any(mark in text for mark in _NEW_PROTOCOL):
        return ConfigurationError(
            f"{what}: the primary does not serve the sync protocol of the installed libsql "
            f"package (releases from 0.1.9 on sync with Turso Cloud only; sqld needs "
            f"{_SUPPORTED}): {text}"
        )
    return StorageError(f"{what} failed: {text}")


# -- on the worker thread ----------------------------------------------------


def _import_driver() -> Any:
    # The driver logs through Rust's tracing to stderr at INFO by default
    # (a handshake per sync); quiet unless the user asked for RUST_LOG.
    os.environ.setdefault("RUST_LOG", "off")
    try:
        import libsql  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise ConfigurationError(
            "embedded replicas (file: URLs with sync_url) need the libsql package: "
            f"pip install 'storage-core-libsql[embedded]' ({_SUPPORTED})"
        ) from exc
    return libsql


def _open(config: EmbeddedConfig) -> Any:
    libsql = _import_driver()
    token = config.auth_token.reveal() if config.auth_token else ""
    conn = libsql.connect(
        config.path, sync_url=config.sync_url, auth_token=token,
        sync_interval=config.sync_interval, isolation_level=None,
    )
    try:
        conn.sync()
    except BaseException:
        with contextlib.suppress(Exception):
            conn.close()
        raise
    return conn


_PLACEHOLDER = re.compile(r"\?(\d*)")
_I32 = range(-(2**31), 2**31)


def _bind(statement: str, params: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters to hand to ``libsql``.

    Its 0.1.x releases bind a Python int that does not fit in 32 bits as a
    float (a millisecond timestamp is one; 2**53 + 1 comes back as 2**53),
    so such an int goes as text, and its placeholder becomes
    ``CAST(? AS INTEGER)``, which SQLite turns back into the exact integer."""
    big = {i for i, value in enumerate(params) if type(value) is int and value not in _I32}
    if not big:
        return statement, tuple(params)
    last = 0  # the number of the last placeholder seen (plain ``?`` takes the next)

    def wrap(match: re.Match[str]) -> str:
        nonlocal last
        number = int(match.group(1)) if match.group(1) else last + 1
        last = max(last, number)
        return f"CAST({match.group(0)} AS INTEGER)" if number - 1 in big else match.group(0)

    text = _PLACEHOLDER.sub(wrap, statement)
    return text, tuple(str(v) if i in big else v for i, v in enumerate(params))


def _rows(conn: Any, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a read, with `_bind`'s parameters."""
    return [tuple(row) for row in conn.execute(*_bind(statement, params)).fetchall()]


class _Replica:
    """One open replica file of this process: its connection and worker thread,
    shared by every storage opened on the file (one replicator per file)."""

    def __init__(self, key: str, config: EmbeddedConfig, after: Future[None] | None) -> None:
        self.key = key
        self.config = config
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="storage-core-libsql-replica"
        )
        self.users = 0
        self.lock: Any = None
        self.stale = False  # a sync after a write failed: the next read tries again
        self.opened: Future[Any] = self.executor.submit(self._open, after)

    def _open(self, after: Future[None] | None) -> Any:
        if after is not None:
            after.result()  # the file's previous connection is closed first
        self.lock = _lock_file(self.config.path)
        try:
            return _open(self.config)
        except BaseException:
            _unlock_file(self.lock)
            raise

    def sync_after_write(self, conn: Any) -> None:
        """On the worker thread, queued right after a write committed on the
        primary: reads queued after it see the write. A failure does not fail
        the write (committed already); the next read syncs first."""
        try:
            conn.sync()
            self.stale = False
        except Exception as exc:  # logged: the write stands
            self.stale = True
            log.warning("embedded replica %s: sync after a write failed: %s",
                        self.config.shown, _translate(exc, "sync", None))

    def read(self, conn: Any, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """On the worker thread: the rows of a read of the local file. While a
        write of this process has not reached the file (its sync failed), a read
        syncs first, and fails if it cannot: the local state would not show the
        caller's own write (read-your-writes is declared)."""
        if self.stale:
            try:
                conn.sync()
            except Exception as exc:
                raise TransientError(
                    f"embedded replica {self.config.shown}: a write of this storage has "
                    "not reached the local file and the primary cannot be reached to sync "
                    f"({_translate(exc, 'sync', None)})"
                ) from exc
            self.stale = False
        return _rows(conn, statement, params)

    def close(self) -> None:
        """On the worker thread: close the connection, then free the file."""
        try:
            with contextlib.suppress(Exception):
                self.opened.result().close()
        finally:
            _unlock_file(self.lock)


def _lock_file(path: str) -> Any:
    """Hold ``PATH-storage-core.lock`` so that no other process opens the
    replica meanwhile: two replicators writing one file corrupt it (seen
    with libsql 0.1.8: "database disk image is malformed")."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; one process per file is documented
        return None
    handle = open(f"{path}-storage-core.lock", "a+b")  # noqa: SIM115 - held while open
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigurationError(
            f"the replica file {path!r} is open in another process; an embedded replica "
            "file serves one process (give each process its own file)"
        ) from None
    return handle


def _unlock_file(handle: Any) -> None:
    if handle is not None:
        handle.close()  # closing the file releases the lock


_replicas: dict[str, _Replica] = {}
_closing: dict[str, Future[None]] = {}
_replicas_lock = threading.Lock()


def _acquire(config: EmbeddedConfig) -> _Replica:
    key = os.path.realpath(config.path)
    with _replicas_lock:
        replica = _replicas.get(key)
        if replica is None:
            after = _closing.get(key)
            replica = _replicas[key] = _Replica(key, config, after)
        elif replica.config.sync_url != config.sync_url:
            raise ConfigurationError(
                f"the replica file {config.path!r} is already open in this process as a "
                "replica of another primary"
            )
        replica.users += 1
        return replica


def _release(replica: _Replica) -> Future[None] | None:
    """One storage less on the replica; the last one closes it, on its thread
    (the future of that closing)."""
    with _replicas_lock:
        replica.users -= 1
        if replica.users > 0:
            return None
        if _replicas.get(replica.key) is replica:
            del _replicas[replica.key]
        closed = replica.executor.submit(replica.close)
        _closing[replica.key] = closed

        def forget(done: Future[None]) -> None:
            with _replicas_lock:
                if _closing.get(replica.key) is done:
                    del _closing[replica.key]

        closed.add_done_callback(forget)
    replica.executor.shutdown(wait=False)
    return closed


class EmbeddedBackend:
    """A storage_core backend on an embedded replica of a libSQL primary.

    Built by ``make_storage`` from ``file:PATH?sync_url=URL``. Reads run on
    the local file; writes go to the primary as one atomic Hrana batch each
    (the remote engine, `LibsqlBackend`), and a sync is queued ahead of every
    later read before they return. Storages of one process on the same file share one
    connection and worker thread.
    """

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        # One process per replica file (see _lock_file). Own writes are synced
        # before they return; other writers' rows arrive with the next sync, at
        # most sync_interval later.
        self.capabilities = Capabilities(
            shared_across_processes=False, read_your_writes=True, exactly_once=True
        )
        self._primary = LibsqlBackend(RemoteConfig(
            endpoint=Endpoint(config.sync_url, config.sync_url),
            auth_token=config.auth_token,
            timeout=config.timeout,
        ))
        self._replica: _Replica | None = None
        self._conn: Any = None
        self._closed = False

    def __repr__(self) -> str:
        return f"EmbeddedBackend({self.config.shown!r})"

    def _token(self) -> str | None:
        token = self.config.auth_token
        return token.reveal() if token else None

    async def _wait(self, what: str, job: Future[T]) -> T:
        """The result of ``job`` (running on the worker thread), its errors as
        storage_core errors; the event loop is free meanwhile."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()

        def settle(done: Future[T]) -> None:
            def deliver() -> None:
                if answer.cancelled():
                    return
                error = done.exception()
                if error is not None:
                    answer.set_exception(error)
                else:
                    answer.set_result(done.result())

            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(deliver)

        job.add_done_callback(settle)
        try:
            # The job runs to its end on the thread whatever happens here.
            return await asyncio.wait_for(answer, self.config.timeout)
        except asyncio.TimeoutError:
            raise TransientError(
                f"{what}: no answer from the libSQL embedded replica within "
                f"{self.config.timeout:g} s"
            ) from None
        except StorageError:
            raise
        except Exception as exc:
            raise _translate(exc, what, self._token()) from exc

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the worker thread."""
        replica, conn = self._replica, self._conn
        if replica is None or conn is None:
            raise ClosedError("the libSQL embedded replica is closed" if self._closed
                              else "the libSQL embedded replica is not initialized")
        try:
            job = replica.executor.submit(fn, conn, *args)
        except RuntimeError:  # shut down meanwhile
            raise ClosedError("the libSQL embedded replica is closed") from None
        return await self._wait(what, job)

    async def initialize(self) -> None:
        if self._closed:
            raise ClosedError("the libSQL embedded replica is closed")
        if self._replica is not None:
            return
        # The schema is made on the primary (if missing) first, so the first
        # sync of the replica brings it.
        await self._primary.initialize()
        replica = _acquire(self.config)
        try:
            conn = await self._wait("initialize", replica.opened)
            if replica.users > 1:
                await self._wait("initialize", replica.executor.submit(conn.sync))
        except BaseException:
            _release(replica)
            raise
        if self._replica is None and not self._closed:
            self._replica, self._conn = replica, conn
        else:  # closed, or initialized by a concurrent call, meanwhile
            _release(replica)

    async def close(self) -> None:
        self._closed = True
        replica, self._replica, self._conn = self._replica, None, None
        closing = _release(replica) if replica is not None else None
        try:
            if closing is not None:
                # The file is free (another process may open it) once close() returns.
                await self._wait("close", closing)
        finally:
            await self._primary.close()

    def detach(self) -> None:
        """Drop the primary's client, bound to a stopped event loop (the
        replica's connection and thread belong to no loop)."""
        self._primary.detach()

    async def sync(self) -> None:
        """Pull the primary's latest state into the local file now."""
        await self._call("sync", lambda conn: conn.sync())

    async def _synced(self, result: T) -> T:
        """After a write committed on the primary: sync the local file before
        the write returns, so that every later read sees it. A failed sync does
        not fail the committed write: the replica is marked stale, and the next
        read syncs first (see `_Replica.read`)."""
        replica = self._replica
        if replica is not None:
            with contextlib.suppress(ClosedError):  # closed meanwhile
                await self._call("sync", replica.sync_after_write)
        return result

    async def _read(self, what: str, statement: str, params: Sequence[Any]) -> list[Any]:
        replica = self._replica
        if replica is None:
            raise ClosedError("the libSQL embedded replica is closed" if self._closed
                              else "the libSQL embedded replica is not initialized")
        return await self._call(what, replica.read, statement, params)

    # -- the protocol ------------------------------------------------------

    async def append(self, request: AppendRequest) -> AppendResult:
        return await self._synced(await self._primary.append(request))

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[RowValues]:
        statement = newest_statement((key.user_id, key.session_id, key.agent_id), limit)
        return in_order(statement, await self._read("fetch_chat", *statement))

    async def pop(
        self, key: ConversationKey, request_id: str | None = None, replay: bool = False
    ) -> RowValues | None:
        return await self._synced(await self._primary.pop(key, request_id, replay))

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[RowValues]:
        return cast("list[RowValues]",
                    await self._read("fetch_all_chats", sql.SESSION, (user_id, session_id)))

    async def list_sessions(self, user_id: str) -> Sequence[SessionInfo]:
        return merge_sessions(await self._read("list_sessions", sql.SESSIONS, (user_id,)))

    async def list_sessions_page(
        self, user_id: str, limit: int | None, before: SessionInfo | None
    ) -> Sequence[SessionInfo]:
        statement, params = sessions_page_statement(user_id, limit, before)
        return to_sessions_page(await self._read("list_sessions", statement, params))

    async def fetch_before(
        self, key: ConversationKey, limit: int | None, before_index: int
    ) -> Sequence[RowValues]:
        statement, params = before_statement(key, limit, before_index)
        return oldest_first(await self._read("fetch_chat", statement, params))

    async def delete_session(self, user_id: str, session_id: str) -> int:
        return await self._synced(await self._primary.delete_session(user_id, session_id))

    async def delete_conversation(self, key: ConversationKey) -> int:
        return await self._synced(await self._primary.delete_conversation(key))

    async def delete_user(self, user_id: str) -> int:
        return await self._synced(await self._primary.delete_user(user_id))

    # -- table tools -------------------------------------------------------

    async def export_rows(self, after: TableRow | None, limit: int) -> Sequence[TableRow]:
        statement, params = export_statement(after, limit)
        return table_rows(await self._read("export", statement, params))

    async def import_rows(self, rows: Sequence[TableRow]) -> int:
        return await self._synced(await self._primary.import_rows(rows))

    async def prune(self, before_timestamp: int) -> int:
        return await self._synced(await self._primary.prune(before_timestamp))

    async def describe(self) -> dict[str, object]:
        version = await self._read("describe", sql.READ_SCHEMA_VERSION, ())
        indexes = await self._read("describe", sql.INDEXES, ())
        count = await self._read("describe", sql.ROW_COUNT, ())
        return {
            "row_count": int(count[0][0]),
            "schema_version": int(version[0][0]) if version else None,
            "indexes": [str(row[0]) for row in indexes],
            "server": f"libSQL embedded replica {self.config.path} of {self.config.sync_url}",
        }

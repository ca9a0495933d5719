"""Checks of ``storage_core.sync`` on a real backend, shared by the backends' tests.

``check_every_method(storage)`` calls every method of a `SyncChatStorage` once
and checks what it returns; ``hammer(storage)`` makes many calls from several
threads at once and checks that no write was lost. Both namespace their ids
with a fresh random prefix, so the database may be shared with other tests.
"""

from __future__ import annotations

import os
import secrets
import threading

from storage_core import ClosedError, StoredMessage
from storage_core.backend import TableRow
from storage_core.sync import SyncChatStorage

__all__ = ["check_every_method", "hammer", "open_files", "open_sockets"]


def _msg(role: str, text: str, timestamp: int | None = None) -> dict[str, object]:
    message: dict[str, object] = {"role": role, "content": [{"text": text}]}
    if timestamp is not None:
        message["timestamp"] = timestamp
    return message


def _text(message: StoredMessage) -> str:
    text: str = message.content[0]["text"]
    return text


def _texts(messages: list[StoredMessage]) -> list[str]:
    return [_text(m) for m in messages]


def check_every_method(storage: SyncChatStorage) -> None:
    """Every public method once, from a thread without an event loop; closes
    ``storage`` at the end. ``storage`` must keep consecutive roles apart
    (the default rule) and have the table tools (export, import, prune)."""
    p = f"sync-{secrets.token_hex(4)}-"
    user, other = p + "u", p + "v"
    storage.initialize()
    storage.initialize()  # idempotent

    saved = storage.save_chat_message(user, "s1", "a1", _msg("user", "one"))
    assert _texts(saved) == ["one"]
    saved = storage.save_chat_messages(
        user, "s1", "a1", [_msg("assistant", "two"), _msg("user", "three")]
    )
    assert _texts(saved) == ["one", "two", "three"]
    # The role rule: a second "user" in a row is not stored.
    assert storage.append_messages(user, "s1", "a1", [_msg("user", "dropped")]) == []
    stored = storage.append_messages(user, "s1", "a1", [_msg("assistant", "four")])
    assert [(_text(m), m.index) for m in stored] == [("four", 3)]
    assert _texts(storage.fetch_chat(user, "s1", "a1")) == ["one", "two", "three", "four"]
    assert _texts(storage.fetch_chat(user, "s1", "a1", max_history_size=2)) == ["three", "four"]
    trimmed = storage.save_chat_message(user, "s1", "a1", _msg("user", "five"), 3)
    assert _texts(trimmed) == ["three", "four", "five"]
    assert _texts(storage.fetch_chat(user, "s1", "a1")) == ["three", "four", "five"]

    storage.save_chat_message(user, "s1", "a2", _msg("assistant", "other agent"))
    session = storage.fetch_all_chats(user, "s1")
    assert sorted(_texts(session)) == sorted(["three", "[a1] four", "five", "[a2] other agent"])
    storage.save_chat_message(user, "s2", "a1", _msg("user", "second session"))
    assert sorted(s.session_id for s in storage.list_sessions(user)) == ["s1", "s2"]

    popped = storage.pop_message(user, "s1", "a1")
    assert popped is not None
    assert _text(popped) == "five"
    assert _texts(storage.fetch_chat(user, "s1", "a1")) == ["three", "four"]
    assert storage.pop_message(user, "s9", "a1") is None

    # Export streams in pages; importing the rows elsewhere copies them.
    mine = [row for row in storage.export(batch_size=2) if row.user_id == user]
    assert len(mine) == 4  # three, four, other agent, second session
    assert storage.import_rows(mine) == 0  # all there already
    copies = [
        TableRow(other, r.session_id, r.agent_id, r.message_index, r.role, r.content, 1000)
        for r in mine
    ]
    assert storage.import_rows(copies) == 4
    assert _texts(storage.fetch_chat(other, "s1", "a1")) == ["three", "four"]
    # The copies are all older than 2000 ms after the epoch: prune takes them.
    assert storage.prune(2000) >= 4
    assert storage.list_sessions(other) == []

    assert "schema_version" in storage.describe()
    assert storage.delete_session(user, "s2") == 1
    assert storage.delete_conversation(user, "s1", "a2") == 1
    assert _texts(storage.fetch_chat(user, "s1", "a1")) == ["three", "four"]
    assert storage.delete_user(user) == 2
    assert storage.fetch_chat(user, "s1", "a1") == []

    storage.close()
    storage.close()  # idempotent
    try:
        storage.fetch_chat(user, "s1", "a1")
    except ClosedError:
        pass
    else:
        raise AssertionError("a call after close() did not raise ClosedError")


def hammer(storage: SyncChatStorage, *, threads: int = 8, calls: int = 10_000) -> None:
    """``calls`` calls in all from ``threads`` threads at once (appends,
    reads, pops, each thread on its own conversation and on a shared one),
    then check that every write is accounted for. ``storage`` must be made
    with ``skip_consecutive_roles=False``; it is left open."""
    p = f"hammer-{secrets.token_hex(4)}-"
    per_thread = calls // threads
    errors: list[BaseException] = []
    popped: list[StoredMessage] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                step = i % 4
                if step in (0, 1):
                    conversation = "own" if step == 0 else "shared"
                    agent = f"a{n}" if step == 0 else "all"
                    storage.append_messages(p + "u", conversation, agent,
                                            [_msg("user", f"{n}:{i}")])
                elif step == 2:
                    storage.fetch_chat(p + "u", "own", f"a{n}", max_history_size=5)
                elif (message := storage.pop_message(p + "u", "shared", "all")) is not None:
                    popped.append(message)
        except BaseException as exc:  # reported by the caller's thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    appends = sum(1 for i in range(per_thread) if i % 4 == 1)
    for n in range(threads):
        assert len(storage.fetch_chat(p + "u", "own", f"a{n}")) == (per_thread + 3) // 4
    shared = storage.fetch_chat(p + "u", "shared", "all")
    assert len(popped) + len(shared) == appends * threads
    assert len({_text(m) for m in popped}) == len(popped)  # no message popped twice



def _fd_targets() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # closed since the listing (the listing's own fd)
            continue
    return targets


def open_files(prefix: str) -> list[str]:
    """The files this process has open whose path starts with ``prefix``
    (a database, its ``-wal`` and ``-shm``); Linux only."""
    return [t for t in _fd_targets() if t.startswith(prefix)]


def open_sockets() -> set[str]:
    """The sockets this process has open (``socket:[inode]``); Linux only."""
    return {t for t in _fd_targets() if t.startswith("socket:")}

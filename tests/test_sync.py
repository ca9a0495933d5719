"""``storage_core.sync``: the blocking API, on the memory backend.

The same checks on SQLite, PostgreSQL and libSQL live in each backend's
``tests/test_sync.py``; a backend that blocks until cancelled stands in
here only where a call must be caught in the middle (close, Ctrl-C).
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence

import pytest

from storage_core import ChatStorage, ClosedError, RunningLoopError, StorageError, ValidationError
from storage_core import make_storage as make_async_storage
from storage_core.backend import ConversationKey, MemoryBackend, StoredRow
from storage_core.sync import SyncChatStorage, make_storage
from storage_core_conformance.sync import check_every_method, hammer

MESSAGE = {"role": "user", "content": [{"text": "hi"}]}

# Every public method with arguments that would be valid.
CALLS: dict[str, tuple[object, ...]] = {
    "initialize": (),
    "close": (),
    "save_chat_message": ("u", "s", "a", MESSAGE),
    "save_chat_messages": ("u", "s", "a", [MESSAGE]),
    "append_messages": ("u", "s", "a", [MESSAGE]),
    "pop_message": ("u", "s", "a"),
    "fetch_chat": ("u", "s", "a"),
    "fetch_all_chats": ("u", "s"),
    "list_sessions": ("u",),
    "delete_session": ("u", "s"),
    "delete_conversation": ("u", "s", "a"),
    "delete_user": ("u",),
    "export": (),
    "import_rows": ([],),
    "prune": (1,),
    "describe": (),
}


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "storage_core-loop"]


class BlockingBackend(MemoryBackend):
    """The memory backend, whose ``fetch`` waits until cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching = threading.Event()
        self.cancelled = threading.Event()

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[StoredRow]:
        self.fetching.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")


def test_every_method_round_trips() -> None:
    check_every_method(make_storage("memory://"))
    assert _loop_threads() == []


def test_every_public_method_of_chat_storage_is_here_with_the_same_parameters() -> None:
    public = {
        name for name, value in inspect.getmembers(ChatStorage)
        if not name.startswith("_") and callable(value)
    }
    assert public == set(CALLS)
    for name in public:
        theirs = inspect.signature(getattr(ChatStorage, name))
        ours = inspect.signature(getattr(SyncChatStorage, name))
        assert list(ours.parameters.values()) == list(theirs.parameters.values()), name
        assert not inspect.iscoroutinefunction(getattr(SyncChatStorage, name)), name
    for name in ("url", "capabilities", "limits"):
        assert isinstance(getattr(SyncChatStorage, name), property), name


def test_calls_work_from_a_thread_that_never_had_an_event_loop() -> None:
    results: list[object] = []

    def work() -> None:
        with make_storage("memory://") as storage:
            storage.save_chat_message("u", "s", "a", MESSAGE)
            results.append([m.content for m in storage.fetch_chat("u", "s", "a")])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == [[[{"text": "hi"}]]]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_call_inside_a_running_loop_is_refused_at_once(name: str) -> None:
    storage = make_storage("memory://")

    async def main() -> None:
        with pytest.raises(RunningLoopError) as caught:
            getattr(storage, name)(*CALLS[name])
        assert f"await storage.async_storage.{name}(" in str(caught.value)
        assert isinstance(caught.value, StorageError)
        assert isinstance(caught.value, RuntimeError)

    asyncio.run(main())
    assert storage.fetch_chat("u", "s", "a") == []  # a refused save stored nothing
    storage.close()


def test_a_call_from_another_thread_running_its_own_loop_is_refused() -> None:
    errors: list[BaseException] = []
    with make_storage("memory://") as storage:

        async def in_that_thread() -> None:
            try:
                storage.save_chat_message("u", "s", "a", MESSAGE)
            except RunningLoopError as exc:
                errors.append(exc)

        thread = threading.Thread(target=asyncio.run, args=(in_that_thread(),))
        thread.start()
        thread.join()
        assert len(errors) == 1
        assert storage.fetch_chat("u", "s", "a") == []


def test_a_call_from_the_async_side_of_the_same_storage_still_works() -> None:
    # The refusal points at async_storage: awaiting it there works.
    with make_storage("memory://pointed") as storage:

        async def main() -> int:
            await storage.async_storage.save_chat_message("u", "s", "a", MESSAGE)
            return len(await storage.async_storage.fetch_chat("u", "s", "a"))

        assert asyncio.run(main()) == 1
        assert len(storage.fetch_chat("u", "s", "a")) == 1


def test_wrapping_a_storage_an_async_program_used_before() -> None:
    async_storage = make_async_storage("memory://", skip_consecutive_roles=False)
    asyncio.run(async_storage.save_chat_message("u", "s", "a", MESSAGE))
    with SyncChatStorage(async_storage) as storage:
        assert storage.async_storage is async_storage
        storage.save_chat_message("u", "s", "a", MESSAGE)
        assert len(storage.fetch_chat("u", "s", "a")) == 2
    with pytest.raises(ClosedError):
        asyncio.run(async_storage.fetch_chat("u", "s", "a"))


def test_only_a_chat_storage_is_wrapped() -> None:
    with pytest.raises(TypeError, match="wraps a ChatStorage"):
        SyncChatStorage("memory://")  # type: ignore[arg-type]


def test_bad_input_is_a_validation_error_and_stores_nothing() -> None:
    with make_storage("memory://") as storage:
        storage.save_chat_message("u", "s", "a", MESSAGE)
        batch = [{"role": "assistant", "content": "ok"}, {"role": "user", "content": {1, 2}}]
        with pytest.raises(ValidationError, match=r"1"):
            storage.save_chat_messages("u", "s", "a", batch)
        assert len(storage.fetch_chat("u", "s", "a")) == 1


def test_calls_after_close_raise_closed_error_and_the_loop_thread_is_gone() -> None:
    before = _loop_threads()
    storage = make_storage("memory://")
    storage.save_chat_message("u", "s", "a", MESSAGE)
    assert len(_loop_threads()) == len(before) + 1
    storage.close()
    assert _loop_threads() == before
    storage.close()  # idempotent
    for name in sorted(set(CALLS) - {"close"}):
        with pytest.raises(ClosedError):
            getattr(storage, name)(*CALLS[name])
    assert "(closed)" in repr(storage)


def test_with_closes_also_when_the_body_raises() -> None:
    with pytest.raises(ZeroDivisionError), make_storage("memory://") as storage:
        1 / 0  # noqa: B018
    with pytest.raises(ClosedError):
        storage.fetch_chat("u", "s", "a")


def test_close_ends_a_call_still_running_in_another_thread() -> None:
    backend = BlockingBackend()
    storage = SyncChatStorage(ChatStorage(backend))
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            storage.fetch_chat("u", "s", "a")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=blocked)
    thread.start()
    assert backend.fetching.wait(5)
    storage.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ClosedError)
    assert backend.cancelled.is_set()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach the main thread only")
def test_ctrl_c_during_a_call_cancels_it_and_raises_keyboard_interrupt() -> None:
    backend = BlockingBackend()
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        if backend.fetching.wait(5):
            signal.pthread_kill(main, signal.SIGINT)

    with SyncChatStorage(ChatStorage(backend)) as storage:
        threading.Thread(target=interrupt).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            storage.fetch_chat("u", "s", "a")
        assert time.monotonic() - started < 5
        assert backend.cancelled.wait(5)  # the call on the loop thread was cancelled
        storage.save_chat_message("u", "s", "a", MESSAGE)  # still usable


def test_export_stops_early_and_the_storage_stays_usable() -> None:
    with make_storage("memory://", skip_consecutive_roles=False) as storage:
        storage.append_messages("u", "s", "a", [MESSAGE] * 10)
        rows = storage.export(batch_size=3)
        first = [next(rows) for _ in range(4)]
        assert [r.message_index for r in first] == [0, 1, 2, 3]
        del rows
        assert len(list(storage.export(batch_size=3))) == 10
        with pytest.raises(ValidationError):
            list(storage.export(batch_size=0))


def test_repr_and_errors_show_no_secret() -> None:
    secret = "s3cret-pw"
    url = f"postgresql://me:{secret}@db.example/chat"
    storage = SyncChatStorage(ChatStorage(MemoryBackend(), url=url, secrets=[secret]))
    assert secret not in repr(storage)
    assert secret not in storage.url
    storage.close()
    with pytest.raises(ClosedError) as caught:
        storage.fetch_chat("u", "s", "a")
    assert secret not in str(caught.value)


def test_a_collected_storage_stops_its_loop_thread() -> None:
    before = _loop_threads()
    storage = make_storage("memory://")
    storage.save_chat_message("u", "s", "a", MESSAGE)
    with pytest.warns(ResourceWarning, match="never closed"):
        del storage  # no reference cycle: collected at once
    assert _loop_threads() == before


def test_a_storage_never_closed_does_not_keep_the_program_from_exiting() -> None:
    program = textwrap.dedent("""
        from storage_core.sync import make_storage

        storage = make_storage("memory://")
        storage.save_chat_message("u", "s", "a", {"role": "user", "content": "hi"})
        print(len(storage.fetch_chat("u", "s", "a")))
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert "Traceback" not in result.stderr


def test_many_calls_from_many_threads_leave_no_thread_behind() -> None:
    before = set(threading.enumerate())
    storage = make_storage("memory://", skip_consecutive_roles=False)
    hammer(storage, threads=8, calls=10_000)
    storage.close()
    assert set(threading.enumerate()) == before

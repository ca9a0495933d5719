"""ChatStorage behaviour that no backend influences: lifecycle, retries, secrets."""

import logging

import pytest

from storage_core import (
    Capabilities,
    ChatStorage,
    ClosedError,
    ConfigurationError,
    RetryPolicy,
    StorageError,
    TransientError,
    ValidationError,
    make_storage,
)
from storage_core.backend import (
    AppendRequest,
    AppendResult,
    ConversationKey,
    MemoryBackend,
    SupportsDeleteConversation,
)

FAST = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)


class FlakyBackend(MemoryBackend):
    """The reference backend, failing the first ``failures`` appends."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures, self.error, self.calls = failures, error, 0

    async def append(self, request: AppendRequest) -> AppendResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return await super().append(request)


MSG = {"role": "user", "content": [{"text": "hi"}]}


@pytest.mark.asyncio
async def test_lifecycle() -> None:
    storage = make_storage("memory://")
    await storage.initialize()
    await storage.initialize()
    await storage.save_chat_message("u", "s", "a", MSG)
    await storage.close()
    await storage.close()
    with pytest.raises(ClosedError):
        await storage.fetch_chat("u", "s", "a")
    with pytest.raises(ClosedError):
        await storage.initialize()


@pytest.mark.asyncio
async def test_first_call_initializes() -> None:
    async with make_storage("memory://") as storage:
        assert await storage.fetch_chat("u", "s", "a") == []


@pytest.mark.asyncio
async def test_transient_errors_are_retried() -> None:
    backend = FlakyBackend(2, TransientError("connection reset"))
    storage = ChatStorage(backend, retry=FAST)
    saved = await storage.save_chat_message("u", "s", "a", MSG)
    assert [m.index for m in saved] == [0] and backend.calls == 3


@pytest.mark.asyncio
async def test_retries_are_bounded() -> None:
    backend = FlakyBackend(10, TransientError("connection reset"))
    storage = ChatStorage(backend, retry=FAST)
    with pytest.raises(TransientError):
        await storage.save_chat_message("u", "s", "a", MSG)
    assert backend.calls == 3
    assert await storage.fetch_chat("u", "s", "a") == []


class AtMostOnceBackend(FlakyBackend):
    """A backend written before request ids: no exactly_once capability."""

    capabilities = Capabilities(shared_across_processes=False, persistent=False)


class CommitThenFailBackend(MemoryBackend):
    """Commits the first ``failures`` writes, then loses the answer."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures, self.calls, self.requests = failures, 0, []

    async def append(self, request: AppendRequest) -> AppendResult:
        self.calls += 1
        self.requests.append(request)
        result = await super().append(request)
        if self.calls <= self.failures:
            raise TransientError("connection lost after commit", ambiguous=True)
        return result

    async def pop(self, key, request_id=None, replay=False):  # type: ignore[no-untyped-def]
        self.calls += 1
        row = await super().pop(key, request_id, replay)
        if self.calls <= self.failures:
            raise TransientError("connection lost after commit", ambiguous=True)
        return row


@pytest.mark.asyncio
async def test_ambiguous_writes_are_not_repeated_without_exactly_once() -> None:
    backend = AtMostOnceBackend(1, TransientError("lost after send", ambiguous=True))
    storage = ChatStorage(backend, retry=FAST)
    with pytest.raises(TransientError) as info:
        await storage.save_chat_message("u", "s", "a", MSG)
    assert info.value.ambiguous and backend.calls == 1
    assert info.value.request_id is None
    with pytest.raises(ConfigurationError, match="request_id"):
        await storage.save_chat_message("u", "s", "a", MSG, request_id="r1")
    assert await storage.fetch_chat("u", "s", "a") == []


@pytest.mark.asyncio
async def test_ambiguous_writes_are_repeated_with_their_request_id() -> None:
    backend = CommitThenFailBackend(2)
    storage = ChatStorage(backend, retry=FAST)
    saved = await storage.save_chat_messages(
        "u", "s", "a", [MSG, {"role": "assistant", "content": [{"text": "yo"}]}]
    )
    assert [m.index for m in saved] == [0, 1] and backend.calls == 3
    ids = {r.request_id for r in backend.requests}
    assert len(ids) == 1 and None not in ids
    assert [r.replay for r in backend.requests] == [False, True, True]
    # The core made the id: a backend that never fails ambiguously may skip its record.
    assert [r.must_record for r in backend.requests] == [False, False, False]
    assert [m.index for m in await storage.fetch_chat("u", "s", "a")] == [0, 1]


@pytest.mark.asyncio
async def test_a_callers_request_id_must_be_recorded_on_every_try() -> None:
    backend = CommitThenFailBackend(1)
    storage = ChatStorage(backend, retry=FAST)
    await storage.append_messages("u", "s", "a", [MSG], request_id="mine")
    assert [(r.request_id, r.replay, r.must_record) for r in backend.requests] == [
        ("mine", True, True), ("mine", True, True)
    ]


@pytest.mark.asyncio
async def test_a_write_failing_ambiguously_for_good_names_its_request_id() -> None:
    backend = CommitThenFailBackend(10)
    storage = ChatStorage(backend, retry=FAST)
    with pytest.raises(TransientError) as info:
        await storage.append_messages("u", "s", "a", [MSG])
    error = info.value
    assert error.ambiguous and error.request_id is not None and backend.calls == 3
    # Repeating with that id settles it: stored once, the original index back.
    backend.failures = 0
    again = await storage.append_messages("u", "s", "a", [MSG], request_id=error.request_id)
    assert [m.index for m in again] == [0]
    assert len(await storage.fetch_chat("u", "s", "a")) == 1


@pytest.mark.asyncio
async def test_a_pop_failing_ambiguously_is_repeated_without_popping_twice() -> None:
    backend = CommitThenFailBackend(0)
    storage = ChatStorage(backend, retry=FAST)
    await storage.save_chat_messages(
        "u", "s", "a", [MSG, {"role": "assistant", "content": [{"text": "yo"}]}]
    )
    backend.failures = backend.calls + 1
    popped = await storage.pop_message("u", "s", "a")
    assert popped is not None and popped.index == 1
    assert [m.index for m in await storage.fetch_chat("u", "s", "a")] == [0]


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", ["", 7, None.__class__, "x" * 801, "a\ud800b"])
async def test_bad_request_ids_are_refused(bad: object) -> None:
    storage = ChatStorage(MemoryBackend())
    with pytest.raises(ValidationError, match="request_id"):
        await storage.save_chat_message("u", "s", "a", MSG, request_id=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="request_id"):
        await storage.pop_message("u", "s", "a", request_id=bad)  # type: ignore[arg-type]
    assert await storage.fetch_chat("u", "s", "a") == []


@pytest.mark.asyncio
async def test_other_errors_are_not_retried() -> None:
    backend = FlakyBackend(1, StorageError("constraint"))
    storage = ChatStorage(backend, retry=FAST)
    with pytest.raises(StorageError, match="constraint"):
        await storage.save_chat_message("u", "s", "a", MSG)
    assert backend.calls == 1


@pytest.mark.asyncio
async def test_driver_errors_are_wrapped_and_secrets_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = FlakyBackend(1, OSError("could not auth with password hunter2"))
    storage = ChatStorage(backend, retry=FAST, secrets=["hunter2"], url="x://u:hunter2@h/")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StorageError) as info:
        await storage.save_chat_message("u", "s", "a", MSG)
    assert isinstance(info.value.__cause__, OSError)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
    assert "hunter2" not in repr(storage) and "hunter2" not in caplog.text


@pytest.mark.asyncio
async def test_validation_happens_before_the_backend() -> None:
    backend = FlakyBackend(0, TransientError("unused"))
    storage = ChatStorage(backend)
    with pytest.raises(ValidationError):
        await storage.save_chat_messages(
            "u", "s", "a", [MSG, {"role": "assistant", "content": {1}}]
        )
    assert backend.calls == 0


def test_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="trim"):
        make_storage("memory://", trim="halves")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="memory:// takes no options"):
        make_storage("memory://", auth_token="x")
    with pytest.raises(ConfigurationError, match="attempts"):
        RetryPolicy(attempts=0)


@pytest.mark.asyncio
async def test_named_memory_stores_are_shared() -> None:
    async with make_storage("memory://shared-test") as one, \
            make_storage("memory://shared-test") as two:
        await one.save_chat_message("u", "s", "a", MSG)
        assert len(await two.fetch_chat("u", "s", "a")) == 1


def test_retry_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=0.5)
    for attempt in range(1, 8):
        assert 0 <= policy.delay(attempt) <= min(0.5, 0.1 * 2 ** (attempt - 1))




class FailingInit(MemoryBackend):
    closed = False

    async def initialize(self) -> None:
        raise StorageError("cannot connect")

    async def close(self) -> None:
        self.closed = True


@pytest.mark.asyncio
async def test_async_with_closes_when_initialize_fails() -> None:
    backend = FailingInit()
    with pytest.raises(StorageError, match="cannot connect"):
        async with ChatStorage(backend, retry=FAST):
            pass
    assert backend.closed


class NoDeleteConversation:
    """A complete backend without the optional ``delete_conversation``: the
    memory backend's required calls, passed through."""

    def __init__(self) -> None:
        self.inner = MemoryBackend()
        self.capabilities = self.inner.capabilities
        self.initialize = self.inner.initialize
        self.append = self.inner.append
        self.fetch = self.inner.fetch
        self.fetch_session = self.inner.fetch_session
        self.list_sessions = self.inner.list_sessions
        self.delete_session = self.inner.delete_session
        self.delete_user = self.inner.delete_user
        self.close = self.inner.close


@pytest.mark.asyncio
async def test_delete_conversation_needs_the_backend_to_support_it() -> None:
    backend = NoDeleteConversation()
    assert not isinstance(backend, SupportsDeleteConversation)
    async with ChatStorage(backend) as storage:
        await storage.save_chat_message("u", "s", "a", MSG)
        with pytest.raises(ConfigurationError, match=r"NoDeleteConversation.*delete_conversation"):
            await storage.delete_conversation("u", "s", "a")
        with pytest.raises(ValidationError):  # ids are checked first
            await storage.delete_conversation("u", "", "a")
        assert len(await storage.fetch_chat("u", "s", "a")) == 1


class FlakyDelete(MemoryBackend):
    """The memory backend, failing the first ``delete_conversation``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def delete_conversation(self, key: ConversationKey) -> int:
        self.calls += 1
        if self.calls == 1:
            raise TransientError("lost after send", ambiguous=True)
        return await super().delete_conversation(key)


@pytest.mark.asyncio
async def test_delete_conversation_is_retried_like_delete_session() -> None:
    # Idempotent, so retried even after a failure that may have committed.
    backend = FlakyDelete()
    storage = ChatStorage(backend, retry=FAST)
    await storage.save_chat_message("u", "s", "a", MSG)
    await storage.save_chat_message("u", "s", "b", MSG)
    assert await storage.delete_conversation("u", "s", "a") == 1
    assert backend.calls == 2
    assert len(await storage.fetch_chat("u", "s", "b")) == 1

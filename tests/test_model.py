"""StoredMessage: content decoded on first access, and otherwise a plain value object."""

import copy
import gc
import pickle

import pytest

from storage_core import StorageError, StoredMessage, make_storage
from storage_core._model import messages_from_rows
from storage_core.backend import AppendRequest, ConversationKey, NewRow

TEXT = '[{"text": "h\\u00e9llo"}, {"n": 1.5, "ok": true, "none": null}]'
VALUE = [{"text": "héllo"}, {"n": 1.5, "ok": True, "none": None}]


def test_content_is_decoded_on_first_access_and_kept() -> None:
    message = StoredMessage.from_json("user", TEXT, 7, 3, "support")
    first = message.content
    assert first == VALUE
    assert message.content is first  # decoded once, then kept


def test_lazy_and_eager_messages_are_equal_and_look_alike() -> None:
    lazy = StoredMessage.from_json("user", TEXT, 7, 3, "support")
    eager = StoredMessage("user", VALUE, 7, 3, "support")
    assert lazy == eager
    assert repr(lazy) == repr(eager)
    assert lazy.to_dict() == eager.to_dict() == {
        "role": "user", "content": VALUE, "timestamp": 7, "index": 3, "agent_id": "support",
    }
    assert lazy != StoredMessage("user", VALUE, 7, 4, "support")
    assert lazy != ("user", VALUE, 7, 3, "support")


def test_messages_are_mutable_copyable_and_picklable_but_not_hashable() -> None:
    message = StoredMessage.from_json("user", TEXT, 7, 3, "support")
    clone = pickle.loads(pickle.dumps(message))
    assert clone == message
    assert copy.deepcopy(message) == message
    message.content = ["changed"]
    assert message.content == ["changed"]
    assert clone.content == VALUE
    with pytest.raises(TypeError):
        hash(message)
    match message:
        case StoredMessage("user", ["changed"], 7, 3, "support"):
            pass
        case _:
            pytest.fail("positional match on (role, content, timestamp, index, agent_id)")


@pytest.mark.asyncio
async def test_content_that_is_not_json_fails_on_access_with_a_storage_error() -> None:
    # A row written by something else than storage_core, straight into the backend.
    async with make_storage("memory://") as storage:
        key = ConversationKey("u", "s", "a")
        await storage.backend.append(AppendRequest(
            key, [NewRow("user", '{"oops": ', 1)], False, None, False, None
        ))
        (message,) = await storage.fetch_chat("u", "s", "a")
        assert (message.role, message.index, message.timestamp) == ("user", 0, 1)
        with pytest.raises(StorageError, match=r"message 0 of agent 'a' .*not valid JSON"):
            _ = message.content


def _rows(count: int) -> list[tuple[str, int, str, str, int]]:
    return [("a", i, "user", '[{"text": "hi"}]', i) for i in range(count)]


def test_a_large_build_runs_no_garbage_collection() -> None:
    # Collections during a build of thousands of live objects are what
    # stalled the event loop (docs/performance.md, W6).
    runs: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    rows = _rows(20_000)
    gc.collect()
    gc.callbacks.append(count)
    try:
        messages = messages_from_rows(rows)
    finally:
        gc.callbacks.remove(count)
    assert runs == [] and len(messages) == 20_000
    assert gc.isenabled()
    assert [m.index for m in messages[:3]] == [0, 1, 2] and messages[-1].content == [{"text": "hi"}]


def test_a_build_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        messages_from_rows(_rows(5_000))
        assert not gc.isenabled()
    finally:
        gc.enable()

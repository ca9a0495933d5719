"""StorageCoreChatMessageHistory: LangChain's chat history on every backend."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
    ToolMessageChunk,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from storage_core import ConfigurationError, ValidationError, make_storage
from storage_core.errors import RunningLoopError
from storage_core.integrations.langchain import StorageCoreChatMessageHistory
from storage_core.sync import SyncChatStorage

# Every message type, with the fields that are easiest to lose.
MESSAGES: list[BaseMessage] = [
    SystemMessage("You are terse.", id="sys-1"),
    HumanMessage("Weather in Paris? ünïcödé ☀", name="ann", additional_kwargs={"k": [1, 2.5]}),
    AIMessage(
        content="",
        id="ai-1",
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"},
                    {"name": "get_time", "args": {}, "id": "call_2"}],
        invalid_tool_calls=[{"name": "bad", "args": "{not json", "id": "call_3",
                             "error": "parse", "type": "invalid_tool_call"}],
        usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
        response_metadata={"model_name": "fake", "finish_reason": "tool_calls"},
        additional_kwargs={"refusal": None},
    ),
    ToolMessage("sunny", tool_call_id="call_1", artifact={"raw": [1, 2]}, status="success"),
    ToolMessage("error", tool_call_id="call_2", status="error"),
    AIMessage(content=[{"type": "text", "text": "Sunny."}], name="bot"),
    AIMessage("Anything else?"),
    ChatMessage(role="critic", content="fine"),
    FunctionMessage(name="legacy_fn", content="42"),
    HumanMessageChunk(content="a chunk"),
    AIMessageChunk(content="streamed", tool_call_chunks=[
        {"name": "f", "args": '{"a": 1}', "id": "call_4", "index": 0}
    ]),
    ToolMessageChunk(content="part", tool_call_id="call_4"),
]


@pytest.fixture
def history(storage_url: str, session_id: str) -> Iterator[StorageCoreChatMessageHistory]:
    h = StorageCoreChatMessageHistory(session_id, storage_url, user_id="u1")
    yield h
    h.close()


def test_every_message_type_round_trips(
    history: StorageCoreChatMessageHistory, storage_url: str, session_id: str
) -> None:
    history.add_messages(MESSAGES[:5])
    history.add_messages(MESSAGES[5:])
    assert history.messages == MESSAGES
    assert [type(m) for m in history.messages] == [type(m) for m in MESSAGES]
    # Stored, not cached: a second history object reads the same.
    again = StorageCoreChatMessageHistory(session_id, storage_url, user_id="u1")
    try:
        assert again.messages == MESSAGES
    finally:
        again.close()


@pytest.mark.asyncio
async def test_every_message_type_round_trips_async(storage_url: str, session_id: str) -> None:
    history = StorageCoreChatMessageHistory(session_id, storage_url)
    try:
        await history.aadd_messages(MESSAGES)
        assert await history.aget_messages() == MESSAGES
        await history.aclear()
        assert await history.aget_messages() == []
    finally:
        await history.aclose()


def test_add_message_and_repeated_types(history: StorageCoreChatMessageHistory) -> None:
    """Two tool results and two AI messages in a row are all stored."""
    for message in MESSAGES[2:7]:
        history.add_message(message)
    history.add_user_message("one")
    history.add_user_message("two")
    assert history.messages == [*MESSAGES[2:7], HumanMessage("one"), HumanMessage("two")]


def test_clear(storage_url: str, session_id: str) -> None:
    with SyncChatStorage(make_storage(storage_url, skip_consecutive_roles=False)) as storage:
        history = StorageCoreChatMessageHistory(session_id, storage)
        other = StorageCoreChatMessageHistory(session_id + "-other", storage)
        history.add_messages(MESSAGES)
        other.add_messages(MESSAGES[:1])
        history.clear()
        assert history.messages == []
        assert other.messages == MESSAGES[:1]
        history.add_messages(MESSAGES[:2])
        assert history.messages == MESSAGES[:2]


def test_clear_keeps_other_agents_of_the_session(storage_url: str, session_id: str) -> None:
    with SyncChatStorage(make_storage(storage_url, skip_consecutive_roles=False)) as storage:
        history = StorageCoreChatMessageHistory(session_id, storage, user_id="u1")
        helper = StorageCoreChatMessageHistory(
            session_id, storage, user_id="u1", agent_id="helper"
        )
        history.add_messages(MESSAGES)
        helper.add_messages(MESSAGES[:2])
        history.clear()
        assert history.messages == []
        assert helper.messages == MESSAGES[:2]


@pytest.mark.asyncio
async def test_aclear_keeps_other_agents_of_the_session(storage_url: str, session_id: str) -> None:
    async with make_storage(storage_url, skip_consecutive_roles=False) as storage:
        history = StorageCoreChatMessageHistory(session_id, storage, user_id="u1")
        helper = StorageCoreChatMessageHistory(
            session_id, storage, user_id="u1", agent_id="helper"
        )
        await history.aadd_messages(MESSAGES)
        await helper.aadd_messages(MESSAGES[:2])
        await history.aclear()
        assert await history.aget_messages() == []
        assert await helper.aget_messages() == MESSAGES[:2]


def test_max_history_size_trims_on_write(storage_url: str, session_id: str) -> None:
    history = StorageCoreChatMessageHistory(session_id, storage_url, max_history_size=3)
    try:
        history.add_messages(MESSAGES[:2])
        assert history.messages == MESSAGES[:2]
        history.add_messages(MESSAGES[2:6])
        assert history.messages == MESSAGES[3:6]
        history.add_message(MESSAGES[6])
        assert history.messages == MESSAGES[4:7]
        # Deleted from the store, not only left out of what is read back.
        rows = history._sync("check").fetch_all_chats("default", session_id)
        assert len(rows) == 3
    finally:
        history.close()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("a plain string", r"messages\[1\] must be a LangChain BaseMessage, not str"),
        ({"type": "human", "data": {"content": "x"}}, r"messages\[1\] must be a LangChain"),
        (HumanMessage("x", additional_kwargs={"s": {1, 2}}), r"messages\[1\] content"),
        (AIMessage("x", response_metadata={"obj": object()}), r"messages\[1\] content"),
    ],
)
def test_bad_messages_are_refused_and_nothing_is_written(
    history: StorageCoreChatMessageHistory, bad: Any, match: str
) -> None:
    history.add_messages(MESSAGES[:1])
    with pytest.raises(ValidationError, match=match):
        history.add_messages([MESSAGES[1], bad, MESSAGES[2]])
    assert history.messages == MESSAGES[:1]


def test_messages_must_be_a_list(history: StorageCoreChatMessageHistory) -> None:
    with pytest.raises(ValidationError, match="messages must be a list"):
        history.add_messages(HumanMessage("x"))  # type: ignore[arg-type]


def test_bad_arguments_are_refused_and_leak_no_thread() -> None:
    before = set(threading.enumerate())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValidationError, match="max_history_size"):
            StorageCoreChatMessageHistory("s", "memory://", max_history_size=0)
        with pytest.raises(ValidationError, match="session_id"):
            StorageCoreChatMessageHistory("", "memory://")
        with pytest.raises(ValidationError, match="agent_id"):
            StorageCoreChatMessageHistory("s", "memory://", agent_id="x" * 10_000)
        gc.collect()
    # Closed, not left to the collector (which warns that it was never closed).
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert set(threading.enumerate()) <= before


@pytest.mark.asyncio
async def test_sync_methods_refuse_a_running_loop(session_id: str) -> None:
    history = StorageCoreChatMessageHistory(session_id, "memory://")
    try:
        with pytest.raises(RunningLoopError, match="running event loop"):
            history.messages  # noqa: B018
        await history.aadd_messages(MESSAGES[:1])
        assert await history.aget_messages() == MESSAGES[:1]
    finally:
        await history.aclose()


@pytest.mark.asyncio
async def test_a_ready_chat_storage_serves_the_async_methods(session_id: str) -> None:
    async with make_storage("memory://", skip_consecutive_roles=False) as storage:
        history = StorageCoreChatMessageHistory(session_id, storage, agent_id="lc")
        await history.aadd_messages(MESSAGES[3:5])
        stored = await storage.fetch_chat("default", session_id, "lc")
        assert [m.role for m in stored] == ["tool", "tool"]
        with pytest.raises(ConfigurationError, match="SyncChatStorage"):
            await asyncio.to_thread(lambda: history.messages)
        await history.aclose()  # not ours: the storage stays open
        assert await history.aget_messages() == MESSAGES[3:5]


def test_threads_lose_no_writes_and_leak_no_threads(storage_url: str, session_id: str) -> None:
    before = set(threading.enumerate())
    history = StorageCoreChatMessageHistory(session_id, storage_url)

    def worker(w: int) -> None:
        for i in range(10):
            history.add_messages([HumanMessage(f"q{w}-{i}"), AIMessage(f"a{w}-{i}")])

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = history.messages
    assert len(stored) == 160
    pairs = list(zip(stored[::2], stored[1::2], strict=True))
    assert all(q.content[1:] == a.content[1:] for q, a in pairs)  # batches stay whole
    history.close()
    deadline = time.monotonic() + 5  # a driver's worker thread may take a moment to end
    while not set(threading.enumerate()) <= before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) <= before


def test_secrets_stay_out_of_the_repr() -> None:
    history = StorageCoreChatMessageHistory("s", "postgresql://app:hunter2@127.0.0.1:1/chat")
    try:
        assert "hunter2" not in repr(history)
    finally:
        history.close()


# -- with RunnableWithMessageHistory -------------------------------------------


def _chain(storage_url: str) -> tuple[RunnableWithMessageHistory, list[Any]]:
    model = GenericFakeChatModel(messages=iter([AIMessage("Hello Ann."),
                                                AIMessage("Your name is Ann.")]))
    prompt = ChatPromptTemplate.from_messages([
        ("system", "You are helpful."),
        MessagesPlaceholder("history"),
        ("human", "{question}"),
    ])
    opened: list[Any] = []

    def get_history(session_id: str) -> StorageCoreChatMessageHistory:
        h = StorageCoreChatMessageHistory(session_id, storage_url)
        opened.append(h)
        return h

    chain = RunnableWithMessageHistory(
        prompt | model, get_history, input_messages_key="question",
        history_messages_key="history",
    )
    return chain, opened


def test_runnable_with_message_history(storage_url: str, session_id: str) -> None:
    chain, opened = _chain(storage_url)
    config: Any = {"configurable": {"session_id": session_id}}
    try:
        assert chain.invoke({"question": "I am Ann."}, config).content == "Hello Ann."
        assert chain.invoke({"question": "Who am I?"}, config).content == "Your name is Ann."
        assert opened[-1].messages == [
            HumanMessage("I am Ann."), AIMessage("Hello Ann.", id=opened[-1].messages[1].id),
            HumanMessage("Who am I?"), AIMessage("Your name is Ann.",
                                                 id=opened[-1].messages[3].id),
        ]
    finally:
        for h in opened:
            h.close()


@pytest.mark.asyncio
async def test_runnable_with_message_history_async(storage_url: str, session_id: str) -> None:
    chain, opened = _chain(storage_url)
    config: Any = {"configurable": {"session_id": session_id}}
    try:
        await chain.ainvoke({"question": "I am Ann."}, config)
        reply = await chain.ainvoke({"question": "Who am I?"}, config)
        assert reply.content == "Your name is Ann."
        assert [m.content for m in await opened[-1].aget_messages()] == [
            "I am Ann.", "Hello Ann.", "Who am I?", "Your name is Ann."
        ]
    finally:
        for h in opened:
            await h.aclose()

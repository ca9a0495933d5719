"""Recognising tool results (storage_core._tool_calls) and the ``tool-safe`` trim."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_core import StoredMessage, make_storage
from storage_core._tool_calls import is_tool_result, leading_tool_results

RESULTS: list[tuple[str, Any]] = [
    ("user", [{"toolResult": {"toolUseId": "t1", "content": [{"text": "42"}]}}]),
    ("user", {"toolResult": {"toolUseId": "t1", "content": []}}),
    ("user", [{"text": "see below"}, {"toolResult": {"toolUseId": "t1", "content": []}}]),
    ("user", [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]),
    ("user", {"type": "tool_result", "tool_use_id": "t1"}),
    ("tool", "42"),
    ("tool", {"type": "tool", "data": {"content": "42", "tool_call_id": "t1"}}),
    ("function", "42"),
    ("ToolMessageChunk", {}),
    ("function_call_output", {"type": "function_call_output", "call_id": "c1", "output": "42"}),
    ("user", {"type": "function_call_output", "call_id": "c1", "output": "42"}),
    ("computer_call_output", {"type": "computer_call_output", "call_id": "c1"}),
    ("user", [{"type": "custom_tool_call_output", "call_id": "c1", "output": "42"}]),
]

NOT_RESULTS: list[tuple[str, Any]] = [
    ("user", [{"text": "hi"}]),
    ("assistant", [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]),
    ("assistant", [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]),
    ("function_call", {"type": "function_call", "call_id": "c1", "name": "f"}),
    ("assistant", {"content": None, "tool_calls": [{"id": "c1", "type": "function"}]}),
    ("ai", {"type": "ai", "data": {"tool_calls": [{"id": "t1", "type": "tool_call"}]}}),
    ("user", "toolResult tool_result function_call_output"),  # words in a text
    ("user", [{"text": "x", "toolResult": "not a block"}]),
    ("user", [[{"toolResult": {}}]]),  # nested one level too deep
    ("assistant", [{"type": "web_search_tool_result"}]),  # in the call's own message
    ("user", None),
    ("user", 3),
]


@pytest.mark.parametrize(("role", "content"), RESULTS)
def test_tool_results_are_recognised(role: str, content: Any) -> None:
    assert is_tool_result(role, content)
    assert leading_tool_results([row(role, content)]) == 1


@pytest.mark.parametrize(("role", "content"), NOT_RESULTS)
def test_other_messages_are_not(role: str, content: Any) -> None:
    assert not is_tool_result(role, content)
    assert leading_tool_results([row(role, content)]) == 0


def row(role: str, content: Any, index: int = 0, *, ascii_only: bool = False) -> tuple[
    str, int, str, str, int
]:
    return ("agent", index, role, json.dumps(content, ensure_ascii=ascii_only), index)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["text", "type", "toolResult", "toolUse", "content", "ĳ"]) | st.text(),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)
block_types = st.sampled_from(
    ["text", "tool_use", "tool_result", "function_call", "function_call_output",
     "local_shell_call_output", "message"]
)
blocks = (
    st.builds(lambda t, v: {"type": t, "content": v}, block_types, json_values)
    | st.builds(lambda v: {"toolResult": v}, st.dictionaries(st.text(max_size=3), json_values,
                                                            max_size=2))
    | st.builds(lambda v: {"toolUse": v}, st.dictionaries(st.text(max_size=3), json_values,
                                                         max_size=2))
    | json_values
)
contents = blocks | st.lists(blocks, max_size=4)
roles = st.sampled_from(
    ["user", "assistant", "tool", "function", "system", "human", "ai",
     "function_call", "function_call_output", "message"]
) | st.text(max_size=8)


@given(role=roles, content=contents, ascii_only=st.booleans())
def test_rows_are_classified_as_their_decoded_content(
    role: str, content: Any, ascii_only: bool
) -> None:
    """The shortcut over the JSON text (no decoding without a marker) never
    changes the answer, whatever the encoder escaped."""
    expected = is_tool_result(role, content)
    assert leading_tool_results([row(role, content, ascii_only=ascii_only)]) == int(expected)


@given(st.lists(st.tuples(roles, contents), max_size=8))
def test_leading_count_stops_at_the_first_other_message(
    messages: list[tuple[str, Any]],
) -> None:
    rows = [row(r, c, i) for i, (r, c) in enumerate(messages)]
    n = leading_tool_results(rows)
    assert all(is_tool_result(r, c) for r, c in messages[:n])
    assert n == len(messages) or not is_tool_result(*messages[n])


def test_escaped_keys_are_decoded() -> None:
    """Text written by another encoder may spell a key with ``\\u`` escapes."""
    escaped = '[{"\\u0074oolResult": {"toolUseId": "t1"}}]'
    assert "toolResult" not in escaped
    assert leading_tool_results([("a", 0, "user", escaped, 0)]) == 1


def test_content_that_is_not_json_is_not_a_result() -> None:
    assert leading_tool_results([("a", 0, "user", '{"toolResult": ', 0)]) == 0


# -- the trim mode on a storage (the reference backend) ------------------------

CALL = {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f",
                                                      "input": {}}}]}
RESULT = {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": []}}]}


def text(role: str, value: str) -> dict[str, Any]:
    return {"role": role, "content": [{"text": value}]}


CONVERSATION = [text("user", "q"), CALL, RESULT, text("assistant", "a"), text("user", "q2")]


def indexes(messages: list[StoredMessage]) -> list[int]:
    return [m.index for m in messages]


@pytest.mark.asyncio
async def test_tool_safe_drops_a_leading_result_on_save_and_fetch() -> None:
    """Fails if the core stops stripping: no backend can break this rule, the
    core applies it to whatever rows a backend returns."""
    async with make_storage("memory://", trim="tool-safe") as s:
        saved = await s.save_chat_messages("u", "s", "a", CONVERSATION, max_history_size=3)
        assert indexes(saved) == [3, 4], "the result at 2 lost its call at 1"
        assert indexes(await s.fetch_chat("u", "s", "a")) == [3, 4]
        assert indexes(await s.fetch_chat("u", "s", "a", 3)) == [3, 4]
        assert indexes(await s.fetch_chat("u", "s", "a", 2)) == [3, 4]
        # The row left behind is still stored (export and the session view show it).
        session = await s.fetch_all_chats("u", "s")
        assert indexes(session) == [2, 3, 4]
        assert [r.message_index async for r in s.export()] == [2, 3, 4]
        # append_messages returns only what it stored, results included.
        stored = await s.append_messages("u", "s", "a", [text("assistant", "x"), RESULT], 1)
        assert indexes(stored) == [5, 6]
        assert await s.fetch_chat("u", "s", "a") == [], "a window of only results is empty"


@pytest.mark.asyncio
async def test_window_with_the_call_inside_is_kept_whole() -> None:
    async with make_storage("memory://", trim="tool-safe") as s:
        saved = await s.save_chat_messages("u", "s", "a", CONVERSATION, max_history_size=4)
        assert indexes(saved) == [1, 2, 3, 4]
        assert indexes(await s.fetch_chat("u", "s", "a")) == [1, 2, 3, 4]


@pytest.mark.asyncio
async def test_other_modes_keep_the_leading_result() -> None:
    async with make_storage("memory://") as s:
        saved = await s.save_chat_messages("u", "s", "a", CONVERSATION, max_history_size=3)
        assert indexes(saved) == [2, 3, 4]


@given(
    kinds=st.lists(st.sampled_from(["text", "call", "result"]), max_size=10),
    size=st.none() | st.integers(min_value=1, max_value=12),
)
def test_tool_safe_windows_are_the_counted_windows_minus_leading_results(
    kinds: list[str], size: int | None
) -> None:
    messages = [
        {**(CALL if k == "call" else RESULT if k == "result" else text("assistant", str(i))),
         "timestamp": i}
        for i, k in enumerate(kinds)
    ]

    async def windows(trim: Any) -> tuple[list[StoredMessage], list[StoredMessage]]:
        async with make_storage("memory://", trim=trim, skip_consecutive_roles=False) as s:
            saved = await s.save_chat_messages("u", "s", "a", messages, size)
            return saved, await s.fetch_chat("u", "s", "a", size)

    saved, fetched = asyncio.run(windows("tool-safe"))
    counted, _ = asyncio.run(windows("messages"))
    assert saved == fetched
    leading = 0
    while leading < len(counted) and kinds[counted[leading].index] == "result":
        leading += 1
    assert saved == counted[leading:]


# -- the integrations' stored shapes -----------------------------------------


@pytest.mark.asyncio
async def test_openai_agents_items_get_tool_safe_windows() -> None:
    pytest.importorskip("agents")
    from storage_core.integrations.openai_agents import StorageCoreSession

    items: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]
    storage = make_storage("memory://", trim="tool-safe", skip_consecutive_roles=False)
    async with storage, StorageCoreSession("s", storage) as session:
        await session.add_items(items)
        assert await session.get_items(limit=2) == items[3:]
        assert await session.get_items(limit=3) == items[1:]


def test_langchain_tool_messages_get_tool_safe_windows() -> None:
    messages_module = pytest.importorskip("langchain_core.messages")
    from storage_core.integrations.langchain import StorageCoreChatMessageHistory

    call = {"name": "weather", "args": {}, "id": "t1", "type": "tool_call"}
    messages = [
        messages_module.HumanMessage("weather?"),
        messages_module.AIMessage("", tool_calls=[call]),
        messages_module.ToolMessage("sunny", tool_call_id="t1"),
        messages_module.AIMessage("It is sunny."),
    ]
    history = StorageCoreChatMessageHistory(
        "s", "memory://", max_history_size=2, trim="tool-safe"
    )
    try:
        history.add_messages(messages)
        assert history.messages == messages[3:]
    finally:
        history.close()

"""``trim="tool-safe"``: a window never begins with a tool result.

The rule is applied by the core on the rows a backend returns, so these tests
check that a backend's windows, once the core has looked at them, are the same
on save and on fetch and on every backend: the backend still trims by count.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from storage_core import StoredMessage

from ._support import FreshIds, StorageFactory, requires

__all__ = ["ToolSafeTests"]

aio = pytest.mark.asyncio


class _Turn(NamedTuple):
    role: str
    content: Any
    result: bool  # a tool result: its call is the turn(s) before it


def _bedrock() -> list[_Turn]:
    """agent-squad's Bedrock Converse blocks."""
    return [
        _Turn("user", [{"text": "weather in Oslo?"}], False),
        _Turn("assistant", [{"text": "checking"}, {"toolUse": {
            "toolUseId": "t1", "name": "weather", "input": {"city": "Oslo"}}}], False),
        _Turn("user", [{"toolResult": {
            "toolUseId": "t1", "content": [{"text": "sunny"}], "status": "success"}}], True),
        _Turn("assistant", [{"text": "It is sunny."}], False),
        _Turn("user", [{"text": "thanks"}], False),
        _Turn("assistant", [{"text": "you're welcome"}], False),
    ]


def _anthropic() -> list[_Turn]:
    """Anthropic Messages ``tool_use`` / ``tool_result`` blocks."""
    return [
        _Turn("user", [{"type": "text", "text": "weather in Oslo?"}], False),
        _Turn("assistant", [{"type": "tool_use", "id": "t1", "name": "weather",
                             "input": {"city": "Oslo"}}], False),
        _Turn("user", [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                       {"type": "text", "text": "and?"}], True),
        _Turn("assistant", [{"type": "text", "text": "It is sunny."}], False),
        _Turn("user", [{"type": "text", "text": "thanks"}], False),
        _Turn("assistant", [{"type": "text", "text": "you're welcome"}], False),
    ]


def _openai_chat() -> list[_Turn]:
    """OpenAI chat messages: an assistant with two tool calls, two ``tool`` messages."""
    calls = [{"id": f"c{i}", "type": "function",
              "function": {"name": "weather", "arguments": "{}"}} for i in (1, 2)]
    return [
        _Turn("user", "weather in Oslo and Bergen?", False),
        _Turn("assistant", {"content": None, "tool_calls": calls}, False),
        _Turn("tool", {"tool_call_id": "c1", "content": "sunny"}, True),
        _Turn("tool", {"tool_call_id": "c2", "content": "rain"}, True),
        _Turn("assistant", "Sunny in Oslo, rain in Bergen.", False),
        _Turn("user", "thanks", False),
    ]


def _openai_responses() -> list[_Turn]:
    """OpenAI Responses items as the Agents SDK integration stores them: the
    item's role, else its type, as role; the item as content."""
    call = {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
    return [
        _Turn("user", {"role": "user", "content": "weather in Oslo?"}, False),
        _Turn("function_call", call, False),
        _Turn("function_call_output", output, True),
        _Turn("assistant", {"role": "assistant", "type": "message",
                            "content": [{"type": "output_text", "text": "It is sunny."}]},
              False),
        _Turn("user", {"role": "user", "content": "thanks"}, False),
        # The item stored under another role still counts by its content.
        _Turn("user", {**output, "call_id": "c0"}, True),
    ]


def _langchain() -> list[_Turn]:
    """LangChain messages as ``message_to_dict`` gives them, role = their type."""

    def lc(kind: str, **data: Any) -> dict[str, Any]:
        return {"type": kind, "data": {"type": kind, **data}}

    call = {"name": "weather", "args": {"city": "Oslo"}, "id": "t1", "type": "tool_call"}
    return [
        _Turn("human", lc("human", content="weather in Oslo?"), False),
        _Turn("ai", lc("ai", content="", tool_calls=[call]), False),
        _Turn("tool", lc("tool", content="sunny", tool_call_id="t1"), True),
        _Turn("ai", lc("ai", content="It is sunny."), False),
        _Turn("human", lc("human", content="thanks"), False),
        _Turn("ai", lc("ai", content="you're welcome"), False),
    ]


SHAPES = {
    "bedrock": _bedrock,
    "anthropic": _anthropic,
    "openai-chat": _openai_chat,
    "openai-responses": _openai_responses,
    "langchain": _langchain,
}


def _message(turn: _Turn, timestamp: int) -> dict[str, Any]:
    return {"role": turn.role, "content": turn.content, "timestamp": timestamp}


def _expected(turns: list[_Turn], stored: int, size: int | None) -> list[tuple[int, Any]]:
    """``(index, content)`` of the window of the first ``stored`` turns: the
    newest ``size``, without the tool results it begins with."""
    window = list(enumerate(turns[:stored]))
    if size is not None:
        window = window[-size:] if size > 0 else []
    while window and window[0][1].result:
        window.pop(0)
    return [(i, t.content) for i, t in window]


def _seen(messages: list[StoredMessage]) -> list[tuple[int, Any]]:
    return [(m.index, m.content) for m in messages]


def _first_result_cut(turns: list[_Turn]) -> int:
    """A max_history_size that cuts between the first tool call and its result(s)."""
    first = next(i for i, t in enumerate(turns) if t.result)
    return len(turns) - first


class ToolSafeTests:
    """The ``tool-safe`` trim mode on every content shape it recognises."""

    @requires("read_your_writes")
    @pytest.mark.parametrize("shape", sorted(SHAPES))
    @aio
    async def test_tool_safe_saves_one_by_one(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds, shape: str
    ) -> None:
        turns = SHAPES[shape]()
        size = _first_result_cut(turns)
        c = fresh_ids.conv()
        async with storage_factory.open(trim="tool-safe", skip_consecutive_roles=False) as s:
            for n, turn in enumerate(turns, start=1):
                h = await s.save_chat_message(*c, _message(turn, 10 * n), size)
                assert _seen(h) == _expected(turns, n, size), f"save {n} of {shape}"
                assert h == await s.fetch_chat(*c, size), f"save {n}: save == fetch"
                assert h == await s.fetch_chat(*c), "the rows left behind are not shown"

    @requires("read_your_writes")
    @pytest.mark.parametrize("shape", sorted(SHAPES))
    @aio
    async def test_tool_safe_batch_and_fetch_windows(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds, shape: str
    ) -> None:
        turns = SHAPES[shape]()
        cut = _first_result_cut(turns)
        batch = [_message(t, 10 * n) for n, t in enumerate(turns, start=1)]
        c = fresh_ids.conv()
        async with storage_factory.open(trim="tool-safe", skip_consecutive_roles=False) as s:
            # Nothing trimmed yet: every fetch window, the call inside or not.
            h = await s.save_chat_messages(*c, batch)
            assert _seen(h) == _expected(turns, len(turns), None)
            for size in range(1, len(turns) + 1):
                window = await s.fetch_chat(*c, size)
                assert _seen(window) == _expected(turns, len(turns), size), f"size {size}"
                assert not window or not turns[window[0].index].result, (
                    "a window must not begin with a tool result"
                )
            # The window whose first message is the call is kept whole.
            whole = await s.fetch_chat(*c, cut + 1)
            assert [m.index for m in whole] == list(range(len(turns) - cut - 1, len(turns)))
            # One batch, trimmed between the call and its result.
            c2 = fresh_ids.conv(agent="batch")
            h = await s.save_chat_messages(*c2, batch, cut)
            assert _seen(h) == _expected(turns, len(turns), cut)
            assert h == await s.fetch_chat(*c2, cut) == await s.fetch_chat(*c2)
            assert len(h) < cut, "the leading tool result is dropped: fewer than N"

    @aio
    async def test_tool_safe_is_opt_in(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """The save's own window (no read after it, so also on a bare replica):
        ``tool-safe`` drops the leading result, the default ``"messages"``
        keeps it."""
        async with storage_factory.open(skip_consecutive_roles=False) as plain, \
                storage_factory.open(trim="tool-safe", skip_consecutive_roles=False) as safe:
            for shape, make in sorted(SHAPES.items()):
                turns = make()
                cut = _first_result_cut(turns)
                batch = [_message(t, 10 * n) for n, t in enumerate(turns, start=1)]
                h = await plain.save_chat_messages(*fresh_ids.conv(agent=shape), batch, cut)
                assert [m.index for m in h] == list(range(len(turns) - cut, len(turns)))
                assert h[0].content == turns[-cut].content, f"{shape}: messages keeps it"
                h = await safe.save_chat_messages(*fresh_ids.conv(agent=f"safe-{shape}"),
                                                  batch, cut)
                assert _seen(h) == _expected(turns, len(turns), cut), shape

"""StorageCoreSession: the Agents SDK's Session protocol on every backend."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agents import Agent, ModelResponse, Runner, Usage, function_tool, set_tracing_disabled
from agents.memory import Session, SessionSettings
from agents.models.interface import Model
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from storage_core import ValidationError, make_storage
from storage_core.integrations.openai_agents import StorageCoreSession

pytestmark = pytest.mark.asyncio
set_tracing_disabled(True)

# One item of each kind the SDK puts in a session.
ITEMS: list[Any] = [
    {"role": "user", "content": "What is the weather in Paris? ünïcödé ☀"},
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "and this picture"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
        ],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "need the tool"}],
        "encrypted_content": None,
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
        "status": "completed",
    },
    {
        "type": "function_call",
        "id": "fc_2",
        "call_id": "call_2",
        "name": "get_time",
        "arguments": "{}",
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21°C"},
    {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text",
                                                                      "text": "noon"}]},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Sunny.", "annotations": [],
                     "logprobs": []}],
    },
    {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "At noon.", "annotations": []}],
    },
]


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


async def test_it_is_an_agents_sdk_session(storage_url: str, session_id: str) -> None:
    async with StorageCoreSession(session_id, storage_url) as session:
        assert isinstance(session, Session)
        assert session.session_id == session_id
        assert session.session_settings == SessionSettings()


async def test_items_round_trip_exactly(storage_url: str, session_id: str) -> None:
    async with StorageCoreSession(session_id, storage_url, user_id="u1") as session:
        await session.add_items(ITEMS[:4])
        await session.add_items(ITEMS[4:])
        assert await session.get_items() == _json(ITEMS)
    # Read back by another session object on the same storage: it was stored.
    async with StorageCoreSession(session_id, storage_url, user_id="u1") as again:
        assert await again.get_items() == _json(ITEMS)


async def test_repeated_roles_are_kept(storage_url: str, session_id: str) -> None:
    """Two function calls, two outputs, two assistant messages in a row: all stored."""
    async with StorageCoreSession(session_id, storage_url) as session:
        for item in ITEMS:
            await session.add_items([item])
        assert len(await session.get_items()) == len(ITEMS)


async def test_get_items_limit_is_the_newest_in_order(storage_url: str, session_id: str) -> None:
    async with StorageCoreSession(session_id, storage_url) as session:
        await session.add_items(ITEMS)
        assert await session.get_items(limit=3) == _json(ITEMS[-3:])
        assert await session.get_items(limit=1) == _json(ITEMS[-1:])
        assert await session.get_items(limit=100) == _json(ITEMS)
        assert await session.get_items(limit=0) == []


async def test_session_settings_limit_is_the_default(storage_url: str, session_id: str) -> None:
    async with StorageCoreSession(
        session_id, storage_url, session_settings=SessionSettings(limit=2)
    ) as session:
        await session.add_items(ITEMS)
        assert await session.get_items() == _json(ITEMS[-2:])
        assert await session.get_items(limit=4) == _json(ITEMS[-4:])


async def test_pop_item_removes_and_returns_the_newest(storage_url: str, session_id: str) -> None:
    async with StorageCoreSession(session_id, storage_url) as session:
        assert await session.pop_item() is None
        await session.add_items(ITEMS[:3])
        assert await session.pop_item() == _json(ITEMS[2])
        assert await session.get_items() == _json(ITEMS[:2])
        assert await session.pop_item() == _json(ITEMS[1])
        assert await session.pop_item() == _json(ITEMS[0])
        assert await session.pop_item() is None
        assert await session.get_items() == []


async def test_concurrent_pops_never_return_the_same_item(
    storage_url: str, session_id: str
) -> None:
    n = 12
    async with StorageCoreSession(session_id, storage_url) as session:
        await session.add_items([{"role": "user", "content": f"m{i}"} for i in range(n)])
        popped = await asyncio.gather(*(session.pop_item() for _ in range(n + 5)))
        got = [p["content"] for p in popped if p is not None]
        assert sorted(got) == sorted(f"m{i}" for i in range(n))
        assert popped.count(None) == 5
        assert await session.get_items() == []


async def test_concurrent_batches_are_atomic_and_none_is_lost(
    storage_url: str, session_id: str
) -> None:
    async with StorageCoreSession(session_id, storage_url) as session:
        await asyncio.gather(*(
            session.add_items([
                {"role": "user", "content": f"q{b}"},
                {"role": "assistant", "content": f"a{b}"},
            ])
            for b in range(20)
        ))
        items = await session.get_items()
        assert len(items) == 40
        for first, second in zip(items[::2], items[1::2], strict=True):
            assert (first["role"], second["role"]) == ("user", "assistant")
            assert first["content"][1:] == second["content"][1:]


async def test_clear_session(storage_url: str, session_id: str) -> None:
    async with StorageCoreSession(session_id, storage_url) as session, StorageCoreSession(
        session_id + "-other", storage_url
    ) as other:
        await session.add_items(ITEMS)
        await other.add_items(ITEMS[:1])
        await session.clear_session()
        assert await session.get_items() == []
        assert await other.get_items() == _json(ITEMS[:1])
        await session.add_items(ITEMS[:1])  # usable after a clear
        assert await session.get_items() == _json(ITEMS[:1])


async def test_clear_session_keeps_other_agents_of_the_session(
    storage_url: str, session_id: str
) -> None:
    async with make_storage(storage_url, skip_consecutive_roles=False) as storage:
        session = StorageCoreSession(session_id, storage, user_id="u1")
        helper = StorageCoreSession(session_id, storage, user_id="u1", agent_id="helper")
        await session.add_items(ITEMS)
        await helper.add_items(ITEMS[:2])
        await storage.save_chat_message("u1", session_id, "plain", {"role": "user", "content": "x"})
        await session.clear_session()
        assert await session.get_items() == []
        assert await helper.get_items() == _json(ITEMS[:2])
        assert [m.content for m in await storage.fetch_chat("u1", session_id, "plain")] == ["x"]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("not an item", r"items\[1\] must be a mapping"),
        ({"content": "neither role nor type"}, r"items\[1\] has neither"),
        ({"role": "user", "content": {1, 2}}, r"messages\[1\] content"),
        ({"type": "function_call_output", "output": object()}, r"messages\[1\] content"),
        ({"role": 3, "content": "x"}, r"items\[1\] has neither"),
    ],
)
async def test_bad_items_are_refused_and_nothing_is_written(
    storage_url: str, session_id: str, bad: Any, match: str
) -> None:
    async with StorageCoreSession(session_id, storage_url) as session:
        await session.add_items(ITEMS[:1])
        with pytest.raises(ValidationError, match=match):
            await session.add_items([ITEMS[1], bad, ITEMS[2]])
        assert await session.get_items() == _json(ITEMS[:1])


async def test_items_must_be_a_list(session_id: str) -> None:
    async with StorageCoreSession(session_id, "memory://") as session:
        with pytest.raises(ValidationError, match="items must be a list"):
            await session.add_items({"role": "user", "content": "x"})  # type: ignore[arg-type]


async def test_bad_ids_are_refused_at_construction() -> None:
    with pytest.raises(ValidationError, match="session_id"):
        StorageCoreSession("", "memory://")
    with pytest.raises(ValidationError, match="user_id"):
        StorageCoreSession("s", "memory://", user_id="")


async def test_a_ready_storage_is_used_as_is_and_not_closed(session_id: str) -> None:
    async with make_storage("memory://", skip_consecutive_roles=False) as storage:
        session = StorageCoreSession(session_id, storage, user_id="u", agent_id="bot")
        await session.add_items(ITEMS[4:6])
        await session.close()
        stored = await storage.fetch_chat("u", session_id, "bot")
        assert [m.role for m in stored] == ["function_call", "function_call"]
        assert [m.content for m in stored] == _json(ITEMS[4:6])


async def test_secrets_stay_out_of_the_repr() -> None:
    session = StorageCoreSession("s", "postgresql://app:hunter2@127.0.0.1:1/chat")
    assert "hunter2" not in repr(session)


# -- with the Runner --------------------------------------------------------


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class StubModel(Model):
    """A model that answers with canned outputs and records what it was sent."""

    def __init__(self, turns: list[list[Any]]) -> None:
        self.turns = turns
        self.inputs: list[list[Any]] = []

    async def get_response(self, system_instructions: Any, input: Any, *args: Any,
                           **kwargs: Any) -> ModelResponse:
        self.inputs.append(
            [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        )
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def _call() -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id="fc_1", call_id="call_1", name="get_weather", arguments='{"city": "Paris"}',
        type="function_call", status="completed",
    )


def _say(text: str, item_id: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=item_id, type="message", role="assistant", status="completed",
        content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
    )


async def test_runner_uses_the_session(storage_url: str, session_id: str) -> None:
    model = StubModel([
        [_call()],
        [_say("It is sunny in Paris.", "msg_1")],
        [_say("You asked about Paris.", "msg_2")],
    ])
    agent = Agent(name="weather", instructions="Answer briefly.", model=model,
                  tools=[get_weather])
    async with StorageCoreSession(session_id, storage_url) as session:
        first = await Runner.run(agent, "Weather in Paris?", session=session)
        assert first.final_output == "It is sunny in Paris."
        items = await session.get_items()
        kinds = [item.get("role") or item.get("type") for item in items]
        assert kinds == ["user", "function_call", "function_call_output", "assistant"]
        assert items[2]["output"] == "sunny in Paris"

    # A second run, on a new session object, sees the stored history.
    async with StorageCoreSession(session_id, storage_url) as session:
        second = await Runner.run(agent, "What did I ask?", session=session)
        assert second.final_output == "You asked about Paris."
        sent = model.inputs[-1]
        assert sent[:4] == items
        assert sent[4]["content"] == "What did I ask?"
        assert len(await session.get_items()) == 6

"""agent-squad's orchestrator on the drop-in: a stub agent and classifier, no network."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI a missing agent-squad is a failure
    pytest.importorskip(
        "agent_squad",
        reason="agent-squad is not installed: pip install 'storage-core[agent-squad]' "
        "(Python 3.11+)",
    )

from agent_squad.agents import Agent, AgentOptions
from agent_squad.classifiers import Classifier, ClassifierResult
from agent_squad.orchestrator import AgentSquad
from agent_squad.storage.sql_chat_storage import SqlChatStorage
from agent_squad.types import AgentSquadConfig, ConversationMessage, ParticipantRole

from storage_core.agent_squad import StorageCoreChatStorage

pytestmark = pytest.mark.asyncio


class EchoAgent(Agent):  # type: ignore[misc]
    """Answers with the input and how much history it was given."""

    def __init__(self) -> None:
        super().__init__(AgentOptions(name="Echo Agent", description="repeats the input"))
        self.histories: list[list[tuple[str, Any]]] = []

    async def process_request(
        self,
        input_text: str,
        user_id: str,
        session_id: str,
        chat_history: list[ConversationMessage],
        additional_params: dict[str, Any] | None = None,
    ) -> ConversationMessage:
        self.histories.append([(m.role, m.content) for m in chat_history])
        return ConversationMessage(
            role=ParticipantRole.ASSISTANT.value,
            content=[{"text": f"echo {input_text} ({len(chat_history)} before)"}],
        )


class FixedClassifier(Classifier):  # type: ignore[misc]
    """Always picks the one agent; remembers the session view it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.views: list[list[tuple[str, Any]]] = []

    async def process_request(
        self, input_text: str, chat_history: list[ConversationMessage]
    ) -> ClassifierResult:
        self.views.append([(m.role, m.content) for m in chat_history])
        return ClassifierResult(selected_agent=next(iter(self.agents.values())), confidence=1.0)


def squad(storage: Any, max_messages: int = 100) -> tuple[AgentSquad, EchoAgent, FixedClassifier]:
    agent, classifier = EchoAgent(), FixedClassifier()
    orchestrator = AgentSquad(
        options=AgentSquadConfig(MAX_MESSAGE_PAIRS_PER_AGENT=max_messages),
        storage=storage,
        classifier=classifier,
    )
    orchestrator.add_agent(agent)
    return orchestrator, agent, classifier


def text(response: Any) -> str:
    output = response.output
    assert isinstance(output, ConversationMessage), output
    return str(output.content[0]["text"])


async def test_round_trip_stores_and_reloads_history(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    async with StorageCoreChatStorage(url) as storage:
        orchestrator, agent, classifier = squad(storage)
        first = await orchestrator.route_request("hello", "u1", "s1")
        # route_request turns errors into an answer; make sure this one is the agent's.
        assert text(first) == "echo hello (0 before)"
        assert first.metadata.agent_id == agent.id == "echo-agent"
        stored = [(m.role, m.content) for m in await storage.fetch_chat("u1", "s1", agent.id)]
        assert stored == [
            ("user", [{"text": "hello"}]),
            ("assistant", [{"text": "echo hello (0 before)"}]),
        ]

    # A new process: a new storage on the same file, a new orchestrator.
    async with StorageCoreChatStorage(url) as storage:
        orchestrator, agent, classifier = squad(storage)
        second = await orchestrator.route_request("again", "u1", "s1")
        assert text(second) == "echo again (2 before)"
        assert agent.histories == [stored]
        assert classifier.views == [
            [
                ("user", [{"text": "hello"}]),
                ("assistant", [{"text": "[echo-agent] echo hello (0 before)"}]),
            ]
        ]
        other = await orchestrator.route_request("hi", "u2", "s1")
        assert text(other) == "echo hi (0 before)"  # another user's history is not shown

    # agent-squad's own SqlChatStorage reads what the orchestrator stored through the drop-in.
    original = SqlChatStorage(f"file:{db_path}")
    await original.initialize()
    try:
        history = await original.fetch_chat("u1", "s1", "echo-agent")
    finally:
        await original.close()
    assert [m.content[0]["text"] for m in history] == [
        "hello",
        "echo hello (0 before)",
        "again",
        "echo again (2 before)",
    ]


async def test_the_orchestrators_limit_keeps_the_newest_messages(db_path: Path) -> None:
    async with StorageCoreChatStorage(f"sqlite:///{db_path}") as storage:
        orchestrator, agent, _ = squad(storage, max_messages=4)
        for i in range(4):
            await orchestrator.route_request(f"q{i}", "u", "s")
        assert agent.histories[-1] == agent.histories[-1][-4:]
        history = await storage.fetch_chat("u", "s", agent.id)
        assert [m.content[0]["text"] for m in history] == [
            "q2",
            "echo q2 (4 before)",
            "q3",
            "echo q3 (4 before)",
        ]
        assert [m.index for m in await storage.storage.fetch_chat("u", "s", agent.id)] == [
            4,
            5,
            6,
            7,
        ]

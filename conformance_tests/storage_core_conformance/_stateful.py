"""A Hypothesis state machine: random sequences of every public call on the
backend, each result compared with an independent model of the contract
(`_oracle.Model`: plain lists, none of storage_core's rule code)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from storage_core import (
    ChatStorage,
    ConfigurationError,
    Message,
    StoredMessage,
    ValidationError,
    make_storage,
)
from storage_core.backend import SupportsDeleteConversation, SupportsPop, TableRow, TableTools

from ._oracle import Key, Model, Refused, same_rows
from ._support import AUTO_TIMESTAMP_FLOOR, StorageFactory, requires

__all__ = ["CALLS", "EXAMPLES_ENV", "STATS_ENV", "StatefulTests", "example_count"]

T = TypeVar("T")

EXAMPLES_ENV = "STORAGE_CORE_CONFORMANCE_EXAMPLES"
STATS_ENV = "STORAGE_CORE_CONFORMANCE_STATS"
"""Set (to anything) to print how the state machine's calls were distributed."""

CALLS: Counter[str] = Counter()
"""What the state machine called, by call and by the conversation's size
(filled only with ``$STORAGE_CORE_CONFORMANCE_STATS`` set)."""

STEPS = 30
EXPORTS_PER_RUN = 10  # export reads the whole (shared) table: a few per run


def example_count() -> int:
    """Examples of the state machine: ``$STORAGE_CORE_CONFORMANCE_EXAMPLES``,
    else 200 under CI and 50 locally."""
    value = os.environ.get(EXAMPLES_ENV)
    if value:
        return int(value)
    return 200 if os.environ.get("CI") else 50


# -- strategies ------------------------------------------------------------

# Ids and roles differ only in case, composition or a look-alike letter.
USERS = ("u", "U", "\u00fc")
SESSIONS = ("s", "S", "s\u0301")
AGENTS = ("a", "A", "\u0430")  # the last is Cyrillic
ROLES = ("user", "assistant") * 5 + (
    "User", "ASSISTANT", "Assistant", "assistant ", "\u0430ssistant", "system", "tool")

# Mostly one conversation (so it grows long), else one differing from it in
# one id only: (user, session, agent) slots.
_conv = st.sampled_from([(0, 0, 0)] * 7 + [
    (0, 0, 1), (0, 0, 2), (0, 1, 0), (0, 2, 0), (1, 0, 0), (2, 0, 0), (0, 1, 1)])
_user = st.sampled_from([0, 0, 0, 1, 2])
SESSIONS_USED = ((0, 0), (0, 1), (0, 2), (1, 0), (2, 0))  # (user, session) of _conv
_session = st.sampled_from([(0, 0)] * 3 + list(SESSIONS_USED[1:]))
_text = st.text(st.characters(codec="utf-8"), max_size=8)
_leaf = st.one_of(st.integers(-(2**70), 2**70), _text, st.booleans(), st.none())
_extra = st.dictionaries(st.sampled_from(["cache", "id", "\u00fc", "x y", "citations"]),
                         _leaf, max_size=2)
_block = st.one_of(
    st.builds(lambda t, extra: {"text": t, **extra}, _text, _extra),
    st.builds(lambda extra, t: {**extra, "text": t}, _extra, _text),
    st.builds(lambda t, n: {"toolUse": {"name": t, "input": {"n": n}}}, _text, _leaf),
    st.just({"image": {"format": "png"}}),
)
_content = st.one_of(st.lists(_block, max_size=4), _text, _leaf)
_timestamp = st.one_of(
    st.integers(0, AUTO_TIMESTAMP_FLOOR - 1), st.integers(0, 50), st.integers(0, 50), st.none()
)
_role = st.sampled_from(ROLES)
# Writes mostly keep everything (conversations grow); reads mostly limit.
_size = st.one_of(st.none(), st.none(), st.none(), st.integers(1, 12), st.integers(4, 12))
_fetch_size = st.one_of(st.none(), st.integers(1, 12), st.integers(1, 5))
_bad_size = st.sampled_from([0, -1, True, "3", 2**31])


@dataclass
class _Attrs:
    role: str
    content: Any
    timestamp: int | None = None


@st.composite
def _message(draw: st.DrawFn) -> tuple[Any, tuple[str, Any, int | None]]:
    """A message in one of the shapes the API takes, and what it says."""
    role, content, ts = draw(_role), draw(_content), draw(_timestamp)
    shape = draw(st.sampled_from(["dict", "message", "object"]))
    given: Any
    if shape == "message":
        given = Message(role, content, ts)
    elif shape == "object":
        given = _Attrs(role, content, ts)
    else:
        given = {"role": role, "content": content, "timestamp": ts}
    return given, (role, content, ts)


_batch = st.one_of(st.lists(_message(), max_size=8), st.lists(_message(), min_size=3, max_size=8))
_bad_message = st.sampled_from([
    {"role": "", "content": []},
    {"role": "user", "content": {1}},
    {"role": "user", "content": float("nan")},
    {"role": "user", "content": [], "timestamp": -5},
    {"role": "us\ud800er", "content": []},
    {"role": "user", "content": [{"text": "\udc00"}]},
    "not a message",
])
_import = st.lists(
    st.tuples(st.integers(0, 15), _role, _content, st.integers(0, 60), st.booleans()),
    min_size=1, max_size=5)


@dataclass(frozen=True)
class MachineConfig:
    url: str
    options: dict[str, Any]
    timeout: float
    budget: dict[str, int] = field(default_factory=lambda: {"export": EXPORTS_PER_RUN})


class ConformanceMachine(RuleBasedStateMachine):
    """Every call on the backend; each result must be the model's."""

    config: ClassVar[MachineConfig]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.prefix = uuid.uuid4().hex[:12]
        self.storage: ChatStorage | None = None
        self.model = Model(True, "messages")
        self.stats = bool(os.environ.get(STATS_ENV))

    # -- plumbing ---------------------------------------------------------

    def _id(self, names: Sequence[str], slot: int) -> str:
        return f"{names[slot]}-{self.prefix}"

    def _key(self, user: int, session: int, agent: int) -> Key:
        return self._id(USERS, user), self._id(SESSIONS, session), self._id(AGENTS, agent)

    def _run(self, call: Awaitable[T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(call, self.config.timeout))

    @property
    def s(self) -> ChatStorage:
        assert self.storage is not None
        return self.storage

    def _count(self, call: str, key: Key | None = None) -> None:
        if not self.stats:
            return
        CALLS[call] += 1
        if key is not None:
            CALLS[f"{call} on 6+" if len(self.model.rows(key)) >= 6 else f"{call} on <6"] += 1

    def _refused(self, call: Callable[[], Awaitable[object]], what: str) -> None:
        with pytest.raises(ValidationError):
            self._run(call())

    def _check(self, key: Key) -> None:
        """The whole conversation, as stored, is the model's."""
        same_rows(self._run(self.s.fetch_chat(*key)), self.model.rows(key),
                  "the conversation after the call")

    def _write(self, call: str, key: Key, batch: list[Any], size: Any,
               run: Callable[[list[Any]], Awaitable[list[StoredMessage]]]) -> None:
        self._count(call, key)
        given = [m for m, _ in batch]
        try:
            history, stored = self.model.write(key, [said for _, said in batch], size)
        except Refused:
            self._refused(lambda: run(given), call)
            self._check(key)
            return
        got = self._run(run(given))
        same_rows(got, stored if call == "append_messages" else history, call)
        self._check(key)
        clock = [r.timestamp for r in stored if r.auto and r.timestamp is not None]
        assert clock == sorted(set(clock)), (
            f"{call}: clock timestamps of one batch are not strictly increasing: {clock}")

    # -- rules ------------------------------------------------------------

    @initialize(skip=st.booleans(), trim=st.sampled_from(["messages", "pairs"]),
                seed=st.lists(_message(), max_size=24))
    def open_storage(self, skip: bool, trim: str, seed: list[Any]) -> None:
        """Open the storage; the main conversation may start long (the steps
        of one example are few for the calls to build one)."""
        self.model = Model(skip, trim)
        self.storage = make_storage(self.config.url, **{
            **self.config.options, "skip_consecutive_roles": skip, "trim": trim})
        self._run(self.s.initialize())
        if seed:
            key = self._key(0, 0, 0)
            self._write("append_messages", key, seed, None,
                        lambda ms: self.s.append_messages(*key, ms))

    @rule(conv=_conv, message=_message(), size=_size)
    def save_chat_message(self, conv: tuple[int, int, int], message: tuple[Any, Any],
                          size: int | None) -> None:
        key = self._key(*conv)
        self._write("save_chat_message", key, [message], size,
                    lambda ms: self.s.save_chat_message(*key, ms[0], size))

    @rule(conv=_conv, batch=_batch, size=_size)
    def save_chat_messages(self, conv: tuple[int, int, int], batch: list[Any],
                           size: int | None) -> None:
        key = self._key(*conv)
        self._write("save_chat_messages", key, batch, size,
                    lambda ms: self.s.save_chat_messages(*key, ms, size))

    @rule(conv=_conv, batch=_batch, size=_size)
    def append_messages(self, conv: tuple[int, int, int], batch: list[Any],
                        size: int | None) -> None:
        key = self._key(*conv)
        self._write("append_messages", key, batch, size,
                    lambda ms: self.s.append_messages(*key, ms, size))

    @rule(conv=_conv, batch=_batch, bad=_bad_message, where=st.integers(0, 8),
          call=st.sampled_from(["save", "append", "one", "size"]), size=_bad_size)
    def bad_input(self, conv: tuple[int, int, int], batch: list[Any], bad: Any, where: int,
                  call: str, size: Any) -> None:
        """A bad message anywhere in a batch, or a bad max_history_size:
        ValidationError, and nothing written."""
        key = self._key(*conv)
        self._count("bad input", key)
        given = [m for m, _ in batch]
        given = [*given[:where], bad, *given[where:]]
        if call == "one":
            self._refused(lambda: self.s.save_chat_message(*key, bad), call)
        elif call == "save":
            self._refused(lambda: self.s.save_chat_messages(*key, given), call)
        elif call == "append":
            self._refused(lambda: self.s.append_messages(*key, given, 3), call)
        else:
            good = [m for m, _ in batch]
            self._refused(lambda: self.s.save_chat_messages(*key, good, size), "save")
            self._refused(lambda: self.s.fetch_chat(*key, size), "fetch")
        self._check(key)

    @rule(conv=_conv)
    def pop_message(self, conv: tuple[int, int, int]) -> None:
        key = self._key(*conv)
        self._count("pop_message", key)
        if not isinstance(self.s.backend, SupportsPop):
            with pytest.raises(ConfigurationError):
                self._run(self.s.pop_message(*key))
            return
        want = self.model.pop(key)
        got = self._run(self.s.pop_message(*key))
        same_rows([got] if got is not None else [], [want] if want is not None else [],
                  "pop_message")
        self._check(key)

    @rule(conv=_conv, size=_fetch_size)
    def fetch_chat(self, conv: tuple[int, int, int], size: int | None) -> None:
        key = self._key(*conv)
        self._count("fetch_chat", key)
        if size is not None and size < len(self.model.rows(key)):
            self._count("fetch_chat with a limit below the length")
        try:
            want = self.model.fetch(key, size)
        except Refused:
            self._refused(lambda: self.s.fetch_chat(*key, size), "fetch_chat")
            return
        same_rows(self._run(self.s.fetch_chat(*key, size)), want, "fetch_chat")

    @rule(where=_session)
    def session_view(self, where: tuple[int, int]) -> None:
        self._count("fetch_all_chats")
        self.fetch_all_chats(*where)

    def fetch_all_chats(self, user: int, session: int) -> None:
        u, s_id = self._id(USERS, user), self._id(SESSIONS, session)
        got = self._run(self.s.fetch_all_chats(u, s_id))
        want = self.model.session(u, s_id)
        order = [(m.timestamp, m.agent_id, m.index) for m in got]
        assert order == sorted(order), "fetch_all_chats is not ordered by (timestamp, agent, index)"
        if any(r.timestamp is None for r in want):  # a clock timestamp not read yet
            got = sorted(got, key=lambda m: (m.agent_id, m.index))
            want = sorted(want, key=lambda r: (r.agent_id, r.index))
        same_rows(got, want, "fetch_all_chats")

    @rule(user=_user)
    def sessions(self, user: int) -> None:
        self._count("list_sessions")
        self.list_sessions(user)

    def list_sessions(self, user: int) -> None:
        u = self._id(USERS, user)
        got: list[tuple[str, tuple[str, ...], int, int | None]] = [
            (x.session_id, x.agent_ids, x.message_count, x.last_timestamp)
            for x in self._run(self.s.list_sessions(u))]
        want = self.model.sessions(u)
        if any(x[3] is None for x in want):
            got, want = sorted(got), sorted(want)
            got = [(*x[:3], None) for x in got]
        assert got == want, f"list_sessions differs from the model:\n got  {got}\n want {want}"

    @rule(conv=_conv, what=st.sampled_from(["conversation", "session", "user"]))
    def delete(self, conv: tuple[int, int, int], what: str) -> None:
        """delete_conversation, delete_session or delete_user (one rule: each
        empties conversations, and the machine wants long ones)."""
        key = self._key(*conv)
        self._count(f"delete_{what}", key)
        if what == "user":
            deleted = self._run(self.s.delete_user(key[0]))
            assert deleted == self.model.delete(key[0]), "delete_user deleted another number"
        elif what == "session":
            deleted = self._run(self.s.delete_session(*key[:2]))
            assert deleted == self.model.delete(*key[:2]), "delete_session deleted another number"
        elif not isinstance(self.s.backend, SupportsDeleteConversation):
            with pytest.raises(ConfigurationError):
                self._run(self.s.delete_conversation(*key))
        else:
            deleted = self._run(self.s.delete_conversation(*key))
            assert deleted == self.model.delete(*key), "delete_conversation deleted another number"
        self._check(key)

    @rule(conv=_conv, rows=_import)
    def import_rows(self, conv: tuple[int, int, int], rows: list[Any]) -> None:
        key = self._key(*conv)
        self._count("import_rows", key)
        if not isinstance(self.s.backend, TableTools):
            with pytest.raises(ConfigurationError):
                self._run(self.s.import_rows([]))
            return
        table = [
            # agent-squad's own form (ASCII-escaped) or storage_core's compact one
            TableRow(*key, index, role, json.dumps(content) if squad else
                     json.dumps(content, ensure_ascii=False, separators=(",", ":")), ts)
            for index, role, content, ts, squad in rows
        ]
        want = self.model.import_rows(
            [(key, r.message_index, r.role, r.content, r.timestamp) for r in table])
        assert self._run(self.s.import_rows(table)) == want, "import_rows counted otherwise"
        self._check(key)

    @rule(what=st.sampled_from(["prune 0", "prune 1", "export"]))
    def table_tools(self, what: str) -> None:
        if not isinstance(self.s.backend, TableTools):
            with pytest.raises(ConfigurationError):
                self._run(self.s.prune(1))
            return
        if what == "export":
            self.export()
        else:
            self.prune(int(what[-1]))

    def prune(self, before: int) -> None:
        """Prune only what no other test's data is likely to match (whole
        conversations at timestamp 0): the table is shared."""
        self._count("prune")
        mine = self.model.prune(before)
        assert self._run(self.s.prune(before)) >= mine, "prune deleted fewer rows than it must"
        self.compare_everything()

    def export(self) -> None:
        """The machine's rows of an export are the model's (a few per run)."""
        if self.config.budget["export"] <= 0:
            return
        self.config.budget["export"] -= 1
        self._count("export")

        async def mine() -> list[TableRow]:
            return [r async for r in self.s.export(batch_size=500)
                    if r.user_id.endswith(self.prefix)]

        got = [(r.user_id, r.session_id, r.agent_id, r.message_index, r.role,
                json.loads(r.content), r.timestamp) for r in self._run(mine())]
        want = [(*k, r.index, r.role, r.content, r.timestamp) for k, r in self.model.every_row()]
        assert got == want, "export differs from the model"

    @rule()
    def compare_everything(self) -> None:
        """Every user's sessions and every session view, as stored."""
        for user in range(len(USERS)):
            self.list_sessions(user)
        for user, session in SESSIONS_USED:
            self.fetch_all_chats(user, session)

    def teardown(self) -> None:
        try:
            if self.storage is not None:
                self._run(self.storage.close())
        finally:
            self.loop.close()


def _settings() -> settings:
    return settings(
        max_examples=example_count(),
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.function_scoped_fixture],
    )


class StatefulTests:
    """The model-based test."""

    @requires("read_your_writes")
    def test_random_calls_match_reference(self, storage_factory: StorageFactory) -> None:
        """Random sequences of every call give what the contract's model gives.

        Runs ``STORAGE_CORE_CONFORMANCE_EXAMPLES`` examples (200 with ``CI``
        set, else 50) of up to 30 steps, each in a fresh id namespace on its
        own event loop.
        """

        class Machine(ConformanceMachine):
            config = MachineConfig(
                storage_factory.url, storage_factory.options, storage_factory.timeout
            )

        run_state_machine_as_test(Machine, settings=_settings())

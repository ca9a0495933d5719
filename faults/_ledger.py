"""What writers tried and were told, checked against what the database holds.

Every operation is one batch of ``parts`` messages with a unique id. After a
scenario the stored rows are read back and counted:

* **lost**: an acknowledged operation whose parts are not all stored;
* **duplicated**: an (operation, part) stored more than once (each extra copy
  counts);
* **partial**: an operation with some but not all of its parts stored,
  acknowledged or not (a failed call may leave its batch whole or absent, the
  ambiguous case, but never half);
* **ambiguous**: a call whose failure reached the caller as
  ``TransientError(ambiguous=True)``: it cannot tell whether its batch was
  stored (the core's exactly-once retries must settle every such failure);
* **misplaced**: an acknowledged part stored at another index than the call
  reported;
* **foreign**: a stored message no operation wrote;
* **index_gaps**: indexes missing or repeated in a conversation (each
  conversation must hold exactly ``0..n-1``);
* **scattered**: an operation whose parts are not stored at consecutive
  indexes in order (another writer got in between: not atomic).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ._ops import identify

__all__ = ["Figures", "Ledger", "Op", "RetryCounter", "StoredItem", "describe_error"]


def describe_error(exc: BaseException) -> str:
    """A short kind for an error that reached a caller, e.g. ``TransientError(ambiguous)``."""
    name = type(exc).__name__
    if getattr(exc, "ambiguous", False):
        name += "(ambiguous)"
    return name


class RetryCounter(logging.Handler):
    """Counts the retries the core makes (its ``storage_core.retry`` debug records).

    ``with RetryCounter() as retries: ...`` then ``retries.count``. While it
    counts, those records go nowhere else (hundreds of them would bury a
    failure report).
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self._logger = logging.getLogger("storage_core.retry")
        self._saved = (self._logger.level, self._logger.propagate)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    def __enter__(self) -> RetryCounter:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        self._logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]


@dataclass
class Op:
    """One attempted batch."""

    op: str
    conversation: str
    parts: int
    writer: str = ""
    state: str = "pending"  # pending (outcome never seen), acked, failed
    error: str = ""
    message: str = ""
    indexes: tuple[int, ...] = ()
    acked_at: float | None = None


@dataclass(frozen=True)
class StoredItem:
    """A stored message, reduced to what the counts need."""

    index: int
    content: object


@dataclass
class Figures:
    """The counts of one scenario (see the module docstring)."""

    scenario: str
    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    partial: int = 0
    in_flight: int = 0
    failed_stored: int = 0
    in_flight_stored: int = 0
    misplaced: int = 0
    foreign: int = 0
    index_gaps: int = 0
    scattered: int = 0
    rows: int = 0
    extra: dict[str, object] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The figures line printed for the scenario."""
        head = (
            f"scenario={self.scenario} attempted={self.attempted} "
            f"acknowledged={self.acknowledged} failed={self.failed} lost={self.lost} "
            f"duplicated={self.duplicated} partial={self.partial} ambiguous={self.ambiguous}"
        )
        more = {
            "in_flight": self.in_flight,
            "failed_stored": self.failed_stored,
            "in_flight_stored": self.in_flight_stored,
            "misplaced": self.misplaced,
            "foreign": self.foreign,
            "index_gaps": self.index_gaps,
            "scattered": self.scattered,
            "rows": self.rows,
            **self.extra,
        }
        tail = " ".join(f"{k}={v}" for k, v in more.items())
        errors = ",".join(f"{k}:{n}" for k, n in sorted(self.errors.items()))
        return f"{head} {tail}" + (f" errors={errors}" if errors else "")

    @property
    def ambiguous(self) -> int:
        """Calls whose failure reached the caller as ambiguous (the caller
        cannot tell whether the write was stored)."""
        return sum(n for kind, n in self.errors.items() if "(ambiguous)" in kind)

    def untransient(self) -> int:
        """Failures that reached a caller as something else than a TransientError."""
        return sum(n for kind, n in self.errors.items() if not kind.startswith("TransientError"))

    def problems(self) -> list[str]:
        """Every broken guarantee, as text (empty when all is well)."""
        bad = [
            f"{name}={value}"
            for name, value in (
                ("lost", self.lost), ("duplicated", self.duplicated),
                ("partial", self.partial), ("ambiguous", self.ambiguous),
                ("misplaced", self.misplaced),
                ("foreign", self.foreign), ("index_gaps", self.index_gaps),
                ("scattered", self.scattered),
            )
            if value
        ]
        if not self.acknowledged:
            bad.append("acknowledged=0")
        return bad


class Ledger:
    """Thread-safe record of the operations of one scenario."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.ops: dict[str, Op] = {}
        self._lock = threading.Lock()

    def attempt(self, op: str, conversation: str, parts: int, writer: str = "") -> None:
        with self._lock:
            if op in self.ops:
                raise AssertionError(f"operation id {op} used twice")
            self.ops[op] = Op(op, conversation, parts, writer)

    def ack(self, op: str, indexes: Iterable[int] = (), at: float | None = None) -> None:
        with self._lock:
            entry = self.ops[op]
            entry.state = "acked"
            entry.indexes = tuple(indexes)
            entry.acked_at = time.time() if at is None else at

    def fail(self, op: str, error: str, message: str = "") -> None:
        with self._lock:
            entry = self.ops[op]
            entry.state = "failed"
            entry.error = error
            entry.message = message

    def acked_after(self, moment: float, writer_prefix: str = "") -> int:
        """How many operations were acknowledged after ``moment`` (``time.time()``)."""
        return sum(
            1 for o in self.ops.values()
            if o.state == "acked" and o.acked_at is not None and o.acked_at > moment
            and o.writer.startswith(writer_prefix)
        )

    def verify(self, stored: Mapping[str, Iterable[StoredItem]]) -> Figures:
        """Count against ``stored``: conversation label -> its messages."""
        fig = Figures(self.scenario)
        ops = self.ops
        fig.attempted = len(ops)
        fig.acknowledged = sum(o.state == "acked" for o in ops.values())
        fig.failed = sum(o.state == "failed" for o in ops.values())
        fig.in_flight = sum(o.state == "pending" for o in ops.values())
        fig.errors = Counter(o.error for o in ops.values() if o.state == "failed")
        for o in ops.values():
            if o.state == "failed" and not o.error.startswith("TransientError"):
                self._example(fig, f"{o.op} failed with {o.error}: {o.message}")

        where: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for label, items in stored.items():
            indexes: list[int] = []
            for item in items:
                fig.rows += 1
                indexes.append(item.index)
                ident = identify(item.content)
                if ident is None or ident[0] not in ops:
                    fig.foreign += 1
                    self._example(fig, f"foreign row at {label}#{item.index}")
                    continue
                where.setdefault(ident, []).append((label, item.index))
            counts = Counter(indexes)
            expected = set(range(len(indexes)))
            gaps = len(expected - set(counts)) + sum(n - 1 for n in counts.values())
            if gaps:
                fig.index_gaps += gaps
                missing = sorted(expected - set(counts))[:5]
                self._example(fig, f"{label}: index gaps, missing {missing}")

        for op in ops.values():
            places = [where.get((op.op, j), []) for j in range(op.parts)]
            present = sum(1 for p in places if p)
            extra = sum(max(0, len(p) - 1) for p in places)
            if extra:
                fig.duplicated += extra
                self._example(fig, f"{op.op} ({op.state}) stored {extra} extra time(s)")
            if 0 < present < op.parts:
                fig.partial += 1
                self._example(fig, f"{op.op} ({op.state}) {present}/{op.parts} parts stored")
            if op.state == "acked" and present < op.parts:
                fig.lost += 1
                self._example(fig, f"{op.op} acknowledged, {present}/{op.parts} parts stored")
            if op.state == "failed" and present == op.parts:
                fig.failed_stored += 1
            if op.state == "pending" and present == op.parts:
                fig.in_flight_stored += 1
            if present == op.parts and not extra:
                firsts = [p[0] for p in places]
                labels = {label for label, _ in firsts}
                idx = [i for _, i in firsts]
                if labels != {op.conversation} or idx != list(range(idx[0], idx[0] + op.parts)):
                    fig.scattered += 1
                    self._example(fig, f"{op.op} parts at {firsts}")
                if op.state == "acked" and op.indexes and tuple(idx) != op.indexes:
                    fig.misplaced += 1
                    self._example(fig, f"{op.op} acked at {op.indexes}, stored at {idx}")
        return fig

    @staticmethod
    def _example(fig: Figures, text: str) -> None:
        if len(fig.examples) < 10:
            fig.examples.append(text)

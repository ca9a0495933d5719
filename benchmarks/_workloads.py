"""W1-W4 (and W6 on files) on one target: every subject on its own conversations,
rounds interleaved."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ._data import Conv, now_ms
from ._raw import RawDriver
from ._stats import summarize, timed
from ._subjects import Floor, Original, Ours, SameWork, Subject, original_available
from ._targets import Target

__all__ = ["Config", "Measurement", "run_target"]

log = logging.getLogger("benchmarks")
Op = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Config:
    rounds: int = 5
    ops: int = 20  # timed operations per subject per round (W1, W2)
    warmup: int = 3
    histories: tuple[int, ...] = (0, 1_000, 10_000)
    trim: int = 50
    batch: int = 100
    batch_ops: int = 4  # batches per subject per round (W3)
    conversations: int = 64  # W4
    writers: int = 16  # W4
    saves_per_task: int = 10  # W4
    timeout: float = 60.0  # per W4 round
    budget: float = 3.0  # seconds per subject per latency case: slow calls get fewer samples
    min_ops: int = 3  # ... but never fewer than this per round
    original: bool = True
    loop_saves: int = 1_000  # W6: saves on a file while a ticker watches the event loop
    tick: float = 0.001  # W6: the ticker's sleep, seconds


@dataclass
class Measurement:
    """One subject on one case: latencies in ms, or throughput in saves/s per round."""

    target: str
    workload: str
    case: str
    subject: str
    detail: str
    unit: str
    values: list[float] = field(default_factory=list)
    errors: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = summarize(self.values).as_dict()
        return data


async def _latency(
    target: str, workload: str, case: str, ops: dict[str, tuple[Subject, Op]], cfg: Config,
    count: int | None = None,
) -> list[Measurement]:
    """Warm up, then ``rounds`` rounds of ``count`` timed calls per subject, order rotated.

    A subject whose warm-up calls show it would exceed ``cfg.budget`` seconds
    gets fewer calls per round (never fewer than ``cfg.min_ops``).
    """
    count = cfg.ops if count is None else count
    out = {label: Measurement(target, workload, case, label, s.detail, "ms")
           for label, (s, _) in ops.items()}
    per_round: dict[str, int] = {}
    for label, (_, op) in ops.items():
        warm = [await timed(op) for _ in range(max(1, cfg.warmup))]
        affordable = int(cfg.budget * 1000 / max(min(warm), 1e-3) / cfg.rounds)
        per_round[label] = max(min(cfg.min_ops, count), min(count, affordable))
    labels = list(ops)
    for r in range(cfg.rounds):
        shift = r % len(labels)
        for label in labels[shift:] + labels[:shift]:
            op = ops[label][1]
            out[label].values.extend([await timed(op) for _ in range(per_round[label])])
    return list(out.values())


def _save_op(subject: Subject, conv: Conv, keep: int | None) -> Op:
    return lambda: subject.save(conv, keep)


async def _w1(t: Target, subjects: list[Subject], appending: list[Subject], seeder: RawDriver,
              cfg: Config) -> list[Measurement]:
    """Save one message at each H: as ``save_chat_message`` (which returns the whole
    conversation, or the newest ``max_history_size``) and as ``append_messages``
    (which returns only what it stored). The floor does one INSERT in every
    case; the same-work floors do what our call does (``appending``: the
    subjects of the append case, where the same-work floor reads nothing back);
    the original does its one save in every case."""
    results: list[Measurement] = []
    for h in cfg.histories:
        variants: tuple[int | str | None, ...] = (None, cfg.trim, "append")
        for keep in variants:
            ops: dict[str, tuple[Subject, Op]] = {}
            for s in appending if keep == "append" else subjects:
                conv = Conv("w1", f"h{h}-keep{keep}", s.label)
                await seeder.seed(conv, h, now_ms() - h)
                limit = keep if isinstance(keep, int) else None
                ops[s.label] = (s, _save_op(s, conv, limit))
            case = f"save 1, H={h:,}" + (
                ", append_messages (no read-back)" if keep == "append"
                else f", max_history_size={keep}" if keep else "")
            log.info("%s W1 %s", t.name, case)
            results += await _latency(t.name, "W1", case, ops, cfg)
    return results


async def _w2(t: Target, subjects: list[Subject], seeder: RawDriver, cfg: Config
              ) -> list[Measurement]:
    results: list[Measurement] = []
    for h in cfg.histories:
        conv = Conv("w2", f"newest-h{h}", "agent")
        await seeder.seed(conv, h, now_ms() - h)
        ops: dict[str, tuple[Subject, Op]] = {
            s.label: (s, (lambda s=s, c=conv: s.newest(c, 20))) for s in subjects  # type: ignore[misc]
        }
        log.info("%s W2 newest 20 of %d", t.name, h)
        results += await _latency(t.name, "W2", f"fetch newest 20, H={h:,}", ops, cfg)
    # Reads hand content over undecoded until it is looked at; here every
    # message's content is read, and the floor decodes every row with json.loads.
    h = 1_000 if 1_000 in cfg.histories else cfg.histories[-1]
    conv = Conv("w2", f"newest-read-h{h}", "agent")
    await seeder.seed(conv, h, now_ms() - h)
    ops = {s.label: (s, (lambda s=s, c=conv: s.newest_read(c, 20))) for s in subjects}  # type: ignore[misc]
    log.info("%s W2 newest 20 of %d, content read", t.name, h)
    results += await _latency(
        t.name, "W2", f"fetch newest 20, H={h:,}, every content read", ops, cfg
    )
    whole = Conv("w2", "whole", "agent")
    await seeder.seed(whole, 1_000, now_ms() - 1_000)
    ops = {s.label: (s, (lambda s=s: s.whole(whole))) for s in subjects}  # type: ignore[misc]
    log.info("%s W2 whole", t.name)
    results += await _latency(t.name, "W2", "fetch whole conversation, H=1,000", ops, cfg)
    ts0 = now_ms() - 5_000
    for a in range(5):
        await seeder.seed(Conv("w2", "session", f"agent{a}"), 200, ts0 + a, step=5)
    ops = {s.label: (s, (lambda s=s: s.session("w2", "session"))) for s in subjects}  # type: ignore[misc]
    log.info("%s W2 session", t.name)
    results += await _latency(t.name, "W2", "fetch_all_chats, 5 agents x 200", ops, cfg)
    return results


def _batch_op(subject: Subject, prefix: str, size: int) -> Op:
    counter = iter(range(1_000_000))

    def op() -> Awaitable[None]:
        conv = Conv("w3", prefix, f"{subject.label}-{next(counter)}")
        return subject.save_batch(conv, size)

    return op


async def _w3(t: Target, subjects: list[Subject], appending: list[Subject], cfg: Config
              ) -> list[Measurement]:
    ops = {s.label: (s, _batch_op(s, "save", cfg.batch)) for s in subjects}
    log.info("%s W3", t.name)
    results = await _latency(t.name, "W3", f"batch of {cfg.batch}, new conversation", ops, cfg,
                             cfg.batch_ops)
    ops = {s.label: (s, _batch_op(s, f"append-{s.label}", cfg.batch))
           for s in appending if s.label != "original"}
    results += await _latency(t.name, "W3", f"append_messages of {cfg.batch} (no read-back)",
                              ops, cfg, cfg.batch_ops)
    return results


async def _throughput(
    t: Target, case: str, subject: Subject, label: str, make_convs: Callable[[int], list[Conv]],
    per_task: int, cfg: Config,
) -> Measurement:
    m = Measurement(t.name, "W4", case, label, subject.detail, "saves/s")

    async def task(conv: Conv) -> int:
        errors = 0
        for _ in range(per_task):
            try:
                await subject.save(conv, None)
            except Exception as exc:
                errors += 1
                m.note = f"{type(exc).__name__}: {str(exc)[:120]}"
        return errors

    for r in range(cfg.rounds):
        convs = make_convs(r)
        start = time.perf_counter()
        try:
            errors = await asyncio.wait_for(
                asyncio.gather(*(task(c) for c in convs)), cfg.timeout
            )
        except asyncio.TimeoutError:
            m.note = f"round {r} timed out after {cfg.timeout:.0f} s"
            m.errors += len(convs) * per_task
            break
        elapsed = time.perf_counter() - start
        m.errors += sum(errors)
        m.values.append((len(convs) * per_task - sum(errors)) / elapsed)
    return m


async def _w4(t: Target, subjects: list[Subject], one_conv: dict[str, Subject], cfg: Config
              ) -> list[Measurement]:
    """Throughput; once a round times out (a wedged server), the rest of W4 is skipped."""
    results: list[Measurement] = []
    k, n, w = cfg.saves_per_task, cfg.conversations, cfg.writers
    wedged = ""

    def skipped(case: str, label: str, detail: str) -> Measurement:
        return Measurement(t.name, "W4", case, label, detail, "saves/s",
                           note=f"skipped: {wedged}")

    # One conversation first: it has a target, and the 64 conversations'
    # floors have wedged sqld (the rest of W4 is then skipped).
    for label, s in one_conv.items():
        case = f"{w} writers on one conversation x {k} saves"
        if wedged:
            results.append(skipped(case, label, s.detail))
            continue
        log.info("%s W4 %s %d writers", t.name, label, w)
        convs: dict[int, Conv] = {}

        def make(r: int, s: Subject = s, convs: dict[int, Conv] = convs) -> list[Conv]:
            convs[r] = Conv("w4", f"one-{r}", s.label)
            return [convs[r]] * w

        m = await _throughput(t, case, s, label, make, k, cfg)
        if "timed out" in m.note:
            wedged = f"the server stopped answering during {label}'s {case}"
        else:
            stored = sum([await s.whole(c) for c in convs.values()])
            expected = w * k * len(convs) - m.errors
            if stored != expected:
                m.note = (m.note + "; " if m.note else "") + f"stored {stored} of {expected}"
        results.append(m)
    for s in subjects:
        case = f"{n} conversations x {k} saves"
        if wedged:
            results.append(skipped(case, s.label, s.detail))
            continue
        log.info("%s W4 %s %d conversations", t.name, s.label, n)
        m = await _throughput(
            t, case, s, s.label,
            lambda r, s=s: [Conv("w4", f"many-{r}", f"{s.label}-{i}") for i in range(n)],  # type: ignore[misc]
            k, cfg)
        if "timed out" in m.note:
            wedged = f"the server stopped answering during {s.label}'s {case}"
        results.append(m)
    return results


class _FullCollections:
    """A ``gc.callbacks`` entry timing the collections of the oldest
    generation: a full collection holds the GIL for the whole heap, the
    likeliest cause of a long stall that is not the machine's."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.durations.append((time.perf_counter() - self._started) * 1000)

    def summary(self) -> str:
        if not self.durations:
            return "no full GC"
        return f"{len(self.durations)} full GC, longest {max(self.durations):.1f} ms"


async def _w6(t: Target, subjects: list[Subject], cfg: Config) -> list[Measurement]:
    """Event-loop stalls during ``cfg.loop_saves`` saves on one new conversation
    (``save_chat_message`` without a limit, so it reads back up to that many
    messages): a ticker sleeps ``cfg.tick`` and records when it wakes; a stall
    is a gap beyond the sleep. The same-work floor runs the same ticker, so
    the machine's own scheduling noise shows beside ours."""
    results: list[Measurement] = []
    case = f"event loop during {cfg.loop_saves:,} saves on a file"
    for s in subjects:
        m = Measurement(t.name, "W6", case, s.label, s.detail, "ms")
        conv = Conv("w6", "loop", s.label)
        ticks: list[float] = []
        done = asyncio.Event()

        async def ticker(ticks: list[float] = ticks, done: asyncio.Event = done) -> None:
            while not done.is_set():
                ticks.append(time.perf_counter())
                await asyncio.sleep(cfg.tick)

        log.info("%s W6 %s", t.name, s.label)
        task = asyncio.create_task(ticker())
        await asyncio.sleep(cfg.tick * 5)  # the ticker running before the first save
        collections = _FullCollections()
        gc.callbacks.append(collections)
        try:
            for _ in range(cfg.loop_saves):
                await s.save(conv, None)
        except Exception as exc:
            m.errors += 1
            m.note = f"{type(exc).__name__}: {str(exc)[:120]}"
        finally:
            gc.callbacks.remove(collections)
            done.set()
            await task
        m.values = [max(0.0, (b - a - cfg.tick) * 1000) for a, b in itertools.pairwise(ticks)]
        if not m.errors:
            m.note = collections.summary()
        results.append(m)
    return results


async def run_target(t: Target, cfg: Config) -> list[Measurement]:
    """Every workload on one provisioned target; closes what it opens."""
    opened: list[Any] = []

    async def opened_(obj: Any) -> Any:
        await obj.open()
        opened.append(obj)
        return obj

    try:
        ours = await opened_(Ours(t.url))
        seeder = await opened_(t.make_raw(1))
        floor_raw = await opened_(t.make_raw(1))
        floor = Floor(floor_raw)
        # The same-work floors share the floor's connection: one driver, one
        # connection, as ours has (they never run at the same time).
        same = SameWork(floor_raw, record=True)
        same_norec = SameWork(floor_raw, record=False)
        originals: list[Subject] = []
        why_not = original_available() if cfg.original else "disabled (--no-original)"
        if t.original_url is not None and why_not is None:
            originals.append(await opened_(Original(t.original_url)))
        elif t.original_url is not None:
            log.warning("%s: original not measured: %s", t.name, why_not)
        append = await opened_(Ours(t.url, append_only=True))
        # append_messages: its same-work floor without the record is the floor's
        # one INSERT itself, so only the recording one is added.
        appending: list[Subject] = [append, floor, SameWork(floor_raw, record=True, read=False),
                                    *originals]
        writes: list[Subject] = [ours, floor, same, same_norec, *originals]
        results = await _w1(t, writes, appending, seeder, cfg)
        results += await _w2(t, [ours, floor, *originals], seeder, cfg)
        results += await _w3(t, writes, appending, cfg)
        pool_raw = await opened_(t.make_raw(10))
        pool_floor = Floor(pool_raw)
        pool_same = SameWork(pool_raw, record=True)
        pool_norec = SameWork(pool_raw, record=False)
        w4_subjects = [ours, pool_floor, pool_same, pool_norec, *originals]
        # One conversation, 16 writers: every save must be stored, so the role
        # rule is off for ours (the raw floor has no rule); the original is left
        # out, as its read-then-insert fails under concurrent writers by design.
        unordered = await opened_(Ours(t.url, skip_consecutive_roles=False))
        one_conv: dict[str, Subject] = {"ours": unordered, "floor": pool_floor,
                                        "same": pool_same, "same-norec": pool_norec}
        if t.make_locked_raw is not None:
            locked = SameWork(await opened_(t.make_locked_raw(10)), record=True)
            locked.label = "same-locked"
            locked.detail += ", under a per-conversation lock"
            one_conv["same-locked"] = locked
        results += await _w4(t, w4_subjects, one_conv, cfg)
        if t.url.startswith(("sqlite:", "file:")) and cfg.loop_saves:
            results += await _w6(t, [ours, same], cfg)
        return results
    finally:
        for obj in reversed(opened):
            try:
                await asyncio.wait_for(obj.close(), 30)
            except Exception as exc:
                log.warning("closing %r failed: %s", obj, exc)

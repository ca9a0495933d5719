"""The results table (rich when installed, plain text otherwise), Markdown and JSON."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._stats import percentile, summarize

__all__ = ["Row", "build_rows", "cost_ratio", "floor_goal", "loop_lines", "markdown",
           "print_table"]

HEADERS = ("target", "workload", "ours p50", "ours p95", "floor p50", "ours/floor",
           "same-work p50", "ours/same-work", "ours/same-work w/o record", "goal",
           "original p50", "original/ours", "goal ")
"""``floor``: one statement (an INSERT for a save, the SELECT for a read, one
executemany for a batch); ``same-work``: the raw driver doing what our call
does in one transaction, recording the request id as our writes do over a
network (for reads, the floor itself); ``w/o record``: the same without the
record, the basis of a write's goal on a file (`LOCAL_TARGETS`)."""

# Issue 16's targets: every W1-W3 row within 1.2x of its same-work floor;
# append_messages of one message within 1.3x of the one-row INSERT; 16 writers
# on one conversation within 1.5x of the (same-work) floor's rate.
SAME_WORK_GOAL = 1.2
APPEND_ONE_GOAL = 1.3
ONE_CONVERSATION_GOAL = 1.5
STALL_GOAL_MS = 5.0  # W6: the event loop never stalled longer
LOCAL_TARGETS = frozenset({"sqlite", "libsql-file"})
"""Targets on a file: a transaction there commits or stores nothing, so our
writes record only a caller's request id (docs/contract.md), and a write's
goal is judged against the same-work floor without the record."""


@dataclass
class Row:
    cells: tuple[str, ...]
    ok: list[bool]  # one per checked goal in this row


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "saves/s":
        return f"{value:,.0f}/s"
    return f"{value:.3f}" if value < 10 else f"{value:,.1f}"


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x" if value < 100 else f"{value:,.0f}x"


def floor_goal(workload: str, case: str) -> tuple[float, str] | None:
    """The goal of a row as (highest ratio, basis): basis ``"floor"`` (the one
    statement) or ``"same"`` (the same-work floor); None: no goal."""
    if workload == "W1" and "append_messages" in case:
        return APPEND_ONE_GOAL, "floor"
    if workload in ("W1", "W2", "W3"):
        return SAME_WORK_GOAL, "same"
    if workload == "W4" and "writers on one conversation" in case:
        return ONE_CONVERSATION_GOAL, "same"
    return None


def _original_goal(workload: str, case: str) -> float | None:
    saving = workload == "W1" and "max_history_size" not in case
    if saving or (workload == "W2" and case.startswith("fetch newest")):
        if "H=10,000" in case:
            return 100.0
        if "H=1,000" in case:
            return 10.0
    return None


def cost_ratio(ours: float, floor: float, unit: str) -> float:
    """Ours over the floor, 1 = no cost; for throughput the floor's rate over ours."""
    if math.isnan(ours) or math.isnan(floor) or ours <= 0 or floor <= 0:
        return math.nan
    return floor / ours if unit == "saves/s" else ours / floor


def build_rows(measurements: Iterable[dict[str, Any]],
               unavailable: dict[str, str]) -> list[Row]:
    groups: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for m in measurements:
        if m["workload"] != "W6":  # stalls: see loop_lines
            groups.setdefault((m["target"], m["workload"], m["case"]), {})[m["subject"]] = m
    rows: list[Row] = []
    for (target, workload, case), by in groups.items():
        ours, floor, orig = by.get("ours"), by.get("floor"), by.get("original")
        unit = (ours or floor or {"unit": "ms"})["unit"]

        med = {k: summarize(by[k]["values"]).median if k in by else math.nan
               for k in ("ours", "floor", "same", "same-norec", "original")}
        # Where no same-work floor was measured, the floor does the same work
        # (reads; and append_messages without the record).
        same = med["same"] if "same" in by else med["floor"]
        norec = med["same-norec"] if "same-norec" in by else (
            med["floor"] if "same" in by else math.nan)
        p95 = summarize(ours["values"]).p95 if ours else math.nan
        vs_floor = cost_ratio(med["ours"], med["floor"], unit)
        vs_same = cost_ratio(med["ours"], same, unit)
        vs_norec = cost_ratio(med["ours"], norec, unit)
        vs_orig = cost_ratio(med["original"], med["ours"], unit)  # how much slower it is
        oks: list[bool] = []
        goal_f = floor_goal(workload, case)
        goal_o = _original_goal(workload, case) if orig else None
        fcell = ocell = ""
        if goal_f is not None:
            limit, basis = goal_f
            name = "floor" if basis == "floor" else "same-work"
            ratio = vs_floor if basis == "floor" else vs_same
            if basis == "same" and target in LOCAL_TARGETS and not math.isnan(vs_norec):
                ratio, name = vs_norec, "same-work w/o record"
            if not math.isnan(ratio):
                oks.append(ratio <= limit)
                fcell = f"<= {limit}x {name} " + ("met" if oks[-1] else "MISSED")
        if goal_o is not None and not math.isnan(vs_orig):
            oks.append(vs_orig >= goal_o)
            ocell = f">= {goal_o:.0f}x " + ("met" if oks[-1] else "MISSED")
        notes = []
        if "same-locked" in by:  # see AsyncpgRaw._locked
            locked = summarize(by["same-locked"]["values"]).median
            notes.append(f"same-work floor under a per-conversation lock: "
                         f"{_fmt(locked, unit)}, ours/that "
                         f"{_ratio(cost_ratio(med['ours'], locked, unit))}")
        notes += [f"{s}: {v['errors']} errors" for s, v in by.items() if v["errors"]]
        notes += [f"{s}: {' '.join(v['note'].split())}" for s, v in by.items() if v["note"]]
        label = f"{workload} {case}" + (f" [{'; '.join(notes)}]" if notes else "")
        rows.append(Row((target, label, _fmt(med["ours"], unit), _fmt(p95, unit),
                         _fmt(med["floor"], unit), _ratio(vs_floor), _fmt(same, unit),
                         _ratio(vs_same), _ratio(vs_norec), fcell,
                         _fmt(med["original"], unit), _ratio(vs_orig), ocell), oks))
    for target, reason in unavailable.items():
        rows.append(Row((target, f"unavailable: {reason}", *[""] * (len(HEADERS) - 2)), []))
    return rows


def loop_lines(measurements: Iterable[dict[str, Any]]) -> list[tuple[str, bool | None]]:
    """W6, one line per target: our longest event-loop stall against the goal,
    with its p99 and count over the goal, and the same-work floor's (the
    machine's noise) beside it; each with met (True), missed (False) or None
    (not measured, e.g. the saves failed)."""
    by_target: dict[str, dict[str, dict[str, Any]]] = {}
    for m in measurements:
        if m["workload"] == "W6":
            by_target.setdefault(m["target"], {})[m["subject"]] = m
    lines: list[tuple[str, bool | None]] = []
    for target, by in by_target.items():
        parts = []
        ok: bool | None = None
        for subject in ("ours", "same"):
            if subject not in by:
                continue
            values = by[subject]["values"]
            if not values or by[subject]["errors"]:
                parts.append(f"{subject}: not measured ({by[subject]['note'] or 'no ticks'})")
                continue
            longest = max(values)
            over = sum(1 for v in values if v > STALL_GOAL_MS)
            parts.append(f"{subject}: longest stall {longest:.1f} ms, p99 "
                         f"{percentile(values, 99):.2f} ms, {over} of {len(values):,} "
                         f"ticks over {STALL_GOAL_MS:g} ms"
                         + (f" ({by[subject]['note']})" if by[subject]["note"] else ""))
            if subject == "ours":
                ok = longest <= STALL_GOAL_MS
        case = next(iter(by.values()))["case"]
        verdict = "" if ok is None else (f"; goal <= {STALL_GOAL_MS:g} ms "
                                         + ("met" if ok else "MISSED"))
        lines.append((f"W6 {target}, {case}: " + "; ".join(parts) + verdict, ok))
    return lines


def print_table(rows: Sequence[Row], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(markdown(rows))
        return
    table = Table(title=title, show_lines=False)
    for h in HEADERS:
        table.add_column(h.strip(), justify="left" if h in ("target", "workload") else "right")
    previous = None
    for row in rows:
        if previous is not None and row.cells[0] != previous:
            table.add_section()
        previous = row.cells[0]
        style = "red" if not all(row.ok) else None
        table.add_row(*row.cells, style=style)
    Console(width=250).print(table)


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(h.strip() for h in HEADERS) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(HEADERS))) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row.cells) + " |" for row in rows]
    return "\n".join(lines)

"""The results table (rich when installed, plain text otherwise), Markdown and JSON."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._stats import summarize

__all__ = ["Row", "build_rows", "markdown", "print_table"]

HEADERS = ("target", "workload", "ours p50", "ours p95", "floor p50", "ours/floor",
           "goal", "original p50", "original/ours", "goal ")


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


def _floor_goal(workload: str, case: str) -> float | None:
    if workload == "W1":
        return 1.3
    if workload == "W2" and case.startswith("fetch newest"):
        return 1.2
    if workload == "W3" and case.startswith("batch"):
        return 1.2
    return None


def _original_goal(workload: str, case: str) -> float | None:
    saving = workload == "W1" and "max_history_size" not in case
    if saving or (workload == "W2" and case.startswith("fetch newest")):
        if "H=10,000" in case:
            return 100.0
        if "H=1,000" in case:
            return 10.0
    return None


def build_rows(measurements: Iterable[dict[str, Any]],
               unavailable: dict[str, str]) -> list[Row]:
    groups: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for m in measurements:
        groups.setdefault((m["target"], m["workload"], m["case"]), {})[m["subject"]] = m
    rows: list[Row] = []
    for (target, workload, case), by in groups.items():
        ours, floor, orig = by.get("ours"), by.get("floor"), by.get("original")
        unit = (ours or floor or {"unit": "ms"})["unit"]
        med = {k: summarize(v["values"]).median if v else math.nan
               for k, v in (("ours", ours), ("floor", floor), ("original", orig))}
        p95 = summarize(ours["values"]).p95 if ours else math.nan
        if unit == "saves/s":  # throughput: the cost ratio is floor rate / our rate
            vs_floor, vs_orig = med["floor"] / med["ours"], med["ours"] / med["original"]
        else:
            vs_floor, vs_orig = med["ours"] / med["floor"], med["original"] / med["ours"]
        oks: list[bool] = []
        goal_f = _floor_goal(workload, case)
        goal_o = _original_goal(workload, case) if orig else None
        fcell = ocell = ""
        if goal_f is not None and not math.isnan(vs_floor):
            oks.append(vs_floor <= goal_f)
            fcell = f"<= {goal_f}x " + ("ok" if oks[-1] else "MISSED")
        if goal_o is not None and not math.isnan(vs_orig):
            oks.append(vs_orig >= goal_o)
            ocell = f">= {goal_o:.0f}x " + ("ok" if oks[-1] else "MISSED")
        notes = [f"{s}: {v['errors']} errors" for s, v in by.items() if v["errors"]]
        notes += [f"{s}: {v['note']}" for s, v in by.items() if v["note"]]
        label = f"{workload} {case}" + (f" [{'; '.join(notes)}]" if notes else "")
        rows.append(Row((target, label, _fmt(med["ours"], unit), _fmt(p95, unit),
                         _fmt(med["floor"], unit), _ratio(vs_floor), fcell,
                         _fmt(med["original"], unit), _ratio(vs_orig), ocell), oks))
    for target, reason in unavailable.items():
        rows.append(Row((target, f"unavailable: {reason}", *[""] * 8), []))
    return rows


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
    Console(width=200).print(table)


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(h.strip() for h in HEADERS) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(HEADERS))) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row.cells) + " |" for row in rows]
    return "\n".join(lines)

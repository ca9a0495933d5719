"""Chart of each backend's cost ratio to the floor, from benchmark runs' JSON.

``python -m benchmarks.chart RUN.json [RUN.json ...] -o docs/assets/bench-ratios.svg``

Writes a standalone SVG (no plotting library: the chart is a mark per target
and case on a log scale, which a few lines of SVG draw, and the text output
keeps the committed file diffable). Given several runs, each mark is the
median of the runs' ratios and a line spans the lowest to the highest, so
the noise of a busy machine shows instead of hiding in one run. The runs it
comes from (date, quick or full, machine, load) are printed on the chart.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["combined_ratios", "floor_ratios", "render_svg"]

# Okabe-Ito colours (distinguishable with colour-blindness) and a shape each.
STYLES = {
    "sqlite": ("#0072B2", "circle"),
    "libsql-file": ("#009E73", "square"),
    "libsql-http": ("#E69F00", "diamond"),
    "libsql-ws": ("#CC79A7", "triangle"),
    "postgres": ("#D55E00", "down"),
}
WORKLOADS = {
    "W1": "W1: save one message",
    "W2": "W2: read",
    "W3": "W3: a batch of 100",
    "W4": "W4: concurrent saves (the floor's rate over ours)",
}
ROW, LEFT, PLOT, TOP = 22, 330, 420, 136


def floor_ratios(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
    """(workload, case) -> target -> our median over the floor's, in run order.

    For throughput (saves/s) the ratio is the floor's rate over ours, so that
    in both cases 1 is the floor and higher costs more (as in the table).
    """
    medians: dict[tuple[str, str, str], dict[str, tuple[float, str]]] = {}
    for m in report["measurements"]:
        median = m["summary"]["median"]
        if m["summary"]["n"] and median is not None and not math.isnan(median):
            key = (m["workload"], m["case"], m["target"])
            medians.setdefault(key, {})[m["subject"]] = (median, m["unit"])
    ratios: dict[tuple[str, str], dict[str, float]] = {}
    for (workload, case, target), by in medians.items():
        row = ratios.setdefault((workload, case), {})
        if "ours" in by and "floor" in by and by["ours"][0] > 0 and by["floor"][0] > 0:
            (ours, unit), (floor, _) = by["ours"], by["floor"]
            row[target] = floor / ours if unit == "saves/s" else ours / floor
    return ratios


def combined_ratios(
    reports: Sequence[dict[str, Any]],
) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(workload, case) -> target -> the ratio in each run that has one."""
    combined: dict[tuple[str, str], dict[str, list[float]]] = {}
    for report in reports:
        for key, row in floor_ratios(report).items():
            for target, ratio in row.items():
                combined.setdefault(key, {}).setdefault(target, []).append(ratio)
            combined.setdefault(key, {})
    return combined


def _run_labels(reports: Sequence[dict[str, Any]]) -> list[str]:
    kinds = {"quick" if r.get("config", {}).get("rounds") == 2
             and r.get("config", {}).get("ops") == 4 else "full" for r in reports}
    runs = []
    for r in reports:
        when = str(r.get("started", "?")).replace("T", " ")[:16]
        load = r.get("machine", {}).get("load_average")
        runs.append(f"{when} ({r.get('seconds', '?')} s"
                    + (f", load average {load[0]:g} at the start)" if load else ")"))
    mach = reports[0].get("machine", {})
    kind = "/".join(sorted(kinds))
    what = (f"{kind} run of python -m benchmarks" if len(reports) == 1 else
            f"median of {len(reports)} {kind} runs of python -m benchmarks; "
            "each line spans the runs' lowest to highest ratio")
    machine = (f"{mach.get('cpus', '?')} CPUs ({mach.get('cpu', '?')}), "
               f"{mach.get('implementation', 'Python')} {mach.get('python', '?')}")
    return [f"{what}; {machine}", "runs: " + ", ".join(runs)]


def _marker(shape: str, x: float, y: float, colour: str) -> str:
    r = 5.0
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}"/>'
    if shape == "square":
        return (f'<rect x="{x - r + 0.8:.1f}" y="{y - r + 0.8:.1f}" width="{2 * r - 1.6:.1f}" '
                f'height="{2 * r - 1.6:.1f}" fill="{colour}"/>')
    points = {
        "diamond": ((0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)),
        "triangle": ((0, -r - 1), (r + 1, r), (-r - 1, r)),
        "down": ((0, r + 1), (r + 1, -r), (-r - 1, -r)),
    }[shape]
    text = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in points)
    return f'<polygon points="{text}" fill="{colour}"/>'


def _ticks(low: float, high: float) -> list[float]:
    ticks, decade = [], 0.01
    while decade <= high:
        ticks += [round(t, 3) for t in (decade, 2 * decade, 5 * decade) if low <= t <= high]
        decade *= 10
    return ticks


def render_svg(reports: Sequence[dict[str, Any]], note: str = "") -> str:
    """The chart of the runs' ratios to the floor as an SVG document."""
    runs = combined_ratios(reports)
    ratios = {key: {t: statistics.median(v) for t, v in row.items()}
              for key, row in runs.items()}
    values = [v for row in runs.values() for vs in row.values() for v in vs]
    high = next(t for t in (2, 5, 10, 20, 50, 100, 200, 500, 1000, 1e9)
                if t >= max(values, default=1))
    low = next(t for t in (0.5, 0.2, 0.1, 0.01) if t <= min(values, default=1))
    span = math.log10(high) - math.log10(low)

    def xpos(value: float) -> float:
        clamped = min(max(value, low), high)
        return LEFT + PLOT * (math.log10(clamped) - math.log10(low)) / span

    rows: list[tuple[str, str | None, dict[str, float]]] = []
    previous = None
    for (workload, case), row in ratios.items():
        if workload != previous:
            rows.append((WORKLOADS.get(workload, workload), None, {}))
            previous = workload
        rows.append((case, workload, row))
    targets = [t for t in dict.fromkeys(m["target"] for r in reports
                                          for m in r["measurements"])
               if any(t in row for row in ratios.values())]
    height = TOP + ROW * len(rows) + 40
    width = LEFT + PLOT + 130
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Verdana, sans-serif" '
        'font-size="12" role="img" aria-labelledby="title">',
        '<title id="title">Each backend\'s median cost as a multiple of the raw driver '
        "(the floor), per workload</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="12" y="24" font-size="16" font-weight="bold">Cost relative to the raw '
        "driver (median; 1x = the floor, lower is better)</text>",
    ]
    for n, line in enumerate([*_run_labels(reports), *([note] if note else [])]):
        out.append(f'<text x="12" y="{44 + 17 * n}" font-size="11" fill="#444">'
                   f"{escape(line)}</text>")
    # legend
    x = 12.0
    for target in targets:
        colour, shape = STYLES.get(target, ("#555555", "circle"))
        out.append(_marker(shape, x + 5, 102, colour))
        out.append(f'<text x="{x + 15:.0f}" y="106">{escape(target)}</text>')
        x += 30 + 8 * len(target)
    # axis and grid
    plot_top, plot_bottom = TOP - 8, TOP + ROW * len(rows)
    for tick in _ticks(low, high):
        tx = xpos(tick)
        strong = tick == 1
        out.append(f'<line x1="{tx:.1f}" y1="{plot_top}" x2="{tx:.1f}" y2="{plot_bottom}" '
                   f'stroke="{"#333" if strong else "#ddd"}" '
                   f'stroke-width="{1.5 if strong else 1}"/>')
        label = f"{tick:g}x"
        out.append(f'<text x="{tx:.1f}" y="{plot_top - 4}" text-anchor="middle" '
                   f'fill="#444">{label}</text>')
        out.append(f'<text x="{tx:.1f}" y="{plot_bottom + 16}" text-anchor="middle" '
                   f'fill="#444">{label}</text>')
    # rows
    for i, (label, group, row) in enumerate(rows):
        y = TOP + ROW * i + ROW / 2
        if group is None:
            out.append(f'<text x="12" y="{y + 4:.1f}" font-weight="bold">{escape(label)}</text>')
            continue
        if i % 2:
            out.append(f'<rect x="{LEFT}" y="{y - ROW / 2:.1f}" width="{PLOT}" height="{ROW}" '
                       'fill="#f4f6f8"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                   f"{escape(label)}</text>")
        spread = runs[(group, label)]
        for target, value in sorted(row.items(), key=lambda kv: -kv[1]):
            colour, shape = STYLES.get(target, ("#555555", "circle"))
            each = spread[target]
            title = f"{target}, {label}: {value:.2f}x"
            line = ""
            if len(each) > 1:
                title += " (runs: " + ", ".join(f"{v:.2f}x" for v in each) + ")"
                line = (f'<line x1="{xpos(min(each)):.1f}" y1="{y:.1f}" '
                        f'x2="{xpos(max(each)):.1f}" y2="{y:.1f}" stroke="{colour}" '
                        'stroke-width="2" stroke-opacity="0.45"/>')
            out.append(f"<g><title>{escape(title)}</title>{line}"
                       f"{_marker(shape, xpos(value), y, colour)}</g>")
        missing = [t for t in targets if t not in row]
        if missing:
            out.append(f'<text x="{LEFT + PLOT + 6}" y="{y + 4:.1f}" font-size="10" '
                       f'fill="#777">no figure: {escape(", ".join(missing))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.chart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", type=Path, nargs="+",
                   help="runs' JSON (python -m benchmarks --json PATH)")
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the SVG")
    p.add_argument("--note", default="", help="one more line under the runs' label")
    args = p.parse_args(argv)
    reports = [json.loads(path.read_text()) for path in args.json]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render_svg(reports, args.note))
    print(f"chart: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

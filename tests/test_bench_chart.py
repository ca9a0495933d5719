"""benchmarks/chart.py: the performance page's chart from a run's JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def chart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_chart", ROOT / "benchmarks" / "chart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def measurement(target: str, workload: str, case: str, subject: str, unit: str,
                median: float) -> dict[str, Any]:
    return {"target": target, "workload": workload, "case": case, "subject": subject,
            "unit": unit, "values": [median], "errors": 0, "note": "",
            "summary": {"n": 1, "median": median, "p95": median, "mean": median, "min": median}}


REPORT: dict[str, Any] = {
    "started": "2026-12-03T11:17:35+0000",
    "seconds": 221.8,
    "machine": {"python": "3.11.7", "implementation": "CPython", "cpus": 2, "cpu": "Xeon",
                "load_average": [1.5, 2.0, 2.5]},
    "config": {"rounds": 5, "ops": 20},
    "measurements": [
        measurement("sqlite", "W1", "save 1, H=0", "ours", "ms", 0.6),
        measurement("sqlite", "W1", "save 1, H=0", "floor", "ms", 0.4),
        measurement("sqlite", "W1", "save 1, H=0", "original", "ms", 2.0),
        measurement("postgres", "W1", "save 1, H=0", "ours", "ms", 0.5),
        measurement("postgres", "W1", "save 1, H=0", "floor", "ms", 0.5),
        measurement("sqlite", "W4", "64 conversations x 10 saves", "ours", "saves/s", 2000.0),
        measurement("sqlite", "W4", "64 conversations x 10 saves", "floor", "saves/s", 3000.0),
        # the floor has no figure here (a stalled server): no point, and a note
        measurement("postgres", "W4", "64 conversations x 10 saves", "ours", "saves/s", 900.0),
    ],
}


def test_ratios_are_cost_over_the_floor_for_latency_and_throughput(chart: ModuleType) -> None:
    ratios = chart.floor_ratios(REPORT)
    assert list(ratios) == [("W1", "save 1, H=0"), ("W4", "64 conversations x 10 saves")]
    assert ratios[("W1", "save 1, H=0")] == pytest.approx({"sqlite": 1.5, "postgres": 1.0})
    # saves/s: the floor's rate over ours, so above 1 still means slower than the floor
    assert ratios[("W4", "64 conversations x 10 saves")] == pytest.approx({"sqlite": 1.5})


def test_svg_has_a_point_per_ratio_the_run_label_and_missing_figures(
    chart: ModuleType, tmp_path: Path
) -> None:
    source = tmp_path / "run.json"
    source.write_text(json.dumps(REPORT))
    out = tmp_path / "docs" / "chart.svg"
    assert chart.main([str(source), "-o", str(out), "--note", "code at abc1234"]) == 0
    root = ET.fromstring(out.read_text())
    assert root.tag == f"{SVG}svg"
    points = [g.findtext(f"{SVG}title") or "" for g in root.iter(f"{SVG}g")]
    assert sorted(points) == [
        "postgres, save 1, H=0: 1.00x",
        "sqlite, 64 conversations x 10 saves: 1.50x",
        "sqlite, save 1, H=0: 1.50x",
    ]
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any(t.startswith("full run of python -m benchmarks; 2 CPUs") for t in texts)
    assert "runs: 2026-12-03 11:17 (221.8 s, load average 1.5 at the start)" in texts
    assert "code at abc1234" in texts
    assert "no figure: postgres" in texts


def test_several_runs_plot_the_median_and_the_spread(chart: ModuleType) -> None:
    def scaled(factor: float) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(json.dumps(REPORT))
        for m in report["measurements"]:
            if m["subject"] == "ours" and m["unit"] == "ms":
                m["summary"]["median"] *= factor
        return report

    runs = [scaled(1.0), scaled(2.0), scaled(1.2)]
    combined = chart.combined_ratios(runs)
    assert combined[("W1", "save 1, H=0")]["sqlite"] == pytest.approx([1.5, 3.0, 1.8])
    root = ET.fromstring(chart.render_svg(runs))
    titles = [g.findtext(f"{SVG}title") for g in root.iter(f"{SVG}g")]
    assert "sqlite, save 1, H=0: 1.80x (runs: 1.50x, 3.00x, 1.80x)" in titles
    # one line per point that has more than one run behind it
    assert len([g for g in root.iter(f"{SVG}g") if g.find(f"{SVG}line") is not None]) == 3
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any(t.startswith("median of 3 full runs") for t in texts)

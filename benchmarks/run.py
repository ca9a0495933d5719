"""The benchmark runner: ``python -m benchmarks`` (or ``nox -s bench``).

Measures every requested backend and URL kind side by side in one run: our
``ChatStorage``, the raw driver's floor on the same table (one statement, and
the same work as our call in one transaction: see ``_raw.py``), and
agent-squad's original ``SqlChatStorage`` where it supports the URL; then
event-loop stalls on files (W6), cold start and memory in fresh processes.
Prints a table with the performance targets met or MISSED per row and writes JSON
(and optionally Markdown). A target that cannot run here (backend not
installed, no server) is an "unavailable" row, not a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from . import coldstart
from ._report import build_rows, loop_lines, markdown, print_table
from ._servers import Unavailable
from ._targets import TARGETS, provision
from ._workloads import Config, Measurement, run_target

log = logging.getLogger("benchmarks")
RESULTS = Path(__file__).resolve().parent / "results"

QUICK = Config(rounds=2, ops=4, warmup=1, batch_ops=1, saves_per_task=2, timeout=15, budget=0.5,
               min_ops=1, loop_saves=300)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    if hasattr(os, "getloadavg"):  # how busy the machine was when the run started
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    try:
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
        with open("/proc/cpuinfo") as f:
            models = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu"] = models[0] if models else platform.processor()
    except OSError:
        pass
    return info


def _quiet_closed_hrana_futures() -> None:
    """One log line, not a traceback per call, for libsql-client's known fault:
    when a wedged sqld's stream closes, its callbacks set an exception on
    futures already cancelled by our time-out (``InvalidStateError``)."""
    loop = asyncio.get_running_loop()
    seen = [0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), asyncio.InvalidStateError):
            seen[0] += 1
            if seen[0] == 1:
                log.warning("libsql-client set a result on a cancelled future (after a "
                            "time-out); further ones are not logged")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def measure_all(names: list[str], cfg: Config, workdir: Path, postgres_url: str | None
                      ) -> tuple[list[Measurement], dict[str, str], dict[str, str]]:
    measurements: list[Measurement] = []
    unavailable: dict[str, str] = {}
    described: dict[str, str] = {}
    _quiet_closed_hrana_futures()
    for name in names:
        started = time.perf_counter()
        try:
            async with provision(name, workdir, postgres_url) as target:
                described[name] = target.description
                log.info("== %s (%s)", name, target.description)
                measurements += await run_target(target, cfg)
        except Unavailable as exc:
            log.warning("%s unavailable: %s", name, exc)
            unavailable[name] = str(exc)
        except Exception as exc:  # a broken backend is a row, not the end of the run
            log.exception("%s failed", name)
            unavailable[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        log.info("%s took %.1f s", name, time.perf_counter() - started)
    return measurements, unavailable, described


def memory_run(url: str, saves: int, conversations: int) -> dict[str, Any]:
    log.info("memory: %d saves over %d conversations on %s", saves, conversations, url)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--url", url, "--saves", str(saves),
         "--conversations", str(conversations)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    if proc.returncode != 0:
        return {"url": url, "error": proc.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def cold_start(workdir: Path, runs: int) -> dict[str, Any]:
    """Each subject of :mod:`benchmarks.coldstart` in ``runs`` fresh processes,
    interleaved; the medians per subject."""
    log.info("cold start: %d fresh processes per subject", runs)
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in coldstart.SUBJECTS}
    for run in range(runs):
        for subject in coldstart.SUBJECTS:
            results[subject].append(coldstart.measure(subject, workdir, run))
    return {s: coldstart.summarize_runs(r) for s, r in results.items()}


def cold_lines(cold: dict[str, Any]) -> list[str]:
    """The cold-start figures as printed lines (medians of the runs)."""
    bare = cold.get("bare", {})
    lines = [f"cold start (fresh processes, medians of {bare.get('runs', 0)}): the interpreter "
             f"alone peaks at {bare.get('start_peak_mib', float('nan')):.1f} MiB"]
    for subject, what in (("ours", "import storage_core"), ("floor", "import aiosqlite")):
        c = cold.get(subject, {})
        if "first_save_ms" not in c:
            lines.append(f"  {subject}: failed: {c.get('errors')}")
            continue
        save = ("make_storage + initialize + save_chat_message" if subject == "ours"
                else "connect + CREATE TABLE/INDEX + INSERT")
        lines.append(
            f"  {subject:<5} {what}: {c['import_ms']:.1f} ms, peak {c['import_peak_mib']:.1f} MiB;"
            f" first save on a new file ({save}): {c['first_save_ms']:.1f} ms, peak "
            f"{c['first_save_peak_mib']:.1f} MiB; whole process {c['process_ms']:.0f} ms")
    return lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a small smoke run (under a minute)")
    p.add_argument("--backends", default=",".join(TARGETS),
                   help=f"comma-separated, of: {','.join(TARGETS)} (default: all)")
    p.add_argument("--rounds", type=int, help="rounds per case (default 5, quick 2)")
    p.add_argument("--ops", type=int, help="timed calls per subject per round")
    p.add_argument("--histories", help="comma-separated H values (default 0,1000,10000)")
    p.add_argument("--no-original", action="store_true", help="skip agent-squad's storage")
    p.add_argument("--memory", choices=("on", "off", "only"), default="on",
                   help="the memory run: 100,000 saves over 10,000 conversations "
                        "(quick: 2,000 over 500) on SQLite and memory://")
    p.add_argument("--cold", choices=("on", "off"), default="on",
                   help="cold start: import and first save in fresh processes (5 runs, quick 3)")
    p.add_argument("--json", type=Path, help="where to write JSON "
                   "(default benchmarks/results/bench-<time>.json)")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    p.add_argument("--postgres-url", help="admin URL of the PostgreSQL server "
                   "(default $BENCH_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/postgres)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:
        log.setLevel(logging.INFO)
    cfg = QUICK if args.quick else Config()
    if args.rounds:
        cfg = replace(cfg, rounds=args.rounds)
    if args.ops:
        cfg = replace(cfg, ops=args.ops)
    if args.histories:
        cfg = replace(cfg, histories=tuple(int(h) for h in args.histories.split(",")))
    if args.no_original:
        cfg = replace(cfg, original=False)
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    started = time.time()
    measurements: list[Measurement] = []
    unavailable: dict[str, str] = {}
    described: dict[str, str] = {}
    memory: list[dict[str, Any]] = []
    cold: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="storage-core-bench-") as tmp:
        workdir = Path(tmp)
        if args.memory != "only":
            measurements, unavailable, described = asyncio.run(
                measure_all(names, cfg, workdir, args.postgres_url))
        if args.cold == "on":
            cold = cold_start(workdir, 3 if args.quick else 5)
        if args.memory != "off":
            saves, convs = (2_000, 500) if args.quick else (100_000, 10_000)
            for url in (f"sqlite:///{workdir}/memory.db", "memory://"):
                memory.append(memory_run(url, saves, convs))
    measured = [m.as_dict() for m in measurements]
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine(),
        "config": asdict(cfg),
        "targets": {n: ({"status": "unavailable", "reason": unavailable[n]} if n in unavailable
                        else {"status": "ok", "description": described.get(n, "")})
                    for n in names},
        "measurements": measured,
        "memory": memory,
        "cold_start": cold,
    }
    rows = build_rows(measured, unavailable)
    if args.memory != "only":
        print_table(rows, f"storage_core benchmarks ({'quick' if args.quick else 'full'}; "
                          "latency in ms, throughput in saves/s)")
    loop = loop_lines(measured)
    for line, _ in loop:
        print(line)
    if cold:
        print("\n".join(cold_lines(cold)))
    for m in memory:
        if "error" in m:
            print(f"memory {m['url']}: failed: {m['error']}")
            continue
        points = ", ".join(f"{p['saves']:,}: {p['rss_mib']:.1f}" for p in m["checkpoints"])
        print(f"memory {m['url']}: {m['saves']:,} saves over {m['conversations']:,} "
              f"conversations, RSS MiB at saves {points}; growth after the first "
              f"checkpoint {m['growth_after_first_checkpoint_mib']:.1f} MiB")
    path = args.json or RESULTS / time.strftime("bench-%Y%m%d-%H%M%S.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"JSON: {path}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(rows) + "\n")
        print(f"Markdown: {args.markdown}")
    missed = sum(1 for r in rows for ok in r.ok if not ok) + sum(1 for _, ok in loop if ok is False)
    if missed:
        print(f"{missed} goal(s) missed (reported, not asserted)")
    return 0

"""Cold start: importing, then a first save on a new SQLite file, in a fresh process.

``python -m benchmarks.coldstart --subject ours|floor --dir DIR`` prints one
JSON object: the import's time and the process's peak RSS after it, then the
first save's (from ``make_storage`` to the save's answer, on a file that does
not exist yet: plugin discovery, the backend's imports, the connection, the
schema, the save) and the peak after it. ``floor`` is the raw driver's
equivalent: ``import aiosqlite`` (which imports ``sqlite3``), then connect
with the same pragmas, create the ``conversations`` table and its index, and
insert one row. ``bare`` imports nothing: the interpreter's own start.

The runner starts each in its own subprocess (:func:`measure`), so nothing is
imported or cached beforehand; peak RSS is the process's high-water mark
(``VmHWM``), which includes the interpreter itself (``bare`` shows how much).
"""

from __future__ import annotations

# Only what the interpreter has loaded anyway at the top: the import is timed
# before anything else (asyncio, json, argparse) is, so nothing is preloaded.
import resource
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["measure", "summarize_runs"]

SUBJECTS = ("bare", "ours", "floor")
_TABLE = """CREATE TABLE IF NOT EXISTS conversations (user_id TEXT NOT NULL,
session_id TEXT NOT NULL, agent_id TEXT NOT NULL, message_index INTEGER NOT NULL,
role TEXT NOT NULL, content TEXT NOT NULL, timestamp INTEGER NOT NULL,
PRIMARY KEY (user_id, session_id, agent_id, message_index))"""
_INDEX = """CREATE INDEX IF NOT EXISTS idx_conversations_lookup
ON conversations(user_id, session_id, agent_id)"""
_INSERT = """INSERT INTO conversations (user_id, session_id, agent_id, message_index, role,
content, timestamp) VALUES ('u', 's', 'a', 0, 'user', '[{"text": "hello"}]', 0)"""


def _peak_mib() -> float:
    """This process's peak RSS: VmHWM, which starts anew at exec (Linux keeps
    ``ru_maxrss`` across exec, so a child would report its parent's peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # Elsewhere: KiB on Linux, bytes on macOS (this benchmark runs on Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _first_save_ours(path: Path) -> None:
    from storage_core import make_storage

    storage = make_storage(f"sqlite:///{path}")
    # Closing is not part of the first save's time: the caller closes it afterwards.
    _first_save_ours.storage = storage  # type: ignore[attr-defined]
    await storage.initialize()
    await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "hello"})


async def _first_save_floor(path: Path) -> None:
    import aiosqlite

    conn = await aiosqlite.connect(str(path), isolation_level=None)
    _first_save_floor.conn = conn  # type: ignore[attr-defined]
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    await conn.execute(_TABLE)
    await conn.execute(_INDEX)
    await conn.execute(_INSERT)


def _run(subject: str, path: Path) -> dict[str, float]:
    out: dict[str, float] = {"start_peak_mib": _peak_mib()}
    if subject == "bare":
        return out
    start = time.perf_counter()
    if subject == "ours":
        import storage_core  # noqa: F401
    else:
        import aiosqlite  # noqa: F401
    out["import_ms"] = (time.perf_counter() - start) * 1000
    out["import_peak_mib"] = _peak_mib()
    import asyncio  # imported by both above already; here for the loop

    async def first_save() -> None:
        start = time.perf_counter()
        save, opened = ((_first_save_ours, "storage") if subject == "ours"
                        else (_first_save_floor, "conn"))
        try:
            await save(path)
            out["first_save_ms"] = (time.perf_counter() - start) * 1000
            out["first_save_peak_mib"] = _peak_mib()
        finally:  # else the driver's thread keeps the process alive
            if hasattr(save, opened):
                await getattr(save, opened).close()

    asyncio.run(first_save())
    return out


def measure(subject: str, workdir: Path, run: int) -> dict[str, Any]:
    """One fresh process of ``subject``; its figures, and its wall time as seen from here."""
    import json
    import subprocess

    path = workdir / f"cold-{subject}-{run}.db"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.coldstart", "--subject", subject, "--path", str(path)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=False,
    )
    wall = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        return {"subject": subject, "error": proc.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(proc.stdout)
    result.update(subject=subject, process_ms=wall)
    return result


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs of one subject (errors kept apart)."""
    import statistics

    good = [r for r in runs if "error" not in r]
    keys = sorted({k for r in good for k in r if isinstance(r[k], (int, float))})
    summary: dict[str, Any] = {k: statistics.median(r[k] for r in good if k in r)
                               for k in keys}
    summary["runs"] = len(good)
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        summary["errors"] = errors
    return summary


def main(argv: list[str] | None = None) -> int:
    """``--subject S --path P`` (parsed by hand: argparse is not loaded before the import)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[0] != "--subject" or args[1] not in SUBJECTS or args[2] != "--path":
        print(f"usage: python -m benchmarks.coldstart --subject {'|'.join(SUBJECTS)} "
              "--path NEW_FILE", file=sys.stderr)
        return 2
    out = _run(args[1], Path(args[3]))
    import json

    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

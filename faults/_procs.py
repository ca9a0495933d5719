"""Writer processes (:mod:`faults._writer`): start, kill, and read what they said."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ._ledger import Ledger

__all__ = ["ROOT", "WriterProcess"]

ROOT = Path(__file__).resolve().parent.parent


class WriterProcess:
    """One ``python -m faults._writer`` process; its stdout goes to a file,
    so every flushed line survives a SIGKILL."""

    def __init__(self, url: str, name: str, workdir: Path, *args: str) -> None:
        self.name = name
        self.out = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        self.killed_at: float | None = None
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
        )
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "faults._writer", url, name, *args],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT, env=env,
            )
        self.started_at = time.time()

    def lines(self) -> list[str]:
        text = self.out.read_text(errors="replace")
        # A line cut short by a kill has no newline: it never happened.
        return text.split("\n")[:-1]

    def said(self, word: str) -> bool:
        return word in self.lines()

    def wait_for(self, word: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.said(word):
            if self.process.poll() is not None:
                raise RuntimeError(f"writer {self.name} exited ({self.process.returncode}) "
                                   f"before {word!r}: {self.stderr_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"writer {self.name} did not say {word!r} in {timeout:g} s")
            time.sleep(0.02)

    def stderr_tail(self) -> str:
        return self.err.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, at whatever point the process has reached."""
        if self.alive():
            self.killed_at = time.time()
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def retries(self) -> int:
        """The retries the process reported at its end (0 if it never got there)."""
        return sum(int(line.split()[1]) for line in self.lines() if line.startswith("retries "))

    def feed(self, ledger: Ledger) -> tuple[int, int]:
        """Record this process's operations in ``ledger``; return (acks, fails).

        An acknowledgement's time is the writer's own clock stamp on its line.
        """
        acks = fails = 0
        for line in self.lines():
            word, _, rest = line.partition(" ")
            if word == "try":
                op, conv, parts = rest.split(" ")
                ledger.attempt(op, conv, int(parts), writer=self.name)
            elif word == "ack":
                op, indexes, stamp = rest.split(" ")
                ledger.ack(op, (int(i) for i in indexes.split(",")), at=float(stamp))
                acks += 1
            elif word == "fail":
                op, kind, *message = rest.split(" ")
                ledger.fail(op, kind, " ".join(message))
                fails += 1
        return acks, fails

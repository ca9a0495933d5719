"""aiosqlite's worker threads and the end of an event loop, or of the program.

Each case runs a small program in fresh interpreters, several times (the
failures these guard against depended on thread timing: 27 of 30 runs for a
missing directory), and reads what it printed.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

RUNS = 8
EXIT_TIMEOUT = 60.0  # seconds for all the runs of one case


def _run_many(tmp_path: Path, program: str, *args: str, runs: int = RUNS) -> list[
    subprocess.CompletedProcess[str]
]:
    """Run ``program`` ``runs`` times at once; each gets its own database path."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(program))
    env = {**os.environ, "PYTHONWARNINGS": "always::ResourceWarning"}
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"chat{n}.db"), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for n in range(runs)
    ]
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"the program did not exit (hung); stderr:\n{err}") from None
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def _assert_clean(results: list[subprocess.CompletedProcess[str]], expected_out: str) -> None:
    for result in results:
        assert "Traceback" not in result.stderr, result.stderr
        assert "Event loop is closed" not in result.stderr, result.stderr
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected_out, (result.stdout, result.stderr)


def test_a_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    program = """
        import asyncio
        import sys

        from storage_core import ConfigurationError, make_storage

        async def main() -> None:
            storage = make_storage(f"sqlite:///{sys.argv[1]}.d/no/such/dir/chat.db")
            try:
                await storage.initialize()
            except ConfigurationError as exc:
                print("error:", "cannot open the SQLite database" in str(exc))

        asyncio.run(main())
    """
    _assert_clean(_run_many(tmp_path, program), "error: True")


def test_a_storage_never_closed_does_not_keep_the_program_from_exiting(tmp_path: Path) -> None:
    # A module-level storage outlives asyncio.run: nothing frees it before exit.
    program = """
        import asyncio
        import sqlite3
        import sys

        from storage_core import make_storage

        storage = make_storage(f"sqlite:///{sys.argv[1]}")

        async def main() -> None:
            await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "hi"})

        asyncio.run(main())
        print("saved")
    """
    results = _run_many(tmp_path, program)
    _assert_clean(results, "saved")
    for result in results:
        assert "was never closed" in result.stderr  # the ResourceWarning, when shown
    for n in range(RUNS):
        with sqlite3.connect(tmp_path / f"chat{n}.db") as db:
            assert db.execute("SELECT count(*) FROM conversations").fetchone() == (1,)


def test_a_loop_that_ends_during_a_save_leaves_the_storage_usable(tmp_path: Path) -> None:
    # asyncio.run cancels the save still running when main returns; its
    # transaction ends on the database thread after the loop has closed.
    program = """
        import asyncio
        import sys

        from storage_core import make_storage

        storage = make_storage(f"sqlite:///{sys.argv[1]}", skip_consecutive_roles=False)
        batch = [{"role": "user", "content": "x" * 2000} for _ in range(1000)]

        async def start_a_save() -> None:
            await storage.initialize()
            asyncio.get_running_loop().create_task(storage.append_messages("u", "s", "a", batch))
            await asyncio.sleep(0.01)

        async def finish() -> None:
            try:
                # Queued behind the cancelled save, if it is still running.
                await storage.append_messages("u", "s", "a", [{"role": "user", "content": "z"}])
                after = await storage.fetch_chat("u", "s", "a")
                print(len(after) in (1, 1001), after[-1].content == "z")
            finally:
                await storage.close()

        asyncio.run(start_a_save())
        asyncio.run(finish())
    """
    _assert_clean(_run_many(tmp_path, program), "True True")

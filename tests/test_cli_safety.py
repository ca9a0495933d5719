"""The command line under hostile or mistaken input: one line, the right exit
status, no traceback, nothing written that should not be.

Real SQLite files throughout; the commands that must survive process-level
trouble (a closed pipe, Ctrl-C, the driver's threads at exit) run as real
``python -m storage_core.cli`` processes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage_core import make_storage
from storage_core.backend import TableRow
from storage_core.cli import main, safe

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("storage_core_sqlite") is None,
    reason="tested on SQLite files (core-only run has no SQLite backend)",
)

HOSTILE = "clear\x1b[2J title\x1b]0;pwned\x07 cr\rover bidi\u202eevil"


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def cli(*args: str, cwd: Path, stdin: str | None = None, timeout: float = 60,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "storage_core.cli", *args], cwd=cwd, input=stdin,
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def one_error_line(err: str) -> bool:
    return len(err.splitlines()) == 1 and err.startswith("storage-core: ") and (
        "Traceback" not in err
    )


def seed(url: str, rows: list[TableRow]) -> None:
    async def go() -> None:
        async with make_storage(url) as storage:
            for start in range(0, len(rows), 500):
                await storage.import_rows(rows[start:start + 500])
    asyncio.run(go())


def conversation(user: str, session: str, agent: str, count: int, start: int = 1000,
                 ) -> list[TableRow]:
    return [TableRow(user, session, agent, i, "user" if i % 2 == 0 else "assistant",
                     json.dumps([{"text": f"m{i}"}]), start + i) for i in range(count)]


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/chat.db"
    seed(url, conversation("u", "s1", "a", 4) + conversation("u", "s2", "b", 3))
    return url


# -- item 7: the CLI closes what it opens; no traceback at exit -----------------


@pytest.mark.parametrize("command", [
    ["sessions", "sqlite:///no/such/dir/chat.db", "u"],
    # Writing commands try to create the file: this one also needs the SQLite
    # backend to stop aiosqlite's thread when the connect fails.
    ["demo", "sqlite:///no/such/dir/chat.db"],
])
def test_an_unopenable_file_is_one_line_every_time(command: list[str], tmp_path: Path) -> None:
    for _ in range(12):
        done = cli(*command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert one_error_line(done.stderr), done.stderr
        assert "no/such/dir/chat.db" in done.stderr


# -- item 8: tracebacks from bad input --------------------------------------------


def test_a_non_utf8_import_file_is_bad_input(tmp_path: Path) -> None:
    dump = tmp_path / "latin1.jsonl"
    dump.write_bytes(b'{"user_id": "Jos\xe9"}\n')
    done = cli("import", f"sqlite:///{tmp_path}/t.db", str(dump), cwd=tmp_path)
    assert done.returncode == 2 and one_error_line(done.stderr), done.stderr
    assert "line 1 is not UTF-8" in done.stderr


def test_a_deeply_nested_import_line_is_bad_input(tmp_path: Path) -> None:
    dump = tmp_path / "deep.jsonl"
    dump.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    done = cli("import", f"sqlite:///{tmp_path}/t.db", str(dump), cwd=tmp_path)
    assert done.returncode == 2 and one_error_line(done.stderr), done.stderr
    assert "line 1 nests JSON too deeply" in done.stderr


@pytest.mark.parametrize("age", ["9" * 400 + "d", "99999999999999999999d", "100000w"])
def test_an_absurd_prune_age_is_bad_input(db: str, age: str, tmp_path: Path) -> None:
    done = cli("prune", db, "--older-than", age, cwd=tmp_path)
    assert done.returncode == 2 and one_error_line(done.stderr), done.stderr
    assert run("sessions", db, "u")[1].count("\n") == 3  # header and both sessions


def test_import_errors_say_what_is_wrong_in_words(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    dst = f"sqlite:///{tmp_path}/t.db"
    dump = tmp_path / "d.jsonl"
    good = json.dumps({"user_id": "u", "session_id": "s", "agent_id": "a",
                       "message_index": 0, "role": "user", "content": [], "timestamp": 1})
    cases = {
        "[1, 2]": "line 2 is a JSON array, not an exported row (an object with the fields",
        '{"user_id": "u", "role": "user"}':
            "line 2 lacks the field(s) session_id, agent_id, message_index, content, timestamp",
        good.replace('"message_index": 0', '"message_index": -1'): "line 2 message_index",
        good.replace('"timestamp": 1', '"timestamp": "now"'): "line 2 timestamp",
    }
    for line, words in cases.items():
        dump.write_text(good + "\n" + line + "\n", encoding="utf-8")
        code, _ = run("import", dst, str(dump))
        err = capsys.readouterr().err
        assert code == 2 and words in err, err
    assert "no sessions" in run("sessions", dst, "u")[1]  # the batch was refused whole


def test_a_missing_import_file_is_bad_input_and_creates_nothing(tmp_path: Path) -> None:
    for path in ("nosuch.jsonl", str(tmp_path)):  # missing, and a directory
        done = cli("import", "sqlite:///target.db", path, cwd=tmp_path)
        assert done.returncode == 2 and one_error_line(done.stderr), done.stderr
        assert "cannot read" in done.stderr
    assert not (tmp_path / "target.db").exists()


# -- item 9: stored text never drives the operator's terminal ---------------------


def test_show_and_sessions_escape_control_characters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/evil.db"
    seed(url, [
        TableRow("u", "s\x1b[2J", "agent\u202e", 0, "user",
                 json.dumps([{"text": HOSTILE + "\nsecond line"}]), 1000),
        TableRow("u", "s\x1b[2J", "agent\u202e", 1, "assistant",
                 json.dumps([{"text": "ok\x9b31m"}]), 1001),
    ])
    for args in (["show", url, "u", "s\x1b[2J"], ["show", url, "u", "s\x1b[2J", "agent\u202e"],
                 ["sessions", url, "u"]):
        code, text = run(*args)
        assert code == 0
        for bad in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
            assert bad not in text, (args, text)
    _, text = run("show", url, "u", "s\x1b[2J", "agent\u202e")
    assert "clear\\x1b[2J title\\x1b]0;pwned\\x07 cr\\rover bidi\\u202eevil" in text
    assert "agent\\u202e#0" in text
    assert "\n    second line\n" in text  # a message's own lines are indented
    _, text = run("sessions", url, "u")
    assert "s\\x1b[2J" in text


def test_json_output_stays_exact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/evil.db"
    content = [{"text": HOSTILE + "\x85\u2028"}]
    seed(url, [TableRow("u", "s\u202e", "a", 0, "user", json.dumps(content), 1000)])
    _, text = run("show", url, "u", "s\u202e", "--json")
    assert json.loads(text)["content"] == content
    _, text = run("sessions", url, "u", "--json")
    assert json.loads(text)["session_id"] == "s\u202e"
    dump = tmp_path / "dump.jsonl"
    assert run("export", url, "-o", str(dump))[0] == 0
    exported = dump.read_text(encoding="utf-8")
    assert json.loads(exported)["content"] == content
    for bad in ("\x1b", "\u202e", "\x85", "\u2028"):
        assert bad not in exported  # JSON escapes (\u001b, \u202e) mean the same


def test_safe_escapes_every_dangerous_character() -> None:
    assert safe("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert safe("x\u202ey\u2066z\u200f") == "x\\u202ey\\u2066z\\u200f"
    assert safe("line\nnext\ttab\x00\x7f\x9b") == "line\\nnext\\ttab\\x00\\x7f\\x9b"
    assert safe("plain ✓ émoji 👍🏽 and ZWJ 👩\u200d💻") == "plain ✓ émoji 👍🏽 and ZWJ 👩\u200d💻"


# -- item 10: reading commands need an existing database ---------------------------


@pytest.mark.parametrize("command", [
    ["sessions", "sqlite:///chta.db", "u"],
    ["show", "sqlite:///chta.db", "u", "s"],
    ["export", "sqlite:///chta.db", "-o", "out.jsonl"],
    ["doctor", "sqlite:///chta.db"],
    ["prune", "sqlite:///chta.db", "--older-than", "1d"],
    ["copy", "sqlite:///chta.db", "sqlite:///copy.db", "-q"],
])
def test_a_mistyped_file_is_an_error_not_a_new_database(command: list[str],
                                                        tmp_path: Path) -> None:
    done = cli(*command, cwd=tmp_path)
    assert done.returncode == 2 and one_error_line(done.stderr), done.stderr
    assert "'chta.db' does not exist" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no db, no output file


def test_copy_says_which_side_failed(db: str, tmp_path: Path) -> None:
    done = cli("copy", "sqlite:///chta.db", db, "-q", cwd=tmp_path)
    assert done.returncode == 2 and "error: source: " in done.stderr, done.stderr
    done = cli("copy", db, "postgresql://app:hunter2@127.0.0.1:1/x", "-q", cwd=tmp_path)
    assert done.returncode == 1 and one_error_line(done.stderr), done.stderr
    assert "error: target: " in done.stderr and "hunter2" not in done.stderr
    done = cli("copy", db, "sqlite:///no/such/dir/x.db", "-q", cwd=tmp_path)
    assert done.returncode == 2 and "error: target: " in done.stderr, done.stderr


@pytest.mark.parametrize("value", ["0", "-1", "x", "1e3", "99999999999999999999999"])
def test_last_takes_only_positive_numbers(db: str, value: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["show", db, "u", "s1", "--last", value],
                 ["show", db, "u", "s1", "a", "--last", value]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
        assert "argument --last" in capsys.readouterr().err
    code, text = run("show", db, "u", "s1", "--last", "2")
    assert code == 0 and text.count("\n") == 2


def test_make_storage_create_false(tmp_path: Path) -> None:
    from storage_core import ConfigurationError

    missing = tmp_path / "missing.db"
    with pytest.raises(ConfigurationError, match="does not exist"):
        make_storage(f"sqlite:///{missing}", create=False)
    with pytest.raises(ConfigurationError, match="is not a file"):
        make_storage(f"sqlite:///{tmp_path}", create=False)
    assert not missing.exists()
    make_storage("sqlite:///:memory:", create=False)
    make_storage("memory://", create=False)  # nothing to create: accepted
    with pytest.raises(ConfigurationError, match="no options"):
        make_storage("memory://", create=False, colour="red")  # keys still checked
    if importlib.util.find_spec("storage_core_libsql") is not None:
        with pytest.raises(ConfigurationError, match="does not exist"):
            make_storage(f"file:{missing}", create=False)
        with pytest.raises(ConfigurationError, match="does not exist"):
            make_storage(f"file://{missing}", create=False)
        assert not missing.exists()


# -- item 11: prune --dry-run -----------------------------------------------------


def test_prune_dry_run_counts_and_deletes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    now = int(time.time() * 1000)
    seed(url, conversation("u", "old", "a", 5) + conversation("u", "old", "b", 2)
         + conversation("u", "new", "a", 3, start=now - 5) + conversation("v", "x", "a", 4))
    code, text = run("prune", url, "--older-than", "1d", "--dry-run")
    assert code == 0 and "would delete 11 messages in 3 conversations" in text
    assert "nothing deleted" in text
    code, text = run("export", url, "-o", str(tmp_path / "all.jsonl"))
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 14
    code, text = run("prune", url, "--older-than", "1d")
    assert code == 0 and "deleted 11 messages" in text
    assert "would delete 0 messages" in run("prune", url, "--older-than", "1d", "--dry-run")[1]


# -- item 15: the demo says what to try next --------------------------------------


def test_demo_prints_the_show_command_to_try(tmp_path: Path) -> None:
    done = cli("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "user demo-user, session demo-session" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("try next: "))
    argv = shlex.split(line.removeprefix("try next: "))
    assert argv == ["storage-core", "show", "sqlite:///storage_core_demo.db",
                    "demo-user", "demo-session"]
    shown = cli(*argv[1:], cwd=tmp_path)
    assert shown.returncode == 0 and "Glad it works now." in shown.stdout
    code, text = run("demo", "memory://")
    assert code == 0 and "try next" not in text and "keeps nothing" in text


# -- process-level trouble --------------------------------------------------------


def test_a_closed_stdout_is_not_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/big.db"
    seed(url, [row for c in range(40) for row in conversation("u", f"s{c}", "a", 100)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "storage_core.cli", "export", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith('{"user_id": "u"')
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert err == "", err


def _interruptible() -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored,
    # and children inherit that: give the CLI the terminal's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_is_one_line_and_status_130(tmp_path: Path) -> None:
    dump = tmp_path / "many.jsonl"
    dump.write_text("".join(
        json.dumps({"user_id": "u", "session_id": "s", "agent_id": "a", "message_index": i,
                    "role": "user" if i % 2 == 0 else "assistant", "content": "x",
                    "timestamp": 1000 + i}) + "\n" for i in range(200_000)), encoding="utf-8")
    target = tmp_path / "t.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "storage_core.cli", "import", f"sqlite:///{target}",
         str(dump), "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_interruptible,
    )
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the import
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == "storage-core: interrupted\n" and out == ""


def test_unreachable_server_and_unknown_scheme(tmp_path: Path) -> None:
    done = cli("sessions", "postgresql://u:pw@127.0.0.1:1/x", "u", cwd=tmp_path)
    assert done.returncode == 1 and one_error_line(done.stderr), done.stderr
    done = cli("doctor", "nosuch://x", cwd=tmp_path)
    assert done.returncode == 2 and one_error_line(done.stderr), done.stderr
    done = cli("show", "sqlite:///x.db", cwd=tmp_path)  # missing arguments
    assert done.returncode == 2 and "Traceback" not in done.stderr

"""The CLI's paging: ``sessions --limit`` with its next-page command, ``show --before``."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import shlex
from pathlib import Path

import pytest

from storage_core import make_storage
from storage_core.cli import main

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("storage_core_sqlite") is None,
    reason="the data tools are tested on SQLite files (core-only run has no SQLite backend)",
)

SESSIONS = ["-dash", "b", "a", "c d", "e", "f", "g"]  # one id an option could be taken for
# "b" and "a" share their last activity: the tie goes by id.
STAMPS = {"-dash": 1000, "b": 990, "a": 990, "c d": 980, "e": 970, "f": 960, "g": 950}


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/chat.db"

    async def seed() -> None:
        async with make_storage(url) as storage:
            for session in SESSIONS:
                stamp = STAMPS[session]
                await storage.append_messages("user", session, "agent", [
                    {"role": "user", "content": [{"text": f"{session} q"}], "timestamp": stamp}])
            await storage.append_messages("user", "long", "agent", [
                {"role": "user" if i % 2 == 0 else "assistant",
                 "content": [{"text": f"m{i}"}], "timestamp": 10 + i} for i in range(9)])

    asyncio.run(seed())
    return url


def _next(text: str, marker: str) -> list[str] | None:
    """The arguments of the command printed after ``marker``, or None."""
    for line in text.splitlines():
        if line.startswith(marker):
            words = shlex.split(line[len(marker):])
            assert words[0] == "storage-core"
            return words[1:]
    return None


def _names(text: str) -> list[str]:
    """The sessions of the human format (first column; ids here have no spaces
    but "c d")."""
    lines = [x for x in text.splitlines()[1:] if not x.startswith("next page: ")]
    return ["c d" if x.startswith("c d ") else x.split()[0] for x in lines]


def _listed(text: str) -> list[str]:
    return [json.loads(line)["session_id"] for line in text.splitlines()]


def test_sessions_pages_follow_the_printed_command(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, everything = run("sessions", url, "user", "--json")
    assert code == 0
    full = _listed(everything)
    assert full[:4] == ["-dash", "a", "b", "c d"] and len(full) == len(SESSIONS) + 1
    seen: list[str] = []
    args: list[str] | None = ["sessions", url, "user", "--limit", "3", "--json"]
    pages = 0
    while args is not None:
        code, text = run(*args)
        assert code == 0, capsys.readouterr().err
        page = _listed(text)
        assert len(page) <= 3
        seen += page
        pages += 1
        # With --json the next-page command goes to stderr; stdout stays JSON Lines.
        args = _next(capsys.readouterr().err, "next page: ")
    assert seen == full
    assert pages == 3


def test_sessions_human_format_prints_the_next_page(url: str) -> None:
    code, text = run("sessions", url, "user", "--limit", "2")
    assert code == 0
    assert _names(text) == ["-dash", "a"]
    args = _next(text, "next page: ")
    assert args is not None and "--before-session=a" in args
    code, text = run(*args)
    assert code == 0 and _names(text) == ["b", "c d"]
    code, text = run("sessions", url, "user", "--limit", "100")
    assert code == 0 and _next(text, "next page: ") is None
    code, text = run("sessions", url, "user", "--limit", "1",
                     "--before-session", "zz", "--before-timestamp", "0")
    assert code == 0 and "no more sessions" in text


def test_show_before_scrolls_back(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run("show", url, "user", "long", "agent", "--last", "4", "--json")
    assert code == 0 and [json.loads(x)["index"] for x in text.splitlines()] == [5, 6, 7, 8]
    args = _next(capsys.readouterr().err, "older: ")
    assert args is not None and args[1:6] == ["--last", "4", "--before", "5", "--json"]
    indexes: list[int] = []
    while args is not None:
        code, text = run(*args)
        assert code == 0
        indexes[:0] = [json.loads(x)["index"] for x in text.splitlines()]
        args = _next(capsys.readouterr().err, "older: ")
    assert indexes == [0, 1, 2, 3, 4]
    code, text = run("show", url, "user", "long", "agent", "--before", "3")
    assert code == 0 and "agent#2" in text and "agent#3" not in text and "older:" not in text
    code, text = run("show", url, "user", "long", "agent", "--last", "2", "--before", "0")
    assert code == 0 and "no messages" in text


@pytest.mark.parametrize(("args", "words"), [
    (["sessions", "{url}", "user", "--limit", "0"], "--limit"),
    (["sessions", "{url}", "user", "--limit", "x"], "--limit"),
    (["sessions", "{url}", "user", "--limit", str(2**31)], "limit"),
    (["sessions", "{url}", "user", "--before-session", "a"], "--before-timestamp"),
    (["sessions", "{url}", "user", "--before-timestamp", "5"], "--before-session"),
    (["sessions", "{url}", "user", "--before-session", "a", "--before-timestamp", "soon"],
     "--before-timestamp"),
    (["show", "{url}", "user", "long", "agent", "--before", "-1"], "--before"),
    (["show", "{url}", "user", "long", "agent", "--before", "1.5"], "--before"),
    (["show", "{url}", "user", "long", "--before", "3"], "AGENT_ID"),
])
def test_bad_paging_arguments_exit_2(
    url: str, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    try:
        code, text = run(*(a.format(url=url) for a in args))
    except SystemExit as exc:  # argparse refuses it
        code, text = int(str(exc.code)), ""
    err = capsys.readouterr().err
    assert code == 2 and text == ""
    assert words in err and "Traceback" not in err

import importlib.util
import io
from pathlib import Path

import pytest

from storage_core.cli import main

HAS_SQLITE = importlib.util.find_spec("storage_core_sqlite") is not None


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_demo_on_memory() -> None:
    code, text = run("demo", "memory://")
    assert code == 0
    assert "[billing] Yes, within 3 business days" in text
    assert "(dropped)" not in text
    assert "8 messages" in text


def test_demo_default_is_an_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, _ = run("demo")
    if HAS_SQLITE:
        assert code == 0 and (tmp_path / "storage_core_demo.db").exists()
        assert run("demo")[0] == 0  # a re-run starts the demo session afresh
        assert "8 messages" in run("demo")[1]
    else:
        assert code == 2 and "pip install -e backends/sqlite" in capsys.readouterr().err


def test_backends_lists_schemes() -> None:
    code, text = run("backends")
    assert code == 0 and "memory://" in text
    assert ("sqlite://" in text) == HAS_SQLITE


def test_errors_are_one_line_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("demo", "nosuch://bob:hunter2@h/db")
    err = capsys.readouterr().err
    assert code == 2 and "unknown storage URL scheme" in err
    assert "hunter2" not in err and "Traceback" not in err

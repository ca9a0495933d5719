"""``doctor`` reports what the backend finds: it knows no backend's schema, so
a third-party backend gets a full report of its own problems."""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from storage_core.backend import BackendRegistry, MemoryBackend, StorageURL, hookimpl
from storage_core.cli import main
from storage_core.plugins import register_plugin, unregister_plugin


class ThirdPartyBackend(MemoryBackend):
    """A backend of someone else's, with problems of its own to report."""

    async def describe(self) -> dict[str, object]:
        facts = await super().describe()
        return {**facts, "schema_version": 7, "indexes": ["by_user"],
                "problems": ["index by_session is missing", "vacuum overdue"]}


def build(url: StorageURL, options: Mapping[str, Any]) -> ThirdPartyBackend:
    return ThirdPartyBackend()


@pytest.fixture
def third_party() -> Iterator[str]:
    module = types.ModuleType("doctor_third_party")
    module.build = build  # type: ignore[attr-defined]

    @hookimpl
    def storage_core_register_backends(registry: BackendRegistry) -> None:
        registry.register("thirdparty", "doctor_third_party:build", distribution="third-party")

    module.storage_core_register_backends = storage_core_register_backends  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    name = register_plugin(module, name="doctor-third-party")
    try:
        yield "thirdparty://"
    finally:
        unregister_plugin(name)
        del sys.modules[module.__name__]


def test_doctor_prints_the_backends_problems(third_party: str) -> None:
    out = io.StringIO()
    code = main(["doctor", third_party], out=out)
    text = out.getvalue()
    assert code == 1
    assert "schema version: 7" in text
    assert "indexes:        by_user" in text
    assert "problem:        index by_session is missing" in text
    assert "problem:        vacuum overdue" in text
    assert "2 problem(s) found" in text


def test_doctor_is_healthy_when_the_backend_finds_nothing(tmp_path: Any) -> None:
    pytest.importorskip("storage_core_sqlite")
    url = f"sqlite:///{tmp_path}/ok.db"
    out = io.StringIO()
    assert main(["demo", url], out=io.StringIO()) == 0
    assert main(["doctor", url], out=out) == 0
    assert out.getvalue().rstrip().endswith("healthy")


def test_copy_works_without_rich(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """rich is the ``cli`` extra: without it ``copy`` copies, with no bar."""
    pytest.importorskip("storage_core_sqlite")
    source, target = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    assert main(["demo", source], out=io.StringIO()) == 0
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    out = io.StringIO()
    assert main(["copy", source, target], out=out) == 0
    assert "copied" in out.getvalue() and "inserted" in out.getvalue()
    assert "no progress bar without rich" in capsys.readouterr().err

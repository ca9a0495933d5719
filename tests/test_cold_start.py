"""Cold start, in fresh processes: what ``import storage_core`` loads, and the
first ``make_storage`` finding plugins without importlib.metadata while
blocking and load failures work as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from storage_core.plugins import BLOCK_ENV, ENTRY_POINT_GROUP

# Loaded only once a storage is made, or a module that needs them is imported.
PLUGIN_MACHINERY = (
    "pluggy", "importlib.metadata", "email", "zipfile", "storage_core._plugins",
    "storage_core._registry", "storage_core.hookspecs", "storage_core._entry_points",
    "storage_core.backend",
)
NOT_FOR_A_PLAIN_APP = (
    "storage_core.sync", "storage_core.cli", "storage_core.integrations",
    "storage_core.agent_squad", "argparse",
)


def fresh(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a new interpreter; it prints one JSON object at the end."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_import_loads_no_plugin_machinery() -> None:
    watched = PLUGIN_MACHINERY + NOT_FOR_A_PLAIN_APP
    result = fresh(f"""
        import json, sys
        import storage_core
        loaded = [m for m in {watched!r} if m in sys.modules]
        before = dir(storage_core)
        specs = storage_core.hookspecs.PROJECT  # the submodules stay reachable
        dir_same = before == dir(storage_core)
        from storage_core import _plugins
        print(json.dumps({{"loaded": loaded, "dir_same": dir_same,
                          "dir": before, "specs": specs, "pm": _plugins.__name__}}))
    """)
    assert result["loaded"] == []
    assert result["dir_same"] is True
    assert {"hookspecs", "_plugins", "_registry", "make_storage"} <= set(result["dir"])
    assert result["specs"] == "storage_core"


def test_first_save_on_sqlite_reads_entry_points_directly(tmp_path: Path) -> None:
    pytest.importorskip("storage_core_sqlite")
    result = fresh(f"""
        import asyncio, json, sys
        from storage_core import make_storage

        async def main():
            storage = make_storage("sqlite:///{tmp_path / 'cold.db'}")
            await storage.initialize()
            await storage.save_chat_message("u", "s", "a", {{"role": "user", "content": "hi"}})
            history = await storage.fetch_chat("u", "s", "a")
            await storage.close()
            return [m.content for m in history]

        content = asyncio.run(main())
        print(json.dumps({{"content": content, "metadata": "importlib.metadata" in sys.modules,
                          "email": "email" in sys.modules,
                          "memory": "storage_core._memory" in sys.modules}}))
    """)
    assert result == {"content": ["hi"], "metadata": False, "email": False, "memory": False}


@pytest.mark.parametrize("blocked", ["storage-core-sqlite", "sqlite", " x , sqlite", "*"])
def test_blocking_by_distribution_or_entry_point_name(blocked: str) -> None:
    pytest.importorskip("storage_core_sqlite")
    result = fresh("""
        import json, sys
        from storage_core import MissingDriverError, make_storage
        from storage_core.plugins import build_registry
        try:
            make_storage("sqlite:///never.db")
        except MissingDriverError as exc:
            error = str(exc)
        else:
            error = ""
        schemes = sorted(s.scheme for s in build_registry())
        print(json.dumps({"error": error, "schemes": schemes,
                          "metadata": "importlib.metadata" in sys.modules}))
    """, env={BLOCK_ENV: blocked})
    assert "no installed backend serves sqlite://" in result["error"]
    schemes = result["schemes"]
    assert "sqlite" not in schemes and "memory" in schemes
    assert ("postgresql" in schemes) == (blocked != "*")
    assert result["metadata"] is False


def test_a_broken_plugin_is_listed_and_the_rest_work(tmp_path: Path) -> None:
    info = tmp_path / "Broken_Plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken.plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = broken_plugin_mod\n")
    (tmp_path / "broken_plugin_mod.py").write_text("raise RuntimeError('boom at import')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = fresh("""
        import io, json, sys
        from storage_core import make_storage
        from storage_core.cli import main
        from storage_core.plugins import load_failures
        make_storage("memory://")
        out = io.StringIO()
        main(["backends"], out=out)
        failures = [(f.name, f.distribution, f.error) for f in load_failures()]
        print(json.dumps({"failures": failures, "listing": out.getvalue(),
                          "metadata": "importlib.metadata" in sys.modules}))
    """, env=env)
    assert result["failures"] == [["broken", "broken.plugin", "RuntimeError: boom at import"]]
    assert "broken plugin 'broken' from broken.plugin" in result["listing"]
    assert result["metadata"] is False

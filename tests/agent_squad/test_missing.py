"""Without agent-squad, importing the drop-in names the extra to install."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import storage_core
from storage_core import MissingDriverError


def test_import_without_agent_squad_raises_missing_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "agent_squad" or m.startswith("agent_squad.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "agent_squad", None)  # import agent_squad -> ImportError
    monkeypatch.delitem(sys.modules, "storage_core.agent_squad", raising=False)
    if hasattr(storage_core, "agent_squad"):
        monkeypatch.delattr(storage_core, "agent_squad")

    with pytest.raises(MissingDriverError, match=r"storage-core\[agent-squad\]") as info:
        importlib.import_module("storage_core.agent_squad")
    assert isinstance(info.value, ImportError)
    assert info.value.package == "storage-core[agent-squad]"


def test_the_core_does_not_import_agent_squad() -> None:
    code = (
        "import sys, storage_core; storage_core.make_storage('memory://'); "
        "sys.exit('agent_squad' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

"""Without its framework, importing an adapter names the extra to install."""

from __future__ import annotations

import importlib
import sys

import pytest

import storage_core.integrations as integrations
from storage_core import MissingDriverError


@pytest.mark.parametrize(
    ("adapter", "framework", "extra"),
    [
        ("openai_agents", "agents", "openai-agents"),
        ("langchain", "langchain_core", "langchain"),
    ],
)
def test_import_without_the_framework_raises_missing_driver(
    monkeypatch: pytest.MonkeyPatch, adapter: str, framework: str, extra: str
) -> None:
    for name in [m for m in sys.modules if m == framework or m.startswith(framework + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, framework, None)  # import -> ImportError
    monkeypatch.delitem(sys.modules, f"storage_core.integrations.{adapter}", raising=False)
    if hasattr(integrations, adapter):
        monkeypatch.delattr(integrations, adapter)

    with pytest.raises(MissingDriverError, match=rf"storage-core\[{extra}\]") as info:
        importlib.import_module(f"storage_core.integrations.{adapter}")
    assert isinstance(info.value, ImportError)
    assert info.value.package == f"storage-core[{extra}]"

"""The two public faces: ``storage_core`` for applications, ``storage_core.backend``
and ``storage_core.plugins`` for backend authors; old import paths warn."""

from __future__ import annotations

import importlib
import warnings

import pytest

import storage_core
import storage_core.backend
import storage_core.plugins


def test_the_application_face_is_small_and_complete() -> None:
    assert len(storage_core.__all__) <= 22
    for name in storage_core.__all__:
        assert getattr(storage_core, name) is not None
    assert {"make_storage", "ChatStorage", "Message", "StoredMessage", "SessionInfo",
            "Limits", "RetryPolicy", "StorageError", "TransientError"} <= set(
        storage_core.__all__
    )
    assert "AppendRequest" not in storage_core.__all__
    assert "get_plugin_manager" not in storage_core.__all__


@pytest.mark.parametrize("module", ["storage_core.backend", "storage_core.plugins"])
def test_the_author_faces_export_what_they_list(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name


@pytest.mark.parametrize("name", sorted(storage_core._MOVED))
def test_old_paths_still_work_with_a_warning(name: str) -> None:
    home = importlib.import_module(storage_core._MOVED[name])
    with pytest.warns(DeprecationWarning, match=f"storage_core.{name} moved to"):
        old = getattr(storage_core, name)
    assert old is getattr(home, name)
    assert name in home.__all__


def test_from_imports_of_old_names_warn() -> None:
    with pytest.warns(DeprecationWarning, match="storage_core.backend"):
        from storage_core import AppendRequest  # noqa: F401


def test_unknown_names_are_attribute_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no_such_thing"):
            storage_core.no_such_thing  # type: ignore[attr-defined]  # noqa: B018


def test_the_registry_names_the_plugin_of_each_scheme() -> None:
    registry = storage_core.plugins.build_registry()
    assert registry.specs["memory"].plugin == "storage_core.builtin"
    if "sqlite" in registry.specs:  # not in the core-only session
        assert registry.specs["sqlite"].plugin not in ("", "storage_core.builtin")

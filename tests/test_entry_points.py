"""The direct entry-point reader (storage_core._entry_points) against
importlib.metadata: on this environment, on made-up ``sys.path`` layouts, and
its fallback where it does not apply."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import zipfile
from pathlib import Path
from typing import Any

import pluggy
import pytest

from storage_core import _entry_points, _plugins, hookspecs

GROUP = _plugins.ENTRY_POINT_GROUP


def seen(eps: Any) -> list[tuple[str, str, str, str]]:
    return [(ep.name, ep.value, ep.group, ep.dist.name) for ep in eps]


def reference(group: str = GROUP) -> list[tuple[str, str, str, str]]:
    importlib.invalidate_caches()
    return seen(importlib.metadata.entry_points(group=group))


def dist(
    root: Path,
    dirname: str,
    entry_points: str | bytes | None,
    metadata: str | None = "Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
    metadata_file: str = "METADATA",
) -> Path:
    info = root / dirname
    info.mkdir(parents=True)
    if metadata is not None:
        name = dirname.partition("-")[0]
        (info / metadata_file).write_text(metadata.replace("{name}", name), encoding="utf-8")
    if isinstance(entry_points, bytes):
        (info / "entry_points.txt").write_bytes(entry_points)
    elif entry_points is not None:
        (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    return info


@pytest.fixture
def path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Two fresh directories at the head of sys.path."""
    dirs = [tmp_path / "first", tmp_path / "second"]
    for d in dirs:
        d.mkdir()
    monkeypatch.setattr(sys, "path", [str(d) for d in dirs] + sys.path)
    return dirs


def test_this_environment_every_group() -> None:
    groups = sorted(importlib.metadata.entry_points().groups)
    for group in {*groups, GROUP}:  # ours too, where no backend is installed (core-only)
        assert seen(_entry_points.entry_points(group)) == reference(group), group
    installed = {name for name in ("sqlite", "postgres", "libsql")
                 if importlib.util.find_spec(f"storage_core_{name}") is not None}
    assert installed <= {ep.name for ep in _entry_points.entry_points(GROUP)}


def test_made_up_layouts_read_as_importlib_metadata_does(path: list[Path]) -> None:
    first, second = path
    section = f"[{GROUP}]\n"
    # The same distribution in both directories: the first one on sys.path wins,
    # even when it has no entry points and the second has.
    dist(first, "shadowed-1.0.dist-info", None)
    dist(second, "shadowed-2.0.dist-info", section + "gone = gone.plugin\n")
    dist(first, "Dotted.Name-1.0.dist-info", section + "dotted = dotted_mod\n")
    dist(second, "dotted_name-2.0.dist-info", section + "dotted2 = other\n")
    # Name in the metadata differs from the directory's; odd spacing and case.
    dist(
        first, "my_pkg-0.1.dist-info",
        f"# comment\n\n  [console_scripts]\nx=y:z\n{section}  a =  pkg.a:plugin [extra1, extra2]\n"
        "b=pkg.b:obj.attr\n[other]\nc = pkg.c\n",
        metadata="Metadata-Version: 2.1\nSummary: s\nname:   My.Pkg  \nVersion: 0.1\n",
    )
    # Windows line endings, and the group only in another section's value.
    crlf = dist(first, "crlf-1.0.dist-info", f"{section}crlf = crlf.mod\r\n".encode())
    (crlf / "METADATA").write_bytes(b"Metadata-Version: 2.1\r\nName: crlf-name\r\n\r\nbody\r\n")
    dist(first, "mention-1.0.dist-info", f"[other]\nx = {GROUP}\n[ {GROUP} ]\ny = z\n")
    # egg-info with PKG-INFO; a dist-info that is a file; entry_points.txt a directory.
    dist(second, "legacy.egg-info", section + "legacy = legacy_mod\n",
         metadata_file="PKG-INFO")
    (second / "afile-1.0.dist-info").write_text("not a directory")
    (dist(second, "epdir-1.0.dist-info", None) / "entry_points.txt").mkdir()
    # A header before Name is folded; a continuation line before any header.
    dist(second, "folded-1.0.dist-info", section + "folded = folded\n",
         metadata=" stray\nSummary: one\n  two\nName: folded-real\n")
    expected = reference()
    names = [e[0] for e in expected]
    assert {"dotted", "a", "b", "crlf", "legacy", "folded"} <= set(names)
    assert {"gone", "dotted2", "y"}.isdisjoint(names)
    assert ("a", "pkg.a:plugin [extra1, extra2]", GROUP, "My.Pkg  ") in expected
    assert ("crlf", "crlf.mod", GROUP, "crlf-name") in expected
    assert seen(_entry_points.entry_points(GROUP)) == expected
    assert seen(_plugins._find_entry_points()) == expected


def test_loading_follows_importlib_metadata(path: list[Path]) -> None:
    first, _ = path
    pkg = first / "ep_target_mod.py"
    pkg.write_text("class Outer:\n    class Inner:\n        pass\n")
    dist(first, "target-1.0.dist-info", f"[{GROUP}]\nt = ep_target_mod:Outer.Inner\n"
                                        "m = ep_target_mod\n")
    try:
        ours = [ep for ep in _entry_points.entry_points(GROUP) if ep.dist.name == "target"]
        theirs = [ep for ep in importlib.metadata.entry_points(group=GROUP)
                  if ep.dist is not None and ep.dist.name == "target"]
        assert [ep.load() for ep in ours] == [ep.load() for ep in theirs]
        inner: Any = ours[0].load()
        assert inner.__qualname__ == "Outer.Inner"
    finally:
        sys.modules.pop("ep_target_mod", None)


def unusual_layouts() -> dict[str, Any]:
    section = f"[{GROUP}]\n"

    def zipped(first: Path, second: Path) -> None:
        with zipfile.ZipFile(second / "z.zip", "w") as z:
            z.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\n")
            z.writestr("zipped-1.0.dist-info/entry_points.txt", section + "zipped = zipped\n")
        sys.path.append(str(second / "z.zip"))

    def egg(first: Path, second: Path) -> None:
        dist(second / "eggy-1.0.egg", "EGG-INFO", section + "eggy = eggy\n",
             metadata_file="PKG-INFO")
        sys.path.insert(0, str(second / "eggy-1.0.egg"))

    return {
        "zip on sys.path": zipped,
        "egg on sys.path": egg,
        "upper-case suffix": lambda f, s: dist(f, "Upper-1.0.DIST-INFO", section + "u = u\n"),
        "nameless stem": lambda f, s: dist(f, "-1.0.dist-info", section + "n = n\n"),
        "folded Name": lambda f, s: dist(
            f, "fold-1.0.dist-info", section + "f = f\n", metadata="Name: fold\n  more\n"),
        "no Name": lambda f, s: dist(
            f, "noname-1.0.dist-info", section + "f = f\n", metadata="Version: 1\n"),
        "no metadata": lambda f, s: dist(f, "nometa-1.0.dist-info", section + "f = f\n", None),
        "envelope line": lambda f, s: dist(
            f, "env-1.0.dist-info", section + "f = f\n", metadata="From x\nName: env\n"),
        "Name in the body": lambda f, s: dist(
            f, "body-1.0.dist-info", section + "f = f\n", metadata="Version: 1\nbody\nName: b\n"),
        "bad value": lambda f, s: dist(f, "badval-1.0.dist-info", section + "f = not a value\n"),
        "line without =": lambda f, s: dist(f, "noeq-1.0.dist-info", section + "f\n"),
        "not UTF-8": lambda f, s: dist(f, "latin-1.0.dist-info", (section + "\xe9 = x\n")
                                       .encode("latin-1")),
        "non-str sys.path entry": lambda f, s: sys.path.insert(0, f),
    }


@pytest.mark.parametrize("layout", sorted(unusual_layouts()))
def test_unusual_layouts_fall_back_to_importlib_metadata(
    path: list[Path], layout: str
) -> None:
    unusual_layouts()[layout](*path)
    with pytest.raises(_entry_points.Unusual):
        _entry_points.entry_points(GROUP)
    try:
        expected: Any = reference()
    except Exception as exc:  # importlib.metadata fails on it: so does the fallback
        with pytest.raises(type(exc)):
            seen(_plugins._find_entry_points())
    else:
        assert seen(_plugins._find_entry_points()) == expected


def test_another_metadata_finder_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    class Finder:
        @staticmethod
        def find_distributions(context: Any = None) -> list[Any]:
            return []

        @staticmethod
        def find_spec(*args: Any) -> None:
            return None

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder])
    with pytest.raises(_entry_points.Unusual, match="metadata finder"):
        _entry_points.entry_points(GROUP)
    assert seen(_plugins._find_entry_points()) == reference()


def test_blocking_and_failures_through_the_direct_reader(
    path: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = path
    (first / "good_ep_mod.py").write_text(
        "from storage_core.backend import hookimpl\n"
        "@hookimpl\n"
        "def storage_core_register_backends(registry):\n"
        "    registry.register('goodep', 'storage_core._memory:MemoryBackend.from_url',"
        " distribution='Good.Dist')\n"
    )
    section = f"[{GROUP}]\n"
    dist(first, "good_dist-1.0.dist-info", section + "goodep = good_ep_mod\n",
         metadata="Name: Good.Dist\n")
    dist(first, "broken_dist-1.0.dist-info", section + "broken = no_such_module_here\n",
         metadata="Name: Broken-Dist\n")
    dist(first, "blocked_by_dist-1.0.dist-info", section + "bydist = no_such_module_here\n",
         metadata="Name: Blocked.By.Dist\n")
    dist(first, "blocked_by_ep-1.0.dist-info", section + "byname = no_such_module_here\n")
    # The same entry-point name from a later distribution: the first one stays.
    dist(second, "second_good-1.0.dist-info", section + "goodep = no_such_module_here\n")
    monkeypatch.setenv(_plugins.BLOCK_ENV, " Blocked.By.Dist , byname,sqlite")
    monkeypatch.setattr(_plugins, "_failures", [])
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    try:
        _plugins._load_entry_points(pm, _plugins._find_entry_points())
        # Installed backends load beside the made-up ones (none in the core-only run).
        others = {ep.name for ep in importlib.metadata.entry_points(group=GROUP)} - {
            "goodep", "bydist", "byname", "broken", "sqlite"}
        assert pm.has_plugin("goodep") and all(pm.has_plugin(name) for name in others)
        assert not {"bydist", "byname", "broken", "sqlite"} & set(dict(pm.list_name_plugin()))
        assert [(f.name, f.distribution) for f in _plugins._failures] == [
            ("broken", "Broken-Dist")]
        assert "ModuleNotFoundError" in _plugins._failures[0].error
        registry = _plugins.build_registry(pm)
        assert registry.specs["goodep"].plugin == "goodep"
    finally:
        sys.modules.pop("good_ep_mod", None)


def test_only_files_naming_the_group_are_parsed(path: list[Path]) -> None:
    """The one difference from importlib.metadata, on purpose: a malformed
    entry_points.txt of a distribution without storage_core plugins is not
    read, where importlib.metadata fails the whole scan."""
    first, _ = path
    dist(first, "unrelated-1.0.dist-info", "[console_scripts]\nno equals sign here\n")
    dist(first, "related-1.0.dist-info", f"[{GROUP}]\nrelated = related_mod\n")
    with pytest.raises((TypeError, ValueError)):  # TypeError on 3.11
        reference()
    assert ("related", "related_mod", GROUP, "related") in seen(_entry_points.entry_points(GROUP))

"""The entry points of one group, found without ``importlib.metadata``.

``importlib.metadata.entry_points(group=...)`` imports the email and zip
machinery and parses every installed distribution's entry points; here only
the ``entry_points.txt`` files that mention the group are parsed, and only
their distributions' ``Name`` is read. The result is what
``importlib.metadata`` gives on the common layout: directories on
``sys.path`` holding ``*.dist-info`` / ``*.egg-info`` directories, searched in
the same order, the first distribution of a name winning. Anything else
(a zip or egg on ``sys.path``, another metadata finder, a file this reader
would not read exactly as ``importlib.metadata`` does) raises `Unusual`, and
the caller asks ``importlib.metadata`` instead. One difference is on purpose:
a malformed ``entry_points.txt`` that does not mention the group is not read,
where ``importlib.metadata`` fails the whole scan.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from functools import reduce

__all__ = ["Distribution", "EntryPoint", "Unusual", "entry_points"]

# importlib.metadata.EntryPoint.pattern (3.10-3.13).
_VALUE = r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$"
# What importlib.metadata's read_text treats as "no such file".
_ABSENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class Unusual(Exception):
    """A layout or file that only ``importlib.metadata`` reads faithfully."""


class Distribution:
    """An installed distribution: its metadata ``Name`` and metadata directory."""

    __slots__ = ("name", "path")

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path

    def __repr__(self) -> str:
        return f"Distribution({self.name!r}, {self.path!r})"


class EntryPoint:
    """One entry point, loaded as ``importlib.metadata.EntryPoint.load`` does."""

    __slots__ = ("dist", "group", "name", "value")

    def __init__(self, name: str, value: str, group: str, dist: Distribution) -> None:
        self.name = name
        self.value = value
        self.group = group
        self.dist = dist

    def __repr__(self) -> str:
        return f"EntryPoint({self.name!r}, {self.value!r}, {self.group!r}, {self.dist!r})"

    def load(self) -> object:
        """Import the module the value names and return the attribute it names."""
        match = re.match(_VALUE, self.value)
        if match is None:  # entry_points() does not build these
            raise ValueError(f"bad entry point value {self.value!r}")
        module = importlib.import_module(match.group("module"))
        attrs = filter(None, (match.group("attr") or "").split("."))
        return reduce(getattr, attrs, module)


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, in ``importlib.metadata``'s order.

    :raises Unusual: the fast reading does not apply; use ``importlib.metadata``.
    """
    _check_finders()
    needle = group.encode()
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for path in list(sys.path):
        for name, info in _metadata_dirs(path):
            if name in seen:  # importlib.metadata keeps the first of a name
                continue
            seen.add(name)
            data = _read(os.path.join(info, "entry_points.txt"))
            # A section header holds the group verbatim, so a file without it
            # has nothing to give (and is not decoded nor parsed).
            if data is None or needle not in data:
                continue
            pairs = [(n, v) for section, n, v in _sections(_text(data, info)) if section == group]
            if not pairs:
                continue
            dist = Distribution(_dist_name(info), info)
            for ep_name, value in pairs:
                if re.match(_VALUE, value) is None:  # let importlib.metadata fail as it does
                    raise Unusual(f"entry point value {value!r}")
                found.append(EntryPoint(ep_name, value, group, dist))
    return found


def _check_finders() -> None:
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if getattr(finder, "find_distributions", None) is not None and finder is not PathFinder:
            raise Unusual(f"metadata finder {finder!r}")


def _metadata_dirs(path: object) -> list[tuple[str, str]]:
    """(normalized name, path) of the metadata directories in one ``sys.path``
    entry, in importlib.metadata's order: by listing order of each name's first
    appearance, the directories of one name together."""
    if not isinstance(path, str):
        raise Unusual(f"sys.path entry {path!r}")
    try:
        children = os.listdir(path or ".")
    except (OSError, ValueError):
        if os.path.exists(path or "."):  # a zip file, or a directory we may not list
            raise Unusual(f"sys.path entry {path!r}") from None
        return []
    is_egg = os.path.basename(path).lower().endswith(".egg")
    prefix = os.path.join(path, "")
    by_name: dict[str, list[str]] = {}
    for child in children:
        low = child.lower()
        if low.endswith((".dist-info", ".egg-info")):
            by_name.setdefault(_normalized_name(child), []).append(prefix + child)
        elif is_egg and low == "egg-info":
            raise Unusual(f"egg {path!r}")
    return [(name, info) for name, infos in by_name.items() for info in infos]


def _normalized_name(child: str) -> str:
    """The name importlib.metadata files a metadata directory under, and
    deduplicates it by: from its file name (`Unusual` where importlib.metadata
    would read the metadata's Name instead, or file it otherwise)."""
    stem, ext = os.path.splitext(child)
    if ext not in (".dist-info", ".egg-info"):  # e.g. upper case
        raise Unusual(f"metadata directory {child!r}")
    name = re.sub(r"[-_.]+", "-", stem.partition("-")[0]).lower().replace("-", "_")
    if not name:
        raise Unusual(f"metadata directory {child!r}")
    return name


def _read(path: str) -> bytes | None:
    """The file's bytes; None where importlib.metadata's ``read_text`` gives None."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except _ABSENT:
        return None
    except OSError as exc:  # importlib.metadata would raise
        raise Unusual(f"{path}: {type(exc).__name__}") from None


def _text(data: bytes, info: str) -> str:
    """As ``read_text`` decodes: UTF-8, universal newlines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # importlib.metadata would raise
        raise Unusual(f"{info}: not UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _sections(text: str) -> list[tuple[str, str, str]]:
    """(section, name, value) of every pair in an ``entry_points.txt``, as
    importlib.metadata's ``Sectioned.section_pairs`` reads them."""
    pairs: list[tuple[str, str, str]] = []
    section: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section is None:
            continue
        name, sep, value = line.partition("=")
        if not sep:  # importlib.metadata raises here
            raise Unusual(f"entry point line {line!r}")
        pairs.append((section, name.strip(), value.strip()))
    return pairs


def _dist_name(info: str) -> str:
    """The ``Name`` header of the metadata, as ``Distribution.name`` reads it
    through the email parser; `Unusual` where that parser might read otherwise."""
    data = _read(os.path.join(info, "METADATA")) or _read(os.path.join(info, "PKG-INFO"))
    if not data:
        raise Unusual(f"no metadata in {info}")
    lines = _text(data, info).split("\n")
    for number, line in enumerate(lines):
        if not line:  # end of the headers
            break
        if line[0] in " \t":  # continuation of a header other than Name
            continue
        key, sep, value = line.partition(":")
        # email.feedparser.headerRE: field-name characters, then the colon.
        if line.startswith("From ") or not sep or not all("!" <= c <= "~" for c in key):
            break  # an envelope line, or the body: leave it to the email parser
        if key.lower() != "name":
            continue
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if following[:1] in (" ", "\t"):  # a folded Name
            break
        return value.lstrip(" \t")
    raise Unusual(f"no plain Name header in {info}")

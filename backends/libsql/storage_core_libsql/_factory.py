"""From a parsed storage URL and ``make_storage`` options to a backend: the
factory this plugin registers for every scheme.

``file:`` URLs get the SQLite backend's own engine (or, with ``sync_url``, an
embedded replica); every other scheme gets a `LibsqlBackend` talking Hrana to
sqld or Turso. The engines import only `storage_core_libsql._config`, never
this module, so the imports form no cycle; each is imported when a URL needs
it, so importing the plugin (to list backends) imports no driver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from storage_core import ConfigurationError
from storage_core.backend import Backend, StorageURL

from ._config import remote_config

__all__ = ["from_url"]


def from_url(url: StorageURL, options: Mapping[str, Any]) -> Backend:
    """The backend factory registered for every scheme of this plugin."""
    if url.scheme == "file":
        return _file_backend(url, options)
    from ._remote import LibsqlBackend

    return LibsqlBackend(remote_config(url, options))


def _file_backend(url: StorageURL, options: Mapping[str, Any]) -> Backend:
    from ._embedded import is_embedded

    embedded = is_embedded(url, options)
    # auth_token is accepted and ignored, as agent-squad's SqlChatStorage does.
    unknown = set() if embedded else set(options) - {"auth_token"}
    if unknown:
        raise ConfigurationError(
            f"file: URLs take no keyword options but auth_token (ignored), got: "
            f"{', '.join(sorted(unknown))}"
        )
    if url.opaque:
        path = url.path  # file:local.db, file:/abs/path.db
    else:
        if url.host not in (None, "", "localhost"):
            raise ConfigurationError(f"a file: URL names no host (got {url.host!r})")
        path = "/" + url.path  # file:///abs/path.db
    if not path or path == "/":
        raise ConfigurationError(f"the URL {url} names no database file")
    # make_storage(create=False): open an existing file only, never create one.
    if not getattr(options, "create", True) and path != ":memory:":
        if not os.path.exists(path):
            raise ConfigurationError(
                f"the database file {path!r} does not exist (an existing database "
                "was asked for, so none was created)"
            )
        if not os.path.isfile(path):
            raise ConfigurationError(f"the database file {path!r} is not a file")
    if embedded:
        # file:local.db?sync_url=...: an embedded replica of a libSQL primary.
        from ._embedded import EmbeddedBackend, embedded_config

        return EmbeddedBackend(embedded_config(url, path, options))
    from storage_core_sqlite import SqliteBackend

    return SqliteBackend.with_query(
        path, url, scheme="file: URL", ignore=frozenset({"authToken"})
    )

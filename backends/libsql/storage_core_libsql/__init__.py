"""libSQL / Turso backend for storage_core, on libsql-client.

Installing this distribution registers the ``libsql``, ``wss``, ``ws``,
``https``, ``http`` and ``file`` URL schemes through the
``storage_core.backends`` entry point::

    from storage_core import make_storage

    storage = make_storage("libsql://my-db-my-org.turso.io", auth_token=token)
    storage = make_storage("http://127.0.0.1:8080")          # a local sqld
    storage = make_storage("file:local.db")                  # a local file

``file:`` URLs run on storage-core-sqlite's engine; the others send each save
to the server as one atomic batch. See the README for replicas and the
consistency each set-up gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._config import RemoteConfig
    from ._factory import from_url
    from ._remote import LibsqlBackend

__all__ = ["LibsqlBackend", "RemoteConfig", "from_url"]


def __getattr__(name: str) -> object:
    # Lazy, so loading the plugin (the first make_storage of any URL) never
    # imports libsql-client, nor the URL parsing of this package.
    if name == "LibsqlBackend":
        from ._remote import LibsqlBackend

        return LibsqlBackend
    if name == "RemoteConfig":
        from ._config import RemoteConfig

        return RemoteConfig
    if name == "from_url":
        from ._factory import from_url

        return from_url
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

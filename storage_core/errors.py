"""Every exception storage_core raises.

All errors derive from [`StorageError`][storage_core.errors.StorageError]. Where a
builtin exception means the same thing, the error is also that builtin, so
``except ValueError`` keeps working for callers who do not know this library.

Driver exceptions never leak untranslated: a backend raises one of these with
the driver's exception as ``__cause__``. Messages never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ClosedError",
    "ConfigurationError",
    "ConflictError",
    "MissingDriverError",
    "RunningLoopError",
    "StorageError",
    "TransientError",
    "ValidationError",
]


class StorageError(Exception):
    """Root of every storage_core error."""


class ConfigurationError(StorageError, ValueError):
    """The storage cannot be set up as asked: bad URL, unknown scheme, bad option."""


class MissingDriverError(ConfigurationError, ImportError):
    """A backend or its database driver is not installed.

    The message names the distribution to install (``pip install ...``).
    """

    def __init__(self, message: str, *, package: str | None = None) -> None:
        super().__init__(message)
        self.package = package


class ValidationError(StorageError, ValueError):
    """Input was rejected before anything was written."""


class AuthenticationError(StorageError):
    """The server rejected the credentials (password or token)."""


class TransientError(StorageError):
    """A failure that may go away if the call is repeated.

    The core retries these with backoff; one that reaches the caller has
    outlived the retry policy. ``ambiguous`` is true when the connection was
    lost after the request was sent, so the server may have committed it.

    ``request_id`` is the id of the write that failed (None for reads and on
    backends without exactly-once writes): repeating the call with
    ``request_id=error.request_id`` stores it if it was not stored and returns
    the original outcome if it was.
    """

    def __init__(
        self, message: str, *, ambiguous: bool = False, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        self.request_id = request_id


class ConflictError(StorageError):
    """The database refused a write because it conflicts with stored data.

    Seen only when something outside storage_core wrote rows that break the
    schema's invariants; never retried.
    """


class ClosedError(StorageError, RuntimeError):
    """The storage was used after ``close()``."""


class RunningLoopError(StorageError, RuntimeError):
    """A blocking call of ``storage_core.sync`` was made from a
    thread whose event loop is running: it would stall that loop. Await the
    same method of the async ``ChatStorage`` instead."""

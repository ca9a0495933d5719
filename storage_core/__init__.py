"""storage_core: conversation-history storage for multi-agent LLM applications.

::

    from storage_core import make_storage

    async with make_storage("sqlite:///chat.db") as storage:
        await storage.save_chat_message("u1", "s1", "support",
                                        {"role": "user", "content": [{"text": "hi"}]})
        history = await storage.fetch_chat("u1", "s1", "support", max_history_size=20)

This module holds what an application uses. Backend authors import from
[`storage_core.backend`][storage_core.backend] (the protocol, row types,
registry, ``hookimpl``, shared helpers) and
[`storage_core.plugins`][storage_core.plugins] (the plugin manager); every
error is in [`storage_core.errors`][storage_core.errors] and here.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ._backend import REQUESTS_REMEMBERED, Capabilities
from ._factory import make_storage
from ._limits import Limits
from ._model import Message, SessionInfo, StoredMessage
from ._retry import RetryPolicy
from ._rules import TrimMode
from ._storage import ChatStorage
from .errors import (
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    ConflictError,
    MissingDriverError,
    RunningLoopError,
    StorageError,
    TransientError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "REQUESTS_REMEMBERED",
    "AuthenticationError",
    "Capabilities",
    "ChatStorage",
    "ClosedError",
    "ConfigurationError",
    "ConflictError",
    "Limits",
    "Message",
    "MissingDriverError",
    "RetryPolicy",
    "RunningLoopError",
    "SessionInfo",
    "StorageError",
    "StoredMessage",
    "TransientError",
    "TrimMode",
    "ValidationError",
    "__version__",
    "make_storage",
]

# Names that lived here before storage_core.backend and storage_core.plugins
# existed: still importable from here for one release, with a warning.
_MOVED = {
    **dict.fromkeys(
        (
            "AppendRequest", "AppendResult", "Backend", "BackendFactory", "BackendRegistry",
            "BackendSpec", "ConversationKey", "MemoryBackend", "NewRow", "REDACTED",
            "RowValues", "Secret", "StorageURL", "StoredRow", "SupportsDeleteConversation",
            "SupportsPaging", "SupportsPop", "TableRow", "TableTools", "assign_timestamps",
            "drop_consecutive_roles", "hookimpl", "keep_count", "newest", "parse_url",
            "prefix_agent", "redact_text", "replayed_rows", "reused_request",
        ),
        "storage_core.backend",
    ),
    **dict.fromkeys(
        (
            "BLOCK_ENV", "ENTRY_POINT_GROUP", "build_registry", "get_plugin_manager",
            "load_failures", "register_plugin", "unregister_plugin",
        ),
        "storage_core.plugins",
    ),
}


def __getattr__(name: str) -> Any:
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module 'storage_core' has no attribute {name!r}")
    warnings.warn(
        f"storage_core.{name} moved to {home}.{name}; the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)

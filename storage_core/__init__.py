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
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # the moved names, typed, while the old paths still work
    from .backend import (
        REDACTED as REDACTED,
    )
    from .backend import (
        AppendRequest as AppendRequest,
    )
    from .backend import (
        AppendResult as AppendResult,
    )
    from .backend import (
        Backend as Backend,
    )
    from .backend import (
        BackendFactory as BackendFactory,
    )
    from .backend import (
        BackendRegistry as BackendRegistry,
    )
    from .backend import (
        BackendSpec as BackendSpec,
    )
    from .backend import (
        ConversationKey as ConversationKey,
    )
    from .backend import (
        MemoryBackend as MemoryBackend,
    )
    from .backend import (
        NewRow as NewRow,
    )
    from .backend import (
        RowValues as RowValues,
    )
    from .backend import (
        Secret as Secret,
    )
    from .backend import (
        StorageURL as StorageURL,
    )
    from .backend import (
        StoredRow as StoredRow,
    )
    from .backend import (
        SupportsDeleteConversation as SupportsDeleteConversation,
    )
    from .backend import (
        SupportsPaging as SupportsPaging,
    )
    from .backend import (
        SupportsPop as SupportsPop,
    )
    from .backend import (
        TableRow as TableRow,
    )
    from .backend import (
        TableTools as TableTools,
    )
    from .backend import (
        assign_timestamps as assign_timestamps,
    )
    from .backend import (
        drop_consecutive_roles as drop_consecutive_roles,
    )
    from .backend import (
        hookimpl as hookimpl,
    )
    from .backend import (
        keep_count as keep_count,
    )
    from .backend import (
        newest as newest,
    )
    from .backend import (
        parse_url as parse_url,
    )
    from .backend import (
        prefix_agent as prefix_agent,
    )
    from .backend import (
        redact_text as redact_text,
    )
    from .backend import (
        replayed_rows as replayed_rows,
    )
    from .backend import (
        reused_request as reused_request,
    )
    from .plugins import (
        BLOCK_ENV as BLOCK_ENV,
    )
    from .plugins import (
        ENTRY_POINT_GROUP as ENTRY_POINT_GROUP,
    )
    from .plugins import (
        build_registry as build_registry,
    )
    from .plugins import (
        get_plugin_manager as get_plugin_manager,
    )
    from .plugins import (
        load_failures as load_failures,
    )
    from .plugins import (
        register_plugin as register_plugin,
    )
    from .plugins import (
        unregister_plugin as unregister_plugin,
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


# Submodules that importing storage_core loaded before the plugin machinery
# became lazy: still reachable as attributes (and listed by dir()), loaded
# on first use.
_SUBMODULES = ("_plugins", "_registry", "hookspecs")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module 'storage_core' has no attribute {name!r}")
    warnings.warn(
        f"storage_core.{name} moved to {home}.{name}; the old name goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted((set(globals()) - {"__dir__", "_SUBMODULES"}) | set(_SUBMODULES))

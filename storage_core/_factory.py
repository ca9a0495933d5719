"""``make_storage``: from a URL to a ready ``ChatStorage``."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from ._limits import Limits
from ._retry import RetryPolicy
from ._rules import TrimMode
from ._storage import ChatStorage
from ._urls import Secret, is_secret_param, parse_url, scrub_exception, url_secrets
from .errors import ConfigurationError

__all__ = ["make_storage"]

log = logging.getLogger("storage_core")


class BackendOptions(Mapping[str, Any]):
    """What a backend factory receives as ``options``: the keyword options of
    ``make_storage`` that the core did not consume, as a read-only mapping.

    Settings of the core that concern every backend ride along as attributes,
    never as keys, so a backend that rejects keys it does not know is not
    disturbed by them. ``create`` is false when the caller wants an existing
    database only: a backend whose database is a file refuses a missing one
    with a ``ConfigurationError`` instead of creating it; a server backend
    has nothing to create and ignores it. Read it as
    ``getattr(options, "create", True)``, so a plain dict works too.
    """

    def __init__(self, options: Mapping[str, Any], *, create: bool = True) -> None:
        self._options = dict(options)
        self.create = create

    def __getitem__(self, key: str) -> Any:
        return self._options[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def __repr__(self) -> str:
        return f"BackendOptions({sorted(self._options)}, create={self.create})"


def make_storage(
    url: str,
    *,
    skip_consecutive_roles: bool = True,
    trim: TrimMode = "messages",
    retry: RetryPolicy | None = None,
    limits: Limits | None = None,
    create: bool = True,
    **backend_options: Any,
) -> ChatStorage:
    """Open the storage a URL names.

    ``sqlite:///chat.db``, ``memory://``, and whatever installed backend
    plugins serve (``postgresql://...``, ``libsql://...``, ...). Nothing is
    connected until ``initialize()`` or the first call.

    :param skip_consecutive_roles: do not store a message whose role equals
        the previous message's (the agent-squad rule); on by default.
    :param trim: ``"messages"`` keeps the newest ``max_history_size``
        messages; ``"pairs"`` keeps N-1 when N is odd; ``"tool-safe"`` keeps
        N but a window returned never begins with a tool result (see
        docs/contract.md, "Trimming").
    :param retry: the retry policy for transient failures.
    :param limits: size limits on ids, content and batches.
    :param create: with ``False``, open an existing database only: a
        file-based backend (``sqlite://``, ``file:``) raises
        ``ConfigurationError`` for a file that does not exist instead of
        creating it. Server backends ignore it.
    :param backend_options: passed to the backend (for example ``auth_token``);
        a backend rejects options it does not know.
    :raises ConfigurationError: bad URL, unknown scheme or bad option.
    :raises MissingDriverError: the backend or its driver is not installed.
    """
    # Here, not at the top: importing storage_core does not load the plugin machinery.
    from ._plugins import build_registry, get_plugin_manager

    parsed = parse_url(url)
    pm = get_plugin_manager()
    spec = pm.hook.storage_core_claim_url(url=parsed)
    if spec is None:
        spec = build_registry(pm).lookup(parsed.scheme)
    factory = spec.load()
    # Every credential in the URL (nested URLs too, as written and decoded)
    # and in the options, so errors that echo one are scrubbed.
    secrets = url_secrets(url)
    secrets += [v.reveal() for v in parsed.query.values() if isinstance(v, Secret)]
    if parsed.password is not None:
        secrets.append(parsed.password.reveal())
    for name, value in backend_options.items():
        if isinstance(value, Secret):
            secrets.append(value.reveal())
        elif isinstance(value, str):
            if is_secret_param(name):
                secrets += [value, quote(value, safe=""), quote_plus(value, safe="")]
            secrets += url_secrets(value)  # a URL option, such as libSQL's primary_url
    try:
        backend = factory(parsed, BackendOptions(backend_options, create=create))
    except ConfigurationError as exc:
        scrub_exception(exc, secrets)
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"the {parsed.scheme}:// backend ({spec.distribution}) failed to open "
            f"{parsed}: {type(exc).__name__}"
        ) from exc
    log.debug("opened %s with %s", parsed, spec.target)
    return ChatStorage(
        backend,
        url=parsed.render(),
        skip_consecutive_roles=skip_consecutive_roles,
        trim=trim,
        limits=limits,
        retry=retry,
        secrets=secrets,
    )

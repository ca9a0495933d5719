"""Limits on input, enforced by the core before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from .errors import ConfigurationError

__all__ = ["Limits"]

MiB = 1024 * 1024

# Bounds that hold on every backend, whatever the Limits say. The narrowest
# column decides: PostgreSQL stores message_index as INTEGER (and takes trim
# and read counts as integer parameters), timestamps as BIGINT.
MAX_TIMESTAMP = 2**63 - 1
MAX_INDEX = 2**31 - 1
MAX_HISTORY_SIZE = 2**31 - 1
# PostgreSQL's btree refuses an index entry over 2704 bytes, and the primary
# key's entry holds three ids (4 bytes of length each, incompressible at
# worst) plus an 8-byte header and the INTEGER index: 3 * (4 + 800) + 12 =
# 2424 bytes leaves room. SQLite and libSQL have no such limit.
MAX_ID_BYTES = 800
# Python's default bound on int <-> str conversion (sys.int_info), which the
# JSON codec obeys in both directions: a longer integer could not be read back.
MAX_INT_DIGITS = 4300

_HARD_MAXIMA: Mapping[str, int] = MappingProxyType({
    # An id or role of more characters would be over MAX_ID_BYTES anyway.
    "max_id_length": MAX_ID_BYTES,
    "max_content_bytes": 256 * MiB,
    # Measured: PostgreSQL drops the connection on a request over 1 GiB
    # (a batch of 1080 MiB), and took 512 MiB, as did SQLite and sqld over HTTP.
    "max_batch_bytes": 256 * MiB,
    "max_batch_size": 10_000,
})


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one call may store.

    ``max_content_bytes`` bounds one message's content as UTF-8 JSON;
    ``max_id_length`` bounds user, session and agent ids and roles (in
    characters; each is also at most 800 bytes as UTF-8, whatever this says);
    ``max_batch_size`` bounds the messages of one batch save (and the rows of
    one import); ``max_batch_bytes`` bounds the sum of a batch's contents as
    UTF-8 JSON (and of an import's rows' content). Each has a hard maximum,
    [`HARD_MAXIMA`][storage_core.Limits.HARD_MAXIMA], that every backend accepts; a larger
    value, or a ``max_content_bytes`` above ``max_batch_bytes``, is a ConfigurationError.
    """

    max_content_bytes: int = 4 * MiB
    max_id_length: int = 255
    max_batch_size: int = 1000
    max_batch_bytes: int = 64 * MiB

    HARD_MAXIMA: ClassVar[Mapping[str, int]] = _HARD_MAXIMA
    """The largest value each limit may be set to."""

    def __post_init__(self) -> None:
        for name, maximum in self.HARD_MAXIMA.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
            if value > maximum:
                raise ConfigurationError(
                    f"{name} is {value}; the most any backend accepts is {maximum}"
                )
        if self.max_content_bytes > self.max_batch_bytes:
            raise ConfigurationError(
                f"max_content_bytes ({self.max_content_bytes}) must not exceed "
                f"max_batch_bytes ({self.max_batch_bytes}): raise max_batch_bytes too"
            )

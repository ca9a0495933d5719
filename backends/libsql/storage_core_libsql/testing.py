"""Moved to ``storage_core_testing`` (the distribution ``storage-core-testing``);
this alias goes before the release, with the last in-tree user of it."""

from storage_core_testing.sqld import (
    CACHED_SQLD,
    START_TIMEOUT,
    Sqld,
    SqldUnavailable,
    find_sqld,
    free_port,
)

__all__ = ["CACHED_SQLD", "START_TIMEOUT", "Sqld", "SqldUnavailable", "find_sqld", "free_port"]

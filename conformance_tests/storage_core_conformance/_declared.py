"""Capabilities a backend declares missing skip tests; what the suite can
check of such a declaration, it checks."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from storage_core import Capabilities, make_storage

from ._support import Conversation, FreshIds, StorageFactory, msg

__all__ = ["DeclarationTests", "count_in_process"]

aio = pytest.mark.asyncio


def count_in_process(
    url: str, options: dict[str, Any], conv: tuple[str, str, str], timeout: float
) -> int:
    """Worker: how many messages a new storage (of another process) sees in ``conv``."""
    return asyncio.run(_count(url, options, Conversation(*conv), timeout))


async def _count(url: str, options: dict[str, Any], conv: Conversation, timeout: float) -> int:
    storage = make_storage(url, **options)
    try:
        return len(await asyncio.wait_for(storage.fetch_chat(*conv), timeout))
    finally:
        await asyncio.wait_for(storage.close(), timeout)


class DeclarationTests:
    """A declaration that skips tests must be true where the suite can tell."""

    @aio
    async def test_declared_missing_capabilities_hold(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """A backend declaring no ``persistent``: once the storage that wrote
        is closed, a new storage of the same URL, in a new process, sees none
        of it. ``shared_across_processes`` and ``read_your_writes`` cannot be
        checked so (a file without locks is visible to other processes yet
        unsafe to share; a lagging read may happen to be fresh): the run's
        summary lists the tests each declaration skipped."""
        if backend_capabilities.persistent:
            return  # nothing declared missing that the suite can check
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*c, msg("user", "written before close", 1))
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            reading = loop.run_in_executor(
                pool, count_in_process, storage_factory.url, storage_factory.options,
                (c.user_id, c.session_id, c.agent_id), storage_factory.timeout)
            seen = await asyncio.wait_for(reading, storage_factory.timeout * 2)
        assert seen == 0, (
            "the backend declares no persistent, but a new storage of its URL sees "
            f"{seen} message(s) written before close(): the tests that declaration skips "
            "would run")

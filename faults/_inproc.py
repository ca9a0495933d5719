"""Writer tasks inside the test's own event loop (for the server scenarios)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from storage_core import ChatStorage

from ._ledger import Ledger, StoredItem, describe_error
from ._ops import Conversation, save_op

__all__ = ["read_back", "write_until"]

# A call that has not returned after this long is a hang (reported as a failure).
CALL_TIMEOUT = 120.0


async def write_until(
    stop: asyncio.Event,
    storage: ChatStorage,
    ledger: Ledger,
    name: str,
    convs: Sequence[Conversation],
    *,
    parts: Sequence[int] = (1, 2, 3, 5),
    history_every: int = 16,
) -> None:
    """Save batches until ``stop`` is set, recording every outcome in ``ledger``."""
    rng = random.Random(name)
    count = 0
    while not stop.is_set():
        op = f"{name}.{count}"
        size = parts[count % len(parts)]
        conv = convs[rng.randrange(len(convs))]
        history = history_every > 0 and count % history_every == 0
        count += 1
        ledger.attempt(op, conv.label, size, writer=name)
        try:
            indexes = await asyncio.wait_for(
                save_op(storage, conv, op, size, history=history), CALL_TIMEOUT
            )
        except asyncio.TimeoutError as exc:
            ledger.fail(op, "Hung", f"no answer within {CALL_TIMEOUT:g} s: {exc}")
        except Exception as exc:
            cause = exc.__cause__
            detail = f"{exc} (cause: {type(cause).__name__}: {cause})" if cause else str(exc)
            ledger.fail(op, describe_error(exc), detail[:500])
            await asyncio.sleep(0.02)  # an error with no retry left: do not spin
        else:
            ledger.ack(op, indexes)


async def read_back(
    storage: ChatStorage, convs: Sequence[Conversation]
) -> dict[str, list[StoredItem]]:
    """Every stored message of the scenario's conversations, through ``storage``."""
    stored: dict[str, list[StoredItem]] = {}
    for conv in convs:
        messages = await storage.fetch_chat(*conv.key)
        stored[conv.label] = [StoredItem(m.index, m.content) for m in messages]
    return stored

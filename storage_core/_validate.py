"""Input validation and the JSON codec for message content.

Everything here raises [`ValidationError`][storage_core.errors.ValidationError] with a
message that names the bad value's place; nothing here touches a database.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

from ._backend import TableRow
from ._limits import (
    MAX_HISTORY_SIZE,
    MAX_ID_BYTES,
    MAX_INDEX,
    MAX_INT_DIGITS,
    MAX_TIMESTAMP,
    Limits,
)
from ._model import Message, SessionInfo, decode_content
from .errors import ValidationError

__all__ = [
    "check_before_index",
    "check_count",
    "check_id",
    "check_max_history_size",
    "check_page_limit",
    "check_session_cursor",
    "check_table_rows",
    "coerce_message",
    "decode_content",
    "encode_content",
    "encode_message",
    "encode_messages",
]

Where = str | int
"""Where a value sits, for error messages: a name, or a message's position in a
batch (``3`` is ``messages[3]``); the text is built only when an error needs it."""


Encoded = tuple[str, str, int | None]
"""A validated message: role, content as JSON text, timestamp (None: the save's clock)."""


def _place(where: Where, suffix: str = "") -> str:
    name = f"messages[{where}]" if isinstance(where, int) else where
    return f"{name} {suffix}" if suffix else name

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _check_text(where: Where, value: object, limits: Limits, suffix: str = "") -> str:
    """``value`` if it is a valid id or role; errors name it ``_place(where, suffix)``."""
    if (
        type(value) is str
        and value.isascii()  # so no lone surrogate either
        and 0 < len(value) <= limits.max_id_length
        and "\x00" not in value
    ):
        return value
    what = _place(where, suffix)
    if isinstance(value, enum.Enum) and isinstance(value.value, str):
        value = value.value
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError(f"{what} must not be empty")
    if len(value) > limits.max_id_length:
        raise ValidationError(
            f"{what} is {len(value)} characters long; the limit is {limits.max_id_length}"
        )
    if "\x00" in value:
        raise ValidationError(f"{what} must not contain NUL characters")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(f"{what} is not valid Unicode (lone surrogate)") from None
    if size > MAX_ID_BYTES:
        raise ValidationError(
            f"{what} is {size} bytes as UTF-8; the limit is {MAX_ID_BYTES} bytes"
        )
    return value


def check_id(what: str, value: object, limits: Limits) -> str:
    """Return ``value`` if it is a valid user, session or agent id."""
    return _check_text(what, value, limits)


def check_max_history_size(value: object) -> int | None:
    """Return ``value`` if it is None or an int from 1 to 2**31-1 (bools are refused)."""
    if value is None:
        return None
    return check_count(value, "max_history_size", MAX_HISTORY_SIZE, "a positive int or None")


def check_count(
    value: object, where: str, maximum: int = MAX_INDEX, what: str = "a positive int"
) -> int:
    """Return ``value`` if it is an int from 1 to ``maximum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{where} must be {what}, not {type(value).__name__}")
    if value < 1:
        raise ValidationError(f"{where} must be at least 1, got {value}")
    if value > maximum:
        raise ValidationError(f"{where} is {value}; the limit is {maximum}")
    return value


def check_page_limit(value: object) -> int | None:
    """Return ``value`` if it is None or an int from 1 to 2**31-1 (bools are
    refused): the ``limit`` of ``list_sessions``."""
    if value is None:
        return None
    return check_count(value, "limit", MAX_INDEX, "a positive int or None")


def check_before_index(value: object) -> int | None:
    """Return ``value`` if it is None or an int from 0 up (bools are refused):
    the ``before_index`` of ``fetch_chat``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"before_index must be an int from 0 up or None, not {type(value).__name__}"
        )
    if value < 0:
        raise ValidationError(f"before_index must be at least 0, got {value}")
    return value


_MIN_STORED_TIMESTAMP = -(2**63)  # BIGINT's range: what a legacy row may hold


def check_session_cursor(value: object) -> SessionInfo | None:
    """Return ``value`` if it is None or a [`SessionInfo`][storage_core.SessionInfo]
    whose ``session_id`` and ``last_timestamp`` every backend can compare
    (the other fields are not used). Its session need not exist, and its id
    is not held to the limits of a new id: it may come from an old row."""
    if value is None:
        return None
    if not isinstance(value, SessionInfo):
        raise ValidationError(
            "before must be a SessionInfo (the last one of the previous page) or None, "
            f"not {type(value).__name__}"
        )
    session_id, stamp = value.session_id, value.last_timestamp
    if not isinstance(session_id, str):
        raise ValidationError(
            f"before.session_id must be a string, not {type(session_id).__name__}"
        )
    if "\x00" in session_id:
        raise ValidationError("before.session_id must not contain NUL characters")
    try:
        session_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("before.session_id is not valid Unicode (lone surrogate)") from None
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise ValidationError(
            f"before.last_timestamp must be an int, not {type(stamp).__name__}"
        )
    if not _MIN_STORED_TIMESTAMP <= stamp <= MAX_TIMESTAMP:
        raise ValidationError(
            f"before.last_timestamp must be between -2**63 and 2**63-1, got {stamp}"
        )
    return value


_PLAIN, _CHECK, _TOO_BIG = 0, 1, 2
_MAX_DEPTH = 500  # the error paths of deeper content are not worth building
_INT_BOUND = 10**MAX_INT_DIGITS  # content integers are below this in magnitude


def _text_blocks(value: object) -> TypeGuard[list[dict[str, str]]]:
    """Whether ``value`` is a list of dicts of str to str, the usual shape of
    content (``[{"text": ...}]``): valid JSON with no further walk, since it
    can hold nothing but strings."""
    if type(value) is not list:
        return False
    for block in value:
        if type(block) is not dict:
            return False
        for key, item in block.items():
            if type(key) is not str or type(item) is not str:
                return False
    return True


def _plain_json(value: object, budget: int) -> int:
    """``_PLAIN`` when ``value`` is built of exactly dict, list, str, int,
    float (finite), bool and None, with at most ``budget`` values in all: the
    common case, checked without building the paths that
    `_check_json_value` needs for its error messages. ``_TOO_BIG`` past
    the budget, ``_CHECK`` for anything else."""
    stack: list[Any] = [value]
    pop, push, isfinite = stack.pop, stack.extend, math.isfinite
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -_INT_BOUND < item < _INT_BOUND:
                continue
            return _CHECK
        if kind is float:
            if not isfinite(item):
                return _CHECK
        elif kind is list:
            budget -= len(item)
            push(item)
        elif kind is dict:
            for key in item:
                if type(key) is not str:
                    return _CHECK
            budget -= len(item)
            push(item.values())
        else:
            return _CHECK
        if budget < 0:
            return _TOO_BIG
    return _PLAIN


def _check_json_value(value: object, where: str, limits: Limits) -> None:
    """Refuse anything that would not come back from JSON exactly as given.

    Every JSON value takes at least one byte, so content with more values
    than the size limit has bytes is refused before it is encoded: that also
    ends the walk of a list or dict that contains itself.
    """
    verdict = _plain_json(value, limits.max_content_bytes)
    if verdict == _PLAIN:
        return
    if verdict == _TOO_BIG:
        raise ValidationError(
            f"{where} holds more values than its size limit of {limits.max_content_bytes}"
            " bytes allows, or contains itself"
        )
    stack: list[tuple[object, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, (str, bool)):
            continue
        if isinstance(item, int):
            if type(item) is not int:
                raise ValidationError(f"{path} is a {type(item).__name__}, not a plain int")
            if not -_INT_BOUND < item < _INT_BOUND:
                raise ValidationError(
                    f"{path} is an integer of more than {MAX_INT_DIGITS} digits; "
                    f"the limit is {MAX_INT_DIGITS} digits"
                )
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(f"{path} is {item!r}; JSON has no NaN or Infinity")
            continue
        if depth >= _MAX_DEPTH and isinstance(item, (list, dict)):
            raise ValidationError(f"{where} is nested too deeply to store as JSON")
        if isinstance(item, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
            continue
        if isinstance(item, dict):
            for key, v in item.items():
                if not isinstance(key, str):
                    raise ValidationError(
                        f"{path} has a key of type {type(key).__name__}; JSON keys are strings"
                    )
                stack.append((v, f"{path}[{key!r}]", depth + 1))
            continue
        raise ValidationError(
            f"{path} is a {type(item).__name__}, which is not JSON "
            "(use dict, list, str, int, float, bool or None)"
        )


def _orjson_dumps() -> Callable[[object], bytes] | None:
    try:
        import orjson
    except ImportError:  # not installed (PyPy, or a platform without a wheel)
        return None
    return orjson.dumps


_fast_dumps = _orjson_dumps()


def encode_content(content: object, limits: Limits, where: Where = "content") -> str:
    """Encode message content as compact UTF-8 JSON text, enforcing the size limit.

    orjson encodes it when installed (20 times faster than the standard
    library here); what orjson refuses (integers beyond 64 bits, nesting
    beyond 255 levels, lone surrogates) goes to the standard library's
    encoder, which stores it or refuses it as it always has. The two differ
    only in how some floats are spelt (``1e-7`` / ``1e-07``), never in the
    value read back. ``where`` names the content in errors (an int ``i``:
    ``messages[i] content``). Integers are bounded to 4300 digits, the most
    the standard library converts (and so reads back) by default.
    """
    return _encode_sized(content, limits, where)[0]


def _encode_sized(content: object, limits: Limits, where: Where) -> tuple[str, int]:
    """`encode_content`, and the text's size in bytes as UTF-8."""
    if not (_text_blocks(content) and len(content) <= limits.max_content_bytes):
        _check_json_value(content, _content_place(where), limits)
    data: bytes | None = None
    if _fast_dumps is not None:
        try:
            data = _fast_dumps(content)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            data = None
    if data is not None:
        size, text = len(data), data.decode("utf-8")
    else:
        try:
            text = _encoder.encode(content)
        except RecursionError:
            raise ValidationError(
                f"{_content_place(where)} is nested too deeply to store as JSON"
            ) from None
        except ValueError as exc:  # an int beyond sys.get_int_max_str_digits()
            raise ValidationError(
                f"{_content_place(where)} cannot be encoded as JSON: {exc}"
            ) from None
        try:
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValidationError(
                f"{_content_place(where)} is not valid Unicode (lone surrogate)"
            ) from None
    if size > limits.max_content_bytes:
        raise ValidationError(
            f"{_content_place(where)} is {size} bytes as JSON; "
            f"the limit is {limits.max_content_bytes}"
        )
    return text, size


def _content_place(where: Where) -> str:
    return _place(where, "content") if isinstance(where, int) else where


def check_timestamp(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{where} must be an int (milliseconds since the epoch), not {type(value).__name__}"
        )
    if not 0 <= value <= MAX_TIMESTAMP:
        raise ValidationError(f"{where} must be between 0 and 2**63-1, got {value}")
    return value


def _fields(obj: object, where: Where) -> tuple[object, object, object]:
    """``(role, content, timestamp)`` of a Message, a mapping or an object with
    ``.role`` and ``.content``, unchecked."""
    if type(obj) is dict and "role" in obj and "content" in obj:
        return obj["role"], obj["content"], obj.get("timestamp")
    if isinstance(obj, Message):
        return obj.role, obj.content, obj.timestamp
    if isinstance(obj, Mapping):
        if "role" not in obj or "content" not in obj:
            raise ValidationError(f"{_place(where)} must have 'role' and 'content' keys")
        return obj["role"], obj["content"], obj.get("timestamp")
    if hasattr(obj, "role") and hasattr(obj, "content"):
        return obj.role, obj.content, getattr(obj, "timestamp", None)
    raise ValidationError(
        f"{_place(where)} must be a Message, a mapping or an object with .role and "
        f".content, not {type(obj).__name__}"
    )


def _checked(obj: object, limits: Limits, where: Where) -> tuple[str, object, int | None]:
    """``(role, content, timestamp)`` with role and timestamp validated."""
    role, content, timestamp = _fields(obj, where)
    role = _check_text(where, role, limits, "role")
    if timestamp is not None:
        timestamp = check_timestamp(timestamp, _place(where, "timestamp"))
    return role, content, timestamp


def coerce_message(obj: object, limits: Limits, where: Where = "message") -> Message:
    """Turn a Message, a mapping or an object with ``.role``/``.content`` into a Message.

    Validates role and timestamp; content is checked when it is encoded.
    """
    role, content, timestamp = _checked(obj, limits, where)
    return Message(role=role, content=content, timestamp=timestamp)


def encode_message(
    obj: object, limits: Limits, where: Where = "message"
) -> Encoded:
    """``(role, content as JSON text, timestamp or None)`` of a message in any
    shape `coerce_message` takes, everything validated."""
    role, content, timestamp = _checked(obj, limits, where)
    return role, encode_content(content, limits, where if isinstance(where, int)
                                else f"{where} content"), timestamp


def _batch(objs: object, limits: Limits) -> list[object]:
    if isinstance(objs, (str, bytes, Mapping)) or not isinstance(objs, Iterable):
        raise ValidationError(
            f"messages must be a list of messages, not {type(objs).__name__}"
        )
    items = list(objs)
    if len(items) > limits.max_batch_size:
        raise ValidationError(
            f"a batch holds {len(items)} messages; the limit is {limits.max_batch_size}"
        )
    return items


def coerce_messages(objs: object, limits: Limits) -> list[Message]:
    """Validate a batch of messages (any iterable but a string or a mapping)."""
    return [coerce_message(m, limits, i) for i, m in enumerate(_batch(objs, limits))]


def encode_messages(objs: object, limits: Limits) -> list[Encoded]:
    """`encode_message` of every message of a batch (any iterable but a
    string or a mapping); every message is validated, and the contents
    together are at most ``limits.max_batch_bytes`` as UTF-8 JSON."""
    out: list[Encoded] = []
    total = 0
    for i, obj in enumerate(_batch(objs, limits)):
        role, content, timestamp = _checked(obj, limits, i)
        text, size = _encode_sized(content, limits, i)
        total += size
        if total > limits.max_batch_bytes:
            # Refused as soon as it is known: the rest need not be encoded.
            raise ValidationError(
                f"messages[0:{i + 1}] hold {total} bytes of content as UTF-8 JSON; "
                f"the limit for a batch (max_batch_bytes) is {limits.max_batch_bytes}"
            )
        out.append((role, text, timestamp))
    return out


def check_table_rows(rows: Iterable[object], limits: Limits) -> list[TableRow]:
    """Validate rows to import as they are: ids and role as for a save, the
    index and timestamp within every backend's columns, the content JSON text
    (as given, in bytes) within the content limit, and the batch limits."""
    checked: list[TableRow] = []
    total = 0
    for n, row in enumerate(rows):
        if n >= limits.max_batch_size:
            raise ValidationError(
                f"an import holds more than {limits.max_batch_size} rows; the limit "
                f"for a batch (max_batch_size) is {limits.max_batch_size}"
            )
        table_row, size = _check_table_row(row, f"row {n}", limits)
        total += size
        if total > limits.max_batch_bytes:
            raise ValidationError(
                f"rows 0 to {n} hold {total} bytes of content; the limit for a "
                f"batch (max_batch_bytes) is {limits.max_batch_bytes}"
            )
        checked.append(table_row)
    return checked


def _check_table_row(row: object, where: str, limits: Limits) -> tuple[TableRow, int]:
    """Validate one row to import; the row and its content's size in bytes."""
    if not isinstance(row, TableRow):
        raise ValidationError(f"{where} is a {type(row).__name__}, not a TableRow")
    for name in ("user_id", "session_id", "agent_id"):
        _check_text(where, getattr(row, name), limits, name)
    _check_text(where, row.role, limits, "role")
    index = row.message_index
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise ValidationError(
            f"{where} message_index must be an int from 0 to {MAX_INDEX}, got {index!r}"
        )
    if check_timestamp(row.timestamp, f"{where} timestamp") is None:
        raise ValidationError(f"{where} has no timestamp")
    if not isinstance(row.content, str):
        raise ValidationError(f"{where} content must be JSON text")
    try:
        value = decode_content(row.content)
    except json.JSONDecodeError:
        raise ValidationError(f"{where} content is not valid JSON") from None
    except RecursionError:
        raise ValidationError(f"{where} content is nested too deeply to store as JSON") from None
    except ValueError as exc:  # an integer beyond sys.get_int_max_str_digits()
        raise ValidationError(f"{where} content cannot be decoded: {exc}") from None
    encode_content(value, limits, f"{where} content")
    # The text is stored as given, so its own size is what counts.
    text = row.content
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(f"{where} content is not valid Unicode (lone surrogate)") from None
    if size > limits.max_content_bytes:
        raise ValidationError(
            f"{where} content is {size} bytes; the limit is {limits.max_content_bytes}"
        )
    return row, size

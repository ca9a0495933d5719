"""Recognising tool results in the content shapes agent frameworks store.

Used by ``trim="tool-safe"``: a window of a conversation never begins with a
tool result, because the tool call it answers is before the window (trimmed
away) and most model APIs refuse a result without its call. A message is a
tool result when

- its role is ``tool`` (OpenAI chat messages, LangChain ``ToolMessage``) or
  ``function`` (the older OpenAI function messages, LangChain
  ``FunctionMessage``), or one of LangChain's chunk types for them;
- its role or a block's ``type`` ends in ``_call_output`` (OpenAI Responses
  items such as ``function_call_output``, stored by the OpenAI Agents
  integration with the item's type as role and the item as content);
- its content, a block or a list of blocks, has a ``{"toolResult": {...}}``
  block (Bedrock Converse, as agent-squad stores it) or a
  ``{"type": "tool_result", ...}`` block (Anthropic Messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._model import decode_content

if TYPE_CHECKING:
    from ._backend import RowValues

__all__ = ["is_tool_result", "is_tool_result_role", "leading_tool_results"]

_RESULT_ROLES = frozenset({"tool", "function", "ToolMessageChunk", "FunctionMessageChunk"})
_OUTPUT_SUFFIX = "_call_output"
# Every shape above spells one of these in the JSON text. Their characters
# need no escaping in JSON, so text holding none of them (and no ``\u``
# escape) cannot be a tool result and is not decoded.
_MARKERS = ("toolResult", "tool_result", _OUTPUT_SUFFIX)


def is_tool_result_role(role: str) -> bool:
    """Whether ``role`` alone marks a tool result (``tool``, ``function``,
    ``function_call_output``, ...)."""
    return role in _RESULT_ROLES or role.endswith(_OUTPUT_SUFFIX)


def _is_result_block(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    if isinstance(block.get("toolResult"), dict):
        return True
    kind = block.get("type")
    return isinstance(kind, str) and (kind == "tool_result" or kind.endswith(_OUTPUT_SUFFIX))


def is_tool_result(role: str, content: Any) -> bool:
    """Whether a message (its role and decoded content) is the result of a
    tool call, in any of the shapes the module lists.

    A list of blocks counts when any of its blocks is a tool result: the
    message needs the call before it either way.
    """
    if is_tool_result_role(role):
        return True
    if isinstance(content, list):
        return any(_is_result_block(block) for block in content)
    return _is_result_block(content)


def _row_is_tool_result(role: str, content_json: str) -> bool:
    if is_tool_result_role(role):
        return True
    if "\\u" not in content_json and not any(m in content_json for m in _MARKERS):
        return False
    try:
        content = decode_content(content_json)
    except ValueError:
        return False  # not JSON: not a tool result (reading its content raises)
    return is_tool_result(role, content)


def leading_tool_results(rows: Sequence[RowValues]) -> int:
    """How many of a window's first rows are tool results.

    ``rows`` are ``(agent_id, message_index, role, content_json, timestamp)``
    oldest first; only the leading candidates' content is decoded.
    """
    count = 0
    for row in rows:
        if not _row_is_tool_result(row[2], row[3]):
            break
        count += 1
    return count

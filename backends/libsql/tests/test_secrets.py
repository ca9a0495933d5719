"""The conformance package's secret-hygiene probe against a token-checking sqld:
canary tokens (wrong and right) in the URL and as ``auth_token``, over http
and ws, through every call, tracebacks, DEBUG logs and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage_core_conformance.secrets import secret_leaks, url_shape_leaks

CANARY = "canary.eyJhIjoicncifQ.Q2FuYXJ5VG9rZW4"


@pytest.mark.parametrize("kind", ["http_url", "ws_url"])
def test_wrong_canary_token_never_shows(sqld_auth_server: Any, kind: str) -> None:
    url = getattr(sqld_auth_server, kind)
    assert secret_leaks(f"{url}?authToken={CANARY}", CANARY) == []
    assert secret_leaks(url, CANARY, {"auth_token": CANARY}) == []


@pytest.mark.parametrize("kind", ["http_url", "ws_url"])
def test_right_token_never_shows(sqld_auth_server: Any, kind: str) -> None:
    url = getattr(sqld_auth_server, kind)
    token = sqld_auth_server.token
    assert secret_leaks(f"{url}?authToken={token}", token) == []
    assert secret_leaks(url, token, {"auth_token": token}) == []


@pytest.mark.parametrize("kind", ["http_url", "ws_url"])
def test_url_shapes_never_show_a_credential(sqld_auth_server: Any, kind: str) -> None:
    # Issue 17: raw / ? # @ : in user information, nested primary URLs with
    # credentials, tokens with reserved characters; with the right token too.
    url = getattr(sqld_auth_server, kind)
    assert url_shape_leaks(url) == []
    assert url_shape_leaks(f"{url}?authToken={sqld_auth_server.token}") == []


def test_file_url_shapes_never_show_a_credential(tmp_path: Path) -> None:
    assert url_shape_leaks(f"file:{tmp_path}/s.db") == []
    assert url_shape_leaks(f"file://{tmp_path}/s.db") == []

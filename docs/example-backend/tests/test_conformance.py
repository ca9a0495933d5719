"""Step 4: the whole test file of a backend: a subclass and one fixture."""

from pathlib import Path

import pytest

from storage_core_conformance import ConformanceTests


class TestJsonFile(ConformanceTests):
    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"jsonfile:///{tmp_path}/chat.json"

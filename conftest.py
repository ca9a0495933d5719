"""Repository-wide pytest set-up: load the conformance suite for in-tree backends.

Third-party backends do the same in their own top-level conftest.py.
"""

pytest_plugins = ["storage_core_conformance"]

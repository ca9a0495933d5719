# Step 3: load the conformance suite (explicitly: it never loads itself).
pytest_plugins = ["storage_core_conformance"]

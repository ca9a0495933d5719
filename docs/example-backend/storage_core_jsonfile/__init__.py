"""An example storage_core backend that keeps a database in one JSON file."""

from .backend import JsonFileBackend

__all__ = ["JsonFileBackend"]

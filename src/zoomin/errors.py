"""Errors a user can act on: they name the file or config key and the problem."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, config or files; printed without a traceback."""


class InputFileError(UserError):
    """A file that is missing, corrupt or in the wrong format."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(UserError):
    """An invalid configuration value."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"config key '{key}': {problem}")


class OutputFileError(UserError):
    """An output that could not be written (disk full, quota exceeded, read-only file system)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

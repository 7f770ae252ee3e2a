"""Errors of the data pipeline that carry what the INI glue needs to locate them."""

from __future__ import annotations

from typing import Any


class ParameterError(ValueError):
    """A bad database or transformation parameter; ``key`` is its INI name."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


class TransformationError(ValueError):
    """A transformation failed on the stimuli; ``step`` is the transformation object."""

    def __init__(self, step: Any, message: str):
        self.step = step
        super().__init__(message)

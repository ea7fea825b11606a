"""The argument checks of keys and values, one copy for every layer: keys and values
are ``bytes`` (anything else is a TypeError naming the type)."""

from __future__ import annotations

from typing import Any


def check_key(key: Any) -> None:
    if not isinstance(key, bytes):
        raise TypeError(f"key must be bytes, not {type(key).__name__}")


def check_value(value: Any) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"value must be bytes, not {type(value).__name__}")

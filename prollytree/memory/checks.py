"""Argument checks shared by the memory system and its kinds (TypeError for wrong types,
ValueError for bad values, naming the argument)."""

from __future__ import annotations

from typing import Any

KEEP = object()  # "argument not given" for update()


def check_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str) or not isinstance(tags, (list, tuple, set, frozenset)):
        raise TypeError("tags must be a list of str")
    out = []
    for t in tags:
        if not isinstance(t, str):
            raise TypeError("tags must be str")
        if t not in out:
            out.append(t)
    return out


def check_confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"confidence must be a number, not {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"confidence must be within [0, 1], got {value}")
    return float(value)


def check_ttl(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"ttl must be a number of seconds or None, not {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"ttl must be > 0 seconds, got {value}")
    return float(value)


def check_opt_str(value: Any, what: str) -> str | None:
    return None if value is None else check_str(value, what)

"""Reading values out of records: ``var`` paths, ``val`` keys and scopes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ._values import number_text


def var_keys(path: Any) -> list[str]:
    """The keys of a ``var`` path: ``"account.industry"`` is two keys; empty is none."""
    if path is None or path == "" or path == []:
        return []
    if isinstance(path, bool):
        return ["true" if path else "false"]
    if isinstance(path, (int, float, Decimal)):
        return number_text(path).split(".")
    if isinstance(path, str):
        return path.split(".")
    return [str(path)]


def step(container: Any, key: Any) -> Any:
    """One key down: a mapping's entry or a list's item; ``None`` when absent."""
    if type(container) is dict:
        return container.get(key if type(key) is str else _mapping_key(key))
    if isinstance(container, (list, tuple)):
        index = _index(key)
        if index is not None and index < len(container):
            return container[index]
        return None
    if isinstance(container, Mapping):
        return container.get(_mapping_key(key))
    return None


def has_key(container: Any, key: Any) -> bool:
    """Whether ``step(container, key)`` finds an entry (even one holding null)."""
    if isinstance(container, Mapping):
        return _mapping_key(key) in container
    if isinstance(container, (list, tuple)):
        index = _index(key)
        return index is not None and index < len(container)
    return False


def _mapping_key(key: Any) -> str:
    """The entry a key names: a number as JavaScript writes it (``1.0`` is ``"1"``)."""
    if isinstance(key, str):
        return key
    return number_text(key) if isinstance(key, (int, float)) else str(key)


def _index(key: Any) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return key if key >= 0 else None
    if isinstance(key, str) and key.isascii() and key.isdigit():
        return int(key)
    return None


def walk(data: Any, keys: Sequence[Any]) -> Any:
    for key in keys:
        if data is None:
            return None
        data = step(data, key)
    return data


def scope_at(data: Any, scope: Any, levels: int) -> Any:
    """The data ``levels`` up: 1 is the iteration (``{"index": i}``), 2 the outer data.

    Each ``map``-like operation adds two levels, as the JSON Logic community's
    scope proposal counts them; asking above the top gives the top.
    """
    for level in range(1, levels + 1):
        if scope is None:
            return data
        if level % 2:
            if level == levels:
                return scope[0]
            continue
        data, scope = scope[1], scope[2]
    return data

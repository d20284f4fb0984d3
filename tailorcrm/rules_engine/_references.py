"""Where a condition names the record's fields: to list those names or rename them.

A renamed or removed field has to be found in every condition that reads it
(DESIGN.md principle 2). The walk follows the static checks: ``var``, ``val`` and
``exists`` paths, the keys of ``missing`` and ``missing_some``, the operands of
``changed`` and ``prior``, and ``$prior.<field>``. Inside ``map``, ``filter`` and the
like, ``var`` reads the current item rather than the record, so names there are
left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._checks import _reads_other_data, _record_climb
from ._registry import OPERATORS, SINGLE, is_operation

Rename = Callable[[str], str]


def field_names(condition: Any) -> set[str]:
    """Return the names of the record's fields that ``condition`` reads.

    Only the first step of a path counts: ``account.industry`` reads ``account``.
    """
    found: set[str] = set()

    def note(name: str) -> str:
        found.add(name)
        return name

    _walk(condition, note, scopes=0)
    return found


def rename_fields(condition: Any, renames: Mapping[str, str]) -> Any:
    """Return a copy of ``condition`` with field names changed as ``renames`` says.

    Every name is looked up once, so swapping two names in one call works.
    """
    return _walk(condition, lambda name: renames.get(name, name), scopes=0)


def _walk(node: Any, rename: Rename, *, scopes: int) -> Any:
    """``scopes``: how many item scopes (of ``map`` and the like) enclose ``node``."""
    if isinstance(node, list):
        return [_walk(item, rename, scopes=scopes) for item in node]
    if not is_operation(node):
        return node

    ((name, operand),) = node.items()
    operator = OPERATORS.get(name)
    if operator is None or name == "preserve":
        return node

    if isinstance(operand, list):
        items = [
            _walk(item, rename, scopes=scopes + _reads_other_data(name, index))
            for index, item in enumerate(operand)
        ]
        return {name: _rename_operands(name, items, rename, scopes=scopes)}
    if operator.form != SINGLE and is_operation(operand):
        # One computed operation gives every operand; no name is written here.
        return {name: _walk(operand, rename, scopes=scopes)}

    single = _walk(operand, rename, scopes=scopes)
    (renamed,) = _rename_operands(name, [single], rename, scopes=scopes)
    return {name: renamed}


def _rename_operands(
    name: str, items: list[Any], rename: Rename, *, scopes: int
) -> list[Any]:
    if not items:
        return items
    in_item = scopes > 0
    first = items[0]
    if name == "var" and isinstance(first, str):
        return [_rename_path(first, rename, in_item=in_item), *items[1:]]
    if name in ("changed", "prior") and isinstance(first, str):
        return [rename(first), *items[1:]]
    if name == "val" and _record_climb(items, scopes) is not None:
        # [[levels], "field", ...] that climbs out to the record.
        head = items[1]
        renamed = head if not head or head.startswith("$") else rename(head)
        return [items[0], renamed, *items[2:]]
    if name == "val" and all(not isinstance(key, (dict, list)) for key in items):
        return _rename_val(items, rename, in_item=in_item)
    if name == "exists" and all(isinstance(key, str) for key in items):
        # Its operands are a path, as val's are: ["account", "industry"].
        return _rename_val(items, rename, in_item=in_item)
    if name == "missing" and not in_item:
        if isinstance(first, list):
            return [_rename_keys(first, rename), *items[1:]]
        return _rename_keys(items, rename)
    if name == "missing_some" and not in_item and len(items) == 2:
        keys = items[1]
        if isinstance(keys, str):
            # One key written without its list, which reads as [key].
            return [first, _rename_path(keys, rename, in_item=False)]
        return [first, _rename_keys(keys, rename) if isinstance(keys, list) else keys]
    return items


def _rename_val(items: list[Any], rename: Rename, *, in_item: bool) -> list[Any]:
    first = items[0]
    if not isinstance(first, str):
        return items
    if first == "$prior" and len(items) > 1 and isinstance(items[1], str):
        return [first, rename(items[1]), *items[2:]]
    if first.startswith("$") or in_item or not first:
        return items
    return [rename(first), *items[1:]]


def _rename_keys(keys: list[Any], rename: Rename) -> list[Any]:
    return [
        _rename_path(key, rename, in_item=False) if isinstance(key, str) else key
        for key in keys
    ]


def _rename_path(path: str, rename: Rename, *, in_item: bool) -> str:
    head, dot, rest = path.partition(".")
    if head == "$prior" and rest:
        # $prior reads the record being saved even inside map and the like.
        field, dot, deeper = rest.partition(".")
        return f"$prior.{rename(field)}{dot}{deeper}"
    if not head or head.startswith("$") or in_item:
        return path
    return f"{rename(head)}{dot}{rest}"

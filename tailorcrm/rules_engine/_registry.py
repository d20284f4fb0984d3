"""The operator table shared by the compiler and the static checks.

Every operator is an :class:`Operator`: how its JSON operand is read, how many
operands it takes, what kind of value it gives, and a ``build`` function that turns
its compiled operands into one Python closure. Compiled code is a tree of closures
``fn(data, scope)``: ``data`` is the value that ``var`` reads (the record, or the
current item inside ``map`` and friends) and ``scope`` links to the enclosing data as
``(meta, outer_data, outer_scope)``, or is ``None`` at the top.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import ConditionError, invalid_arguments

Fn = Callable[[Any, Any], Any]

#: How a JSON operand that is not a list is read. ``list``: it must be a list (the
#: operator evaluates operands lazily); ``single``: it is the one operand;
#: ``spread``: a computed operand that gives a list gives all the operands.
LIST, SINGLE, SPREAD = "list", "single", "spread"


def is_operation(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1


@dataclass(frozen=True)
class Operands:
    """The operands of one operation, as the compiler hands them to ``build``.

    ``raw`` is the JSON operand list, or ``None`` when one computed operation gives
    the operands at run time (``dynamic``). ``fns`` holds the compiled operands.
    """

    name: str
    raw: Sequence[Any] | None
    fns: tuple[Fn, ...]
    dynamic: Fn | None
    path: str

    def operand_path(self, index: int) -> str:
        prefix = f"{self.path}.{self.name}" if self.path else self.name
        return f"{prefix}[{index}]"

    def literal(self, index: int) -> tuple[bool, Any]:
        """``(True, value)`` when operand ``index`` is written as a plain value."""
        if self.raw is None or index >= len(self.raw) or is_operation(self.raw[index]):
            return False, None
        value = self.raw[index]
        if isinstance(value, list):
            return (not any(isinstance(item, (dict, list)) for item in value)), value
        return True, value

    def fail(
        self, message: str, *, index: int | None = None, code: str
    ) -> ConditionError:
        path = self.path if index is None else self.operand_path(index)
        return ConditionError(message, path=path, code=code)


Impl = Callable[[list[Any]], Any]


@dataclass(frozen=True)
class Operator:
    name: str
    build: Callable[[Operands], Fn]
    form: str = SPREAD
    min_args: int = 0
    max_args: int | None = None
    #: The kind of value it gives, for the static checks: ``boolean``, ``number``,
    #: ``text``, ``date``, ``datetime``, ``list`` or ``any``.
    result: str = "any"


OPERATORS: dict[str, Operator] = {}


def register(
    name: str,
    *,
    form: str = SPREAD,
    min_args: int = 0,
    max_args: int | None = None,
    result: str = "any",
) -> Callable[[Callable[[Operands], Fn]], Callable[[Operands], Fn]]:
    """Add an operator whose ``build`` function is the decorated one."""

    def decorate(build: Callable[[Operands], Fn]) -> Callable[[Operands], Fn]:
        OPERATORS[name] = Operator(name, build, form, min_args, max_args, result)
        return build

    return decorate


def register_eager(
    name: str,
    impl: Impl,
    *,
    form: str = SPREAD,
    min_args: int = 0,
    max_args: int | None = None,
    result: str = "any",
) -> None:
    """Add an operator that evaluates all its operands, then calls ``impl(values)``."""

    def build(operands: Operands) -> Fn:
        return eager(impl, operands, min_args, max_args)

    OPERATORS[name] = Operator(name, build, form, min_args, max_args, result)


def eager(impl: Impl, operands: Operands, min_args: int, max_args: int | None) -> Fn:
    dynamic = operands.dynamic
    if dynamic is not None:
        name = operands.name

        def computed(data: Any, scope: Any) -> Any:
            values = dynamic(data, scope)
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            if len(values) < min_args or (
                max_args is not None and len(values) > max_args
            ):
                raise invalid_arguments(f"{name} got {len(values)} operands.")
            return impl(values)

        return computed

    fns = operands.fns
    if not fns:
        return lambda data, scope: impl([])
    if len(fns) == 1:
        (first,) = fns
        return lambda data, scope: impl([first(data, scope)])
    if len(fns) == 2:
        first, second = fns
        is_value, value = scalar_operand(operands, 1)
        if is_value:
            return lambda data, scope: impl([first(data, scope), value])
        return lambda data, scope: impl([first(data, scope), second(data, scope)])
    return lambda data, scope: impl([fn(data, scope) for fn in fns])


_SCALAR_TYPES = (str, int, float, bool, type(None))


def scalar_operand(operands: Operands, index: int) -> tuple[bool, Any]:
    """``(True, value)`` when operand ``index`` is a text, number, boolean or null
    written in the rule: the value itself can stand in for its compiled closure."""
    is_literal, value = operands.literal(index)
    if is_literal and isinstance(value, _SCALAR_TYPES):
        return True, value
    return False, None


def root_of(data: Any, scope: Any) -> Any:
    """The record at the top, from inside any number of ``map``-like scopes."""
    while scope is not None:
        data = scope[1]
        scope = scope[2]
    return data


def child_scope(meta: Mapping[str, Any], data: Any, scope: Any) -> tuple[Any, Any, Any]:
    return (meta, data, scope)

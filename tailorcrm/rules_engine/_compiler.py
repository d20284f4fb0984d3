"""Compiling a condition into a tree of Python closures, once.

A condition is JSON: an object with one key is an operation, a list is a list of
expressions, anything else is itself. The compiler checks the shape (known
operators, operand counts, depth and size) and hands each operator its compiled
operands; what comes back is one callable that evaluates the condition against a
record without looking at the JSON again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from threading import Lock
from typing import Any

from . import _core_ops, _crm_ops  # noqa: F401  (they fill the operator table)
from ._core_ops import literal_copy
from ._errors import ConditionError, EvaluationError
from ._registry import LIST, OPERATORS, SINGLE, Fn, Operands, is_operation

#: The deepest nesting of operations and lists a condition may have.
MAX_DEPTH = 32
#: The largest condition, in bytes of compact UTF-8 JSON.
MAX_SIZE = 10_240

_SCALARS = (str, int, float, bool, type(None))


def condition_size(condition: Any) -> int:
    """The condition's size in bytes of compact UTF-8 JSON.

    :raises ConditionError: the condition cannot be written as JSON (it refers to
        itself), or its text is not valid Unicode (a JSON escape such as
        ``"\\ud800"`` gives a lone UTF-16 surrogate, which no page, database or
        other program could take).
    """
    try:
        text = json.dumps(
            condition, ensure_ascii=False, separators=(",", ":"), default=str
        )
    except ValueError:
        raise ConditionError(
            "The condition is not a JSON document.", path="", code="invalid_arguments"
        ) from None
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ConditionError(
            "The condition holds a broken character.", path="", code="invalid_text"
        ) from None


class CompiledCondition:
    """A condition compiled once, to be called with each record: ``fn(data)``.

    In the default, lenient mode a failure anywhere in the condition (a division by
    zero, text where a number belongs, a ``throw``) makes the result ``None``, so a
    rule never breaks a save; ``coalesce`` and ``try`` can catch a failure first. In
    strict mode the failure is raised as :class:`EvaluationError`, as the JSON Logic
    community specification asks, which suits tests and finding out why a rule
    gives no value.
    """

    __slots__ = ("condition", "strict", "_fn")

    def __init__(self, condition: Any, fn: Fn, *, strict: bool) -> None:
        self.condition = condition
        self.strict = strict
        self._fn = fn

    @property
    def function(self) -> Fn:
        """The compiled closure, called as ``function(data, scope)``."""
        return self._fn

    def __call__(self, data: Any = None) -> Any:
        try:
            return self._fn(data, None)
        except EvaluationError:
            if self.strict:
                raise
            return None

    def __repr__(self) -> str:
        text = json.dumps(self.condition, default=str)
        return f"<CompiledCondition {text[:60]}{'…' if len(text) > 60 else ''}>"


def compile_condition(condition: Any, *, strict: bool = False) -> CompiledCondition:
    """Compile ``condition`` into a reusable callable ``(data) -> value``.

    :param condition: a JSON Logic document (already parsed from JSON).
    :param strict: raise :class:`EvaluationError` on a failure instead of giving
        ``None``.
    :raises ConditionError: the condition is malformed whatever the data: an
        unknown operator, a wrong number of operands, too deep or too large.
    """
    size = condition_size(condition)
    if size > MAX_SIZE:
        raise ConditionError(
            f"The condition is {size} bytes long; at most {MAX_SIZE} are allowed.",
            path="",
            code="too_large",
        )
    return CompiledCondition(condition, _compile(condition, "", 0), strict=strict)


_cache: OrderedDict[tuple[str, bool], CompiledCondition] = OrderedDict()
_cache_lock = Lock()
_CACHE_SIZE = 512


def evaluate(condition: Any, data: Any = None, *, strict: bool = False) -> Any:
    """Evaluate ``condition`` against ``data``; see :func:`compile_condition`.

    Recently used conditions are kept compiled, so calling this per record costs a
    JSON serialization, not a compilation; code that evaluates one condition many
    times should still hold on to :func:`compile_condition`'s result.
    """
    try:
        key = (json.dumps(condition, sort_keys=True, separators=(",", ":")), strict)
    except (TypeError, ValueError):
        return compile_condition(condition, strict=strict)(data)

    with _cache_lock:
        compiled = _cache.get(key)
        if compiled is not None:
            _cache.move_to_end(key)
    if compiled is None:
        compiled = compile_condition(condition, strict=strict)
        with _cache_lock:
            _cache[key] = compiled
            if len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return compiled(data)


def _compile(node: Any, path: str, depth: int) -> Fn:
    if isinstance(node, _SCALARS) or not isinstance(node, (dict, list)):
        return _constant(node)

    depth += 1
    if depth > MAX_DEPTH:
        raise ConditionError(
            f"The condition nests deeper than {MAX_DEPTH} levels.",
            path=path,
            code="too_deep",
        )

    if isinstance(node, list):
        return _compile_list(node, path, depth)
    if len(node) != 1:
        # An object with no key or several is a value, not an operation.
        return literal_copy(node)

    ((name, operand),) = node.items()
    return _compile_operation(name, operand, path, depth)


# Operations that read the record, the scope or the clock: never folded.
_READERS = frozenset(
    {"var", "val", "exists", "missing", "missing_some", "today", "now", "changed",
     "prior"}
)  # fmt: skip


def _reads_nothing(node: Any) -> bool:
    """Whether ``node`` gives the same value for any data at any time."""
    if isinstance(node, list):
        return all(_reads_nothing(item) for item in node)
    if not isinstance(node, dict) or len(node) != 1:
        return True
    ((name, operand),) = node.items()
    return name not in _READERS and _reads_nothing(operand)


def _folded(fn: Fn, node: dict[str, Any]) -> Fn:
    """Evaluate at compile time an operation that reads nothing (constant folding).

    An operation that fails is left to fail at run time, where lenient and strict
    evaluation treat the failure as they do; a list or object result is still a
    fresh copy for each caller.
    """
    if not _reads_nothing(node):
        return fn
    try:
        value = fn(None, None)
    except EvaluationError:
        return fn
    return literal_copy(value)


def _constant(value: Any) -> Fn:
    return lambda data, scope: value


def _compile_list(node: list[Any], path: str, depth: int) -> Fn:
    if all(isinstance(item, _SCALARS) for item in node):
        items = tuple(node)
        return lambda data, scope: list(items)
    fns = [_compile(item, f"{path}[{index}]", depth) for index, item in enumerate(node)]
    return lambda data, scope: [fn(data, scope) for fn in fns]


def _compile_operation(name: str, operand: Any, path: str, depth: int) -> Fn:
    node = {name: operand}
    operator = OPERATORS.get(name)
    if operator is None:
        raise ConditionError(
            unknown_operator_text(name), path=path, code="unknown_operator"
        )

    prefix = f"{path}.{name}" if path else name
    if name == "preserve":
        return operator.build(Operands(name, [operand], (), None, path))

    if not isinstance(operand, list):
        if operator.form == LIST:
            raise ConditionError(
                f"{name} needs a list of operands.", path=path, code="invalid_arguments"
            )
        if operator.form != SINGLE and is_operation(operand):
            dynamic = _compile(operand, prefix, depth)
            return _folded(
                operator.build(Operands(name, None, (), dynamic, path)), node
            )
        _check_count(name, 1, path)
        single = (_compile(operand, prefix, depth),)
        return _folded(
            operator.build(Operands(name, [operand], single, None, path)), node
        )

    _check_count(name, len(operand), path)
    fns = tuple(
        _compile(item, f"{prefix}[{index}]", depth)
        for index, item in enumerate(operand)
    )
    return _folded(operator.build(Operands(name, operand, fns, None, path)), node)


def _check_count(name: str, count: int, path: str) -> None:
    operator = OPERATORS[name]
    low, high = operator.min_args, operator.max_args
    if low <= count and (high is None or count <= high):
        return
    raise ConditionError(
        f"{name} takes {arity_text(low, high)}, not {count}.",
        path=path,
        code="invalid_arguments",
    )


#: Operators of other languages that this one spells otherwise, and how.
_SPELLED_OTHERWISE = {
    "not": "!",
    "=": "==",
    "<>": "!=",
    "&&": "and",
    "||": "or",
}


def unknown_operator_text(name: str) -> str:
    """The problem of an operator that does not exist, with the one meant where
    the name is another language's spelling of it (``not`` for ``!``) or one in
    other letters' case (``AND`` for ``and``)."""
    meant = _SPELLED_OTHERWISE.get(name.lower())
    if meant is None and name.lower() in OPERATORS:
        meant = name.lower()
    if meant is None:
        return f"There is no operator {name!r}."
    return f"There is no operator {name!r}; write {meant!r}."


def arity_text(low: int, high: int | None) -> str:
    """How many operands an operator takes, in words: "1 operand", "2 to 3 operands"."""
    if high is None:
        return f"at least {low} operand{'s' if low != 1 else ''}"
    if low == high:
        return f"{low} operand{'s' if low != 1 else ''}"
    return f"{low} to {high} operands"

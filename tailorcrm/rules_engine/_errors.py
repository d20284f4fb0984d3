"""Errors of the rules engine.

The engine keeps to itself: these classes do not derive from the platform's error
model, so the engine can be used (and tested) alone. The layers above turn them into
their own errors: a :class:`ConditionError` when a rule is saved becomes invalid
metadata, an :class:`EvaluationError` in strict mode becomes a rule error.
"""

from __future__ import annotations

from typing import Any

#: Error types named by the JSON Logic community specification.
NAN = "NaN"
INVALID_ARGUMENTS = "Invalid Arguments"
UNKNOWN_OPERATOR = "Unknown Operator"


class RuleError(Exception):
    """Root of the engine's errors; ``type`` is the JSON Logic error type."""

    type: str = INVALID_ARGUMENTS

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConditionError(RuleError):
    """A condition that cannot be compiled, whatever the data.

    ``path`` locates the offending expression in the JSON Logic document, as in
    ``and[1].>[0]`` (empty for the whole condition); ``code`` is one of the codes
    that :func:`~tailorcrm.rules_engine.check_condition` reports.
    """

    def __init__(self, message: str, *, path: str, code: str) -> None:
        super().__init__(message)
        self.path = path
        self.code = code
        self.type = (
            UNKNOWN_OPERATOR if code == "unknown_operator" else INVALID_ARGUMENTS
        )

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class EvaluationError(RuleError):
    """A failure while a condition runs: a ``throw``, or an operation without a value.

    ``value`` is the error object that ``try`` hands to its fallbacks, always a
    mapping with a ``type`` key. Callers see this error only in strict mode; by
    default the whole condition then gives ``None``.
    """

    def __init__(
        self, error_type: str, message: str = "", *, value: Any = None
    ) -> None:
        super().__init__(message or error_type)
        self.type = error_type
        self.value = value if value is not None else {"type": error_type}


def nan(message: str) -> EvaluationError:
    """An operation whose operands have no numeric (or comparable) value."""
    return EvaluationError(NAN, message)


def invalid_arguments(message: str) -> EvaluationError:
    """Operands computed at run time that the operation cannot take."""
    return EvaluationError(INVALID_ARGUMENTS, message)

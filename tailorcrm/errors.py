"""The error model shared by every layer (DESIGN.md principle 8).

Every error carries a machine-readable ``code``, a message for people and, where it
concerns one place, a list of :class:`Problem` entries naming a field, a JSON path or
a CSV row. The API turns them into RFC 9457 problem documents; the CLI prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (``field``), what (``code``), and why."""

    field: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "code": self.code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def a_or_an(word: str) -> str:
    """``word`` after the indefinite article it takes: ``an integer``, ``a text``.

    Field types are lower-case English words; one that starts with a, e, i or o
    takes "an" (a "url" is read as "you-are-ell", so u takes "a").
    """
    return f"an {word}" if word[:1] in ("a", "e", "i", "o") else f"a {word}"


class TailorError(Exception):
    """Root of every error the platform raises on purpose."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, message: str, *, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message, *(f"  {problem}" for problem in self.problems)]
        return "\n".join(lines)


class BadRequest(TailorError):
    """The request itself is malformed: unreadable JSON, an unknown filter."""

    @classmethod
    def parameter(
        cls, name: str, message: str, *, code: str = "invalid_parameter"
    ) -> BadRequest:
        """The refusal of the parameter ``name`` (of the query, or a key of the
        body): named before the message, and as the field of its problem, where
        a client finds which one to mend."""
        return cls(f"{name}: {message}", problems=[Problem(name, code, message)])


class Unauthorized(TailorError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(TailorError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(TailorError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(TailorError):
    """The input is valid but clashes with stored data (duplicates, dependents)."""

    status = 409
    code = "conflict"
    title = "Conflict"


class PreconditionFailed(TailorError):
    status = 412
    code = "precondition_failed"
    title = "Precondition failed"


class TooManyRequests(TailorError):
    """Too many attempts in a while (failed sign-ins); ``retry_after`` in seconds."""

    status = 429
    code = "too_many_requests"
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidMetadata(TailorError):
    """A metadata document failed its JSON Schema or a semantic check."""

    status = 422
    code = "invalid_metadata"
    title = "Invalid metadata document"


class UnsupportedChange(TailorError):
    """A metadata change the planner cannot apply safely (yet)."""

    status = 422
    code = "unsupported_change"
    title = "Unsupported metadata change"


class ValidationFailed(TailorError):
    """A record failed validation; ``problems`` holds every field error."""

    status = 422
    code = "validation_failed"
    title = "Validation failed"

"""Generated marshmallow schemas that check incoming record data for one entity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma

from ..errors import Problem
from ._fields import FieldValueError, convert


class CodedMessage(str):
    """An error message that remembers its machine-readable code."""

    code: str

    def __new__(cls, code: str, message: str) -> CodedMessage:
        instance = super().__new__(cls, message)
        instance.code = code
        return instance


class RecordField(ma.fields.Field):
    """A marshmallow field that checks a value against one field document."""

    def __init__(self, spec: dict[str, Any], **kwargs: Any) -> None:
        self.spec = spec
        super().__init__(
            required=bool(spec.get("required")),
            allow_none=not spec.get("required"),
            **kwargs,
        )

    def make_error(self, key: str, **kwargs: Any) -> ma.ValidationError:
        if key in ("required", "null"):
            return ma.ValidationError(
                CodedMessage("required", "This field is required.")
            )
        return super().make_error(key, **kwargs)

    def deserialize(
        self,
        value: Any,
        attr: str | None = None,
        data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        # The whole check is ``convert``; skipping marshmallow's generic validator
        # loop (this field has no extra validators) keeps bulk imports fast.
        if value is ma.missing:
            if self.required:
                raise self.make_error("required")
            return ma.missing
        if value is None or (self.required and value == ""):
            if self.required:
                raise self.make_error("required")
            return None
        try:
            converted = convert(self.spec, value)
        except FieldValueError as error:
            raise ma.ValidationError(CodedMessage(error.code, error.message)) from None
        if converted is None and self.required:
            # Text of spaces only, or an empty choice list, is blank too.
            raise self.make_error("required")
        return converted


def build_schema(entity: str, specs: list[dict[str, Any]]) -> ma.Schema:
    """Return a schema instance checking every writable field of ``entity``."""
    declared: dict[str, ma.fields.Field] = {
        spec["name"]: RecordField(spec)
        for spec in specs
        if spec["type"] != "autonumber"
    }
    schema_class = ma.Schema.from_dict(declared, name=f"{entity.title()}RecordSchema")
    return schema_class(unknown=ma.EXCLUDE)


def problems_from(messages: Mapping[str, Any]) -> list[Problem]:
    """Flatten marshmallow's error dictionary into coded problems."""
    problems = []
    for field, entries in messages.items():
        items = entries if isinstance(entries, list) else [entries]
        for entry in items:
            code = getattr(entry, "code", "invalid")
            problems.append(Problem(field, code, str(entry)))
    return problems

"""Checks of entity documents: the JSON Schema first, then the rules it cannot say.

Every problem is collected with the JSON path where it occurs, so that an admin sees
all of them at once; a document with any problem is refused whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from ..errors import Problem, a_or_an
from ._fields import (
    ALL_TYPES,
    DEFAULT_MAX_LENGTH,
    MAX_INDEXED_LENGTH,
    OPTION_TYPES,
    TEXT_TYPES,
    FieldValueError,
    convert,
)
from ._reserved import RESERVED_WORDS

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_NAME_LENGTH = 48
MAX_FIELDS = 500
SYSTEM_COLUMNS = frozenset(
    {"id", "created_at", "updated_at", "created_by", "owner_id", "version"}
)
# Entity names that would clash with the API's own paths or the system tables.
RESERVED_ENTITY_NAMES = frozenset({"meta", "auth", "users", "tokens"})
SYSTEM_TABLE_PREFIX = "tc_"
UNIQUE_TYPES = frozenset(
    {"text", "email", "phone", "url", "integer", "decimal", "currency", "date"}
)
EXTERNAL_ID_TYPES = frozenset({"text", "email", "integer"})


def load_schema(kind: str) -> dict[str, Any]:
    """Read the JSON Schema of one document kind from the package."""
    text = resources.files(__package__).joinpath(f"schemas/{kind}.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


@cache
def entity_schema() -> dict[str, Any]:
    """Return the JSON Schema (Draft 2020-12) of entity documents."""
    return load_schema("entity")


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(entity_schema())


def text_problems(document: Any) -> list[Problem]:
    """Return the texts of a document that no page or database could hold, each
    at its JSON path.

    Text must be valid Unicode (a JSON escape of half a UTF-16 pair, ``"\\ud800"``,
    is not), and may not hold the NUL character: PostgreSQL refuses it, and a
    label with one would reach every page. Keys are texts too.
    """
    problems = []
    pending: list[tuple[list[str | int], Any]] = [([], document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            named = [(_printable(key), key, item) for key, item in value.items()]
            pending += [([*path, shown], item) for shown, _, item in named]
            texts = [([*path, shown], key) for shown, key, _ in named]
        elif isinstance(value, list):
            pending += [([*path, index], item) for index, item in enumerate(value)]
            texts = []
        else:
            texts = [(path, value)]
        for where, text in texts:
            problem = _text_problem(text)
            if problem is not None:
                problems.append(Problem(json_path(where), "invalid_text", problem))
    if not problems:
        try:
            json.dumps(document, ensure_ascii=False)
        except (TypeError, ValueError):
            message = "The document holds a value that is not JSON."
            return [Problem("$", "invalid_text", message)]
    return sorted(problems, key=lambda problem: problem.field or "")


def _printable(key: Any) -> Any:
    """A key as a path may show it: half a UTF-16 pair is written as its escape,
    since no answer or terminal could carry it."""
    if isinstance(key, str):
        return key.encode("utf-8", "backslashreplace").decode("utf-8")
    return key


def _text_problem(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "The text is not valid Unicode (it holds half of a UTF-16 pair)."
    if "\x00" in text:
        return "Text cannot hold the NUL character."
    return None


def json_path(parts: Iterable[str | int]) -> str:
    """Render ``["fields", 3, "name"]`` as ``fields[3].name``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "$"


def same_document(first: Any, second: Any) -> bool:
    """Whether two JSON values are the same metadata document (or part of one).

    Python's ``==`` takes ``true`` for ``1`` and ``false`` for ``0``, where a
    condition tells them apart (``{"===": [{"var": "done"}, 1]}`` never holds
    for a ticked box, ``cat`` writes ``true``): a document changed from one to
    the other is changed. A whole number with or without a point (``1``,
    ``1.0``) is one value, as conditions read it.
    """
    if isinstance(first, bool) or isinstance(second, bool):
        return first is second
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(
            same_document(value, second[key]) for key, value in first.items()
        )
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(
            same_document(one, other) for one, other in zip(first, second, strict=True)
        )
    if isinstance(first, dict | list) or isinstance(second, dict | list):
        return False
    return bool(first == second)


def check_name(name: Any, path: str, *, what: str) -> list[Problem]:
    """Return the problems with an entity or field API name."""
    if not isinstance(name, str):
        return []
    if not NAME_PATTERN.match(name):
        message = (
            f"{what} name {name!r} must start with a lowercase letter and hold only "
            "lowercase letters, digits and underscores."
        )
        return [Problem(path, "invalid_name", message)]
    if "__" in name or name.endswith("_"):
        message = (
            f"{what} name {name!r} may not hold a double underscore or end with one "
            "(the API uses '__' to separate a field from a filter operator)."
        )
        return [Problem(path, "invalid_name", message)]
    if name.startswith((SYSTEM_TABLE_PREFIX, "sqlite_", "pg_")):
        message = f"{what} names starting with {name.split('_')[0]}_ are reserved."
        return [Problem(path, "reserved_name", message)]
    if len(name) > MAX_NAME_LENGTH:
        message = (
            f"{what} name {quoted(name)} is longer than {MAX_NAME_LENGTH} characters."
        )
        return [Problem(path, "name_too_long", message)]
    if name in RESERVED_WORDS:
        message = f"{what} name {name!r} is an SQL reserved word; choose another."
        return [Problem(path, "reserved_name", message)]
    return []


#: The most characters of a value that a problem's message quotes.
QUOTED_LENGTH = 80


def quoted(value: Any) -> str:
    """``value`` as a message quotes it (its ``repr``), cut short when long: a
    refused name or list is named, not repeated back whole."""
    text = repr(value)
    return text if len(text) <= QUOTED_LENGTH else text[: QUOTED_LENGTH - 1] + "…"


def schema_message(error: ValidationError) -> str:
    """A JSON Schema error's message, with the value it quotes cut short (see
    :func:`quoted`): the validator repeats the whole value, a list of 100,000
    actions included."""
    text = repr(error.instance)
    if len(text) <= QUOTED_LENGTH or text not in error.message:
        return error.message
    return error.message.replace(text, quoted(error.instance))


def check_entity_document(
    document: Any, *, known_entities: Sequence[str] = ()
) -> list[Problem]:
    """Return every problem of an entity document, each with its JSON path.

    :param known_entities: names of the entities a lookup may target besides the
        document's own entity.
    """
    problems = [
        Problem(json_path(error.absolute_path), "schema", schema_message(error))
        for error in sorted(_validator().iter_errors(document), key=str)
    ]
    problems += text_problems(document)
    if not isinstance(document, dict):
        return problems
    name = document.get("name")
    problems += check_name(name, "name", what="Entity")
    if isinstance(name, str) and name in RESERVED_ENTITY_NAMES:
        message = f"Entity name {name!r} is used by the platform itself."
        problems.append(Problem("name", "reserved_name", message))
    fields = document.get("fields")
    if not isinstance(fields, list):
        return problems
    if len(fields) > MAX_FIELDS:
        message = (
            f"An entity holds at most {MAX_FIELDS} fields; this has {len(fields)}."
        )
        problems.append(Problem("fields", "too_many_fields", message))
    targets = {*known_entities, name}
    seen: dict[str, int] = {}
    for index, field in enumerate(fields):
        if not isinstance(field, dict):
            continue
        path = f"fields[{index}]"
        field_name = field.get("name")
        if isinstance(field_name, str):
            if field_name in seen:
                message = (
                    f"Field name {field_name!r} is already used by "
                    f"fields[{seen[field_name]}]."
                )
                problems.append(Problem(f"{path}.name", "duplicate_name", message))
            seen.setdefault(field_name, index)
        problems += _check_field(field, path, targets)
    display = document.get("display_field")
    if isinstance(display, str) and display not in seen:
        message = f"display_field {display!r} is not one of the entity's fields."
        problems.append(Problem("display_field", "unknown_field", message))
    return problems


def _check_field(field: dict[str, Any], path: str, targets: set[Any]) -> list[Problem]:
    problems = check_name(field.get("name"), f"{path}.name", what="Field")
    if isinstance(field.get("name"), str) and field["name"] in SYSTEM_COLUMNS:
        message = f"Field name {field['name']!r} is a system column."
        problems.append(Problem(f"{path}.name", "reserved_name", message))
    kind = field.get("type")
    if not isinstance(kind, str) or kind not in ALL_TYPES:
        # The schema names a type there is not; what such a field takes is not
        # known, so nothing more is said of it.
        return problems
    for option, types in OPTION_TYPES.items():
        if option in field and kind not in types:
            message = f"{a_or_an(kind).capitalize()} field takes no {option!r}."
            problems.append(Problem(f"{path}.{option}", "not_applicable", message))
    if field.get("unique") and kind not in UNIQUE_TYPES:
        message = f"{a_or_an(kind).capitalize()} field cannot be unique."
        problems.append(Problem(f"{path}.unique", "not_applicable", message))
    if (field.get("unique") or field.get("external_id")) and kind in TEXT_TYPES:
        limit = field.get("max_length", DEFAULT_MAX_LENGTH[kind])
        if isinstance(limit, int) and limit > MAX_INDEXED_LENGTH:
            message = (
                f"A unique text field holds at most {MAX_INDEXED_LENGTH} characters "
                f"(an index entry has a size limit); set max_length to "
                f"{MAX_INDEXED_LENGTH} or less."
            )
            problems.append(Problem(f"{path}.max_length", "too_long", message))
    if field.get("external_id") and kind not in EXTERNAL_ID_TYPES:
        message = "Only text, email and integer fields can be external ids."
        problems.append(Problem(f"{path}.external_id", "not_applicable", message))
    if (
        kind == "lookup"
        and field.get("required")
        and field.get("on_delete") == "set_null"
    ):
        # Deleting the record it points at would leave it blank.
        message = (
            "A required lookup cannot be cleared when its record is deleted; use "
            "on_delete 'restrict', or make the lookup optional."
        )
        problems.append(Problem(f"{path}.on_delete", "not_applicable", message))
    target = field.get("target")
    if kind == "lookup" and isinstance(target, str) and target not in targets:
        message = f"Lookup target {target!r} is not a known entity."
        problems.append(Problem(f"{path}.target", "unknown_entity", message))
    problems += _check_limits(field, path)
    if isinstance(field.get("options"), list):
        problems += _check_options(field["options"], f"{path}.options", kind)
    if "default" in field:
        problems += _check_default(field, path)
    return problems


def _check_limits(field: dict[str, Any], path: str) -> list[Problem]:
    problems = []
    low, high = field.get("min"), field.get("max")
    if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
        message = f"min ({low}) is greater than max ({high})."
        problems.append(Problem(f"{path}.min", "invalid_range", message))
    precision, scale = field.get("precision"), field.get("scale")
    if isinstance(precision, int) and isinstance(scale, int) and scale > precision:
        message = f"scale ({scale}) is greater than precision ({precision})."
        problems.append(Problem(f"{path}.scale", "invalid_range", message))
    return problems


def _check_options(options: list[Any], path: str, kind: str) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for index, option in enumerate(options):
        value = option.get("value") if isinstance(option, dict) else None
        if not isinstance(value, str):
            continue
        if value != value.strip() or (kind == "multi_picklist" and ";" in value):
            message = f"Picklist value {value!r} may not start or end with spaces" + (
                " nor hold ';', which separates choices in files."
                if kind == "multi_picklist"
                else "."
            )
            problems.append(Problem(f"{path}[{index}].value", "invalid_value", message))
            continue
        if value in seen:
            message = f"Picklist value {value!r} appears more than once."
            problems.append(
                Problem(f"{path}[{index}].value", "duplicate_value", message)
            )
        seen.add(value)
    return problems


def _check_default(field: dict[str, Any], path: str) -> list[Problem]:
    if field["type"] in ("lookup", "autonumber"):
        message = f"{a_or_an(field['type']).capitalize()} field takes no default."
        return [Problem(f"{path}.default", "not_applicable", message)]
    try:
        convert(field, field["default"])
    except FieldValueError as error:
        message = f"Default {field['default']!r} is not valid: {error.message}"
        return [Problem(f"{path}.default", "invalid_default", message)]
    except (TypeError, KeyError, AttributeError, ValueError):
        # The field's own options are malformed; the schema problems say so.
        return []
    return []

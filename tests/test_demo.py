from __future__ import annotations

import copy
import datetime
import json
import pathlib
from decimal import Decimal
from typing import Any

import pytest

from tailorcrm.platform.demo import populate

PACK_DIR = pathlib.Path(__file__).parents[1] / "sample_schemas" / "sales"

SCALE_ONE_COUNTS = {
    "product": 7,
    "account": 40,
    "contact": 80,
    "sales_lead": 30,
    "opportunity": 120,
    "activity": 150,
}

TEXT_TYPES = {"text", "textarea", "email", "phone", "url"}
NUMBER_TYPES = {"integer", "decimal", "currency", "percent"}


class Recorder:
    """Stands in for the record service: keeps every batch, hands out ids.

    Ids come from one counter shared by all entities, so a lookup that points
    at a record of the wrong entity does not find its id by chance.
    """

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[dict[str, Any]], list[int]]] = []
        self._next_id = 1

    def __call__(self, entity: str, rows: list[dict[str, Any]]) -> list[int]:
        ids = list(range(self._next_id, self._next_id + len(rows)))
        self._next_id += len(rows)
        self.batches.append((entity, copy.deepcopy(rows), ids))
        return ids

    def rows(self, entity: str) -> list[dict[str, Any]]:
        return [row for name, rows, _ in self.batches if name == entity for row in rows]


def load_pack() -> dict[str, dict[str, Any]]:
    documents = {}
    for path in sorted(PACK_DIR.glob("*.json")):
        if path.name != "pack.json":
            document = json.loads(path.read_text(encoding="utf-8"))
            documents[document["name"]] = document

    return documents


def fields_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in document["fields"]}


def run(*, seed: int = 2026, scale: int = 1) -> Recorder:
    recorder = Recorder()
    populate(recorder, seed=seed, scale=scale)
    return recorder


def filled_values(recorder: Recorder, entity: str, field: str) -> list[Any]:
    return [row[field] for row in recorder.rows(entity) if row.get(field) is not None]


def type_error(field: dict[str, Any], value: Any) -> str | None:
    kind = field["type"]
    if kind in TEXT_TYPES or kind == "picklist":
        ok = isinstance(value, str)
    elif kind in ("integer", "lookup"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in ("decimal", "currency", "percent"):
        ok = isinstance(value, Decimal)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "date":
        ok = type(value) is datetime.date
    elif kind == "datetime":
        ok = isinstance(value, datetime.datetime) and value.utcoffset() == (
            datetime.timedelta(0)
        )
    elif kind == "multi_picklist":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:
        ok = False

    return None if ok else f"{field['name']}: {value!r} is no {kind} value"


def test_the_same_seed_gives_identical_rows() -> None:
    first = run(seed=7)
    second = run(seed=7)

    assert first.batches == second.batches


def test_another_seed_gives_other_rows() -> None:
    first = run(seed=1)
    second = run(seed=2)

    assert first.rows("account") != second.rows("account")


def test_scale_one_makes_the_documented_counts() -> None:
    recorder = Recorder()

    counts = populate(recorder)

    assert counts == SCALE_ONE_COUNTS
    assert {e: len(recorder.rows(e)) for e in counts} == SCALE_ONE_COUNTS


def test_counts_grow_with_the_scale() -> None:
    counts = populate(Recorder(), scale=3)

    assert counts == {entity: 3 * n for entity, n in SCALE_ONE_COUNTS.items()}


def test_entities_are_created_in_dependency_order() -> None:
    recorder = run()

    order = list(dict.fromkeys(entity for entity, _, _ in recorder.batches))

    assert order == [
        "product",
        "account",
        "contact",
        "sales_lead",
        "opportunity",
        "activity",
    ]


def test_lookups_point_to_records_created_earlier_for_their_target() -> None:
    pack = load_pack()
    recorder = run(scale=2)
    known: dict[str, set[int]] = {entity: set() for entity in pack}
    problems = []

    for entity, rows, ids in recorder.batches:
        for field in fields_of(pack[entity]).values():
            if field["type"] != "lookup":
                continue

            for row in rows:
                value = row.get(field["name"])
                if value is not None and value not in known[field["target"]]:
                    problems.append(f"{entity}.{field['name']} = {value}")

        known[entity].update(ids)

    assert problems == []
    assert filled_values(recorder, "account", "parent_account") != []


def test_rows_name_only_fields_of_the_pack() -> None:
    pack = load_pack()
    recorder = run()

    unknown = {
        (entity, key)
        for entity, rows, _ in recorder.batches
        for row in rows
        for key in row
        if key not in fields_of(pack[entity])
    }

    assert unknown == set()


def test_rows_of_one_batch_share_their_keys() -> None:
    recorder = run()

    for _, rows, _ in recorder.batches:
        assert {frozenset(row) for row in rows} == {frozenset(rows[0])}


def test_autonumber_fields_are_never_set() -> None:
    pack = load_pack()
    recorder = run()

    for entity, document in pack.items():
        for field in document["fields"]:
            if field["type"] == "autonumber":
                assert all(field["name"] not in r for r in recorder.rows(entity))


def test_required_fields_are_always_filled() -> None:
    pack = load_pack()
    recorder = run()

    for entity, document in pack.items():
        for field in document["fields"]:
            if field.get("required") and field["type"] != "autonumber":
                rows = recorder.rows(entity)
                assert all(row.get(field["name"]) not in (None, "") for row in rows)


def test_values_have_the_python_type_of_their_field() -> None:
    pack = load_pack()
    recorder = run()
    problems = []

    for entity, document in pack.items():
        for name, field in fields_of(document).items():
            for value in filled_values(recorder, entity, name):
                problem = type_error(field, value)
                if problem is not None:
                    problems.append(f"{entity}.{problem}")

    assert problems == []


def test_picklist_values_are_options_of_their_field() -> None:
    pack = load_pack()
    recorder = run()

    for entity, document in pack.items():
        for name, field in fields_of(document).items():
            options = {option["value"] for option in field.get("options", [])}
            for value in filled_values(recorder, entity, name):
                if field["type"] == "picklist":
                    assert value in options
                elif field["type"] == "multi_picklist":
                    assert set(value) <= options
                    assert len(set(value)) == len(value)


def test_text_fits_the_max_length() -> None:
    pack = load_pack()
    recorder = run(scale=10)

    for entity, document in pack.items():
        for name, field in fields_of(document).items():
            if "max_length" in field:
                values = filled_values(recorder, entity, name)
                assert max(map(len, values), default=0) <= field["max_length"]


def test_numbers_fit_their_scale_precision_and_bounds() -> None:
    pack = load_pack()
    recorder = run(scale=10)

    for entity, document in pack.items():
        for name, field in fields_of(document).items():
            if field["type"] not in NUMBER_TYPES:
                continue

            for value in filled_values(recorder, entity, name):
                assert field.get("min", value) <= value <= field.get("max", value)
                if isinstance(value, Decimal):
                    exponent = value.as_tuple().exponent
                    assert isinstance(exponent, int)
                    assert -exponent <= field["scale"]
                    digits = len(value.as_tuple().digits) - max(-exponent, 0)
                    assert digits <= field["precision"] - field["scale"]


def test_unique_fields_hold_no_duplicates() -> None:
    pack = load_pack()
    recorder = run(scale=10)

    for entity, document in pack.items():
        for name, field in fields_of(document).items():
            if field.get("unique") or field.get("external_id"):
                values = filled_values(recorder, entity, name)
                assert len(values) == len(set(values)), f"{entity}.{name}"


def test_account_names_are_unique_even_at_a_large_scale() -> None:
    recorder = run(scale=40)

    names = [row["name"] for row in recorder.rows("account")]

    assert len(names) == len(set(names))


def test_pack_lookups_and_defaults_are_consistent() -> None:
    pack = load_pack()
    manifest = json.loads((PACK_DIR / "pack.json").read_text(encoding="utf-8"))

    for document in pack.values():
        fields = fields_of(document)
        assert document["display_field"] in fields
        for field in fields.values():
            if field["type"] == "lookup":
                assert field["target"] in pack
            if field["type"] == "picklist" and "default" in field:
                assert field["default"] in {o["value"] for o in field["options"]}

    assert manifest["name"] == "sales"
    assert set(pack) == set(SCALE_ONE_COUNTS)


def test_a_scale_below_one_is_refused() -> None:
    with pytest.raises(ValueError) as excinfo:
        populate(Recorder(), scale=0)

    assert "scale must be 1 or more" in str(excinfo.value)


def test_a_create_callback_that_loses_rows_is_refused() -> None:
    def create(entity: str, rows: list[dict[str, Any]]) -> list[int]:
        return list(range(1, len(rows)))

    with pytest.raises(ValueError) as excinfo:
        populate(create)

    assert "one id per row" in str(excinfo.value)

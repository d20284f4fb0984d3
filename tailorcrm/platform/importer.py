"""CSV import through the record service, in batches, all-or-nothing by default.

Columns are matched to fields by name or label (case-insensitively) unless mapped.
Each cell is parsed strictly for its field type; lookups are resolved by the target's
external ids, then its display field, then its record id. Self-references (an account
whose parent is another account of the same file) to earlier rows are set as a row is
created, those to later rows in a second pass, once every row of the file exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import sqlalchemy as sa

from ..errors import BadRequest, Forbidden, NotFound, Problem, TailorError
from ..metadata import INTEGER_LIMIT, Caller, Catalog, EntityDef, is_unique
from .access import load_caller
from .automation import row_problems
from .csvio import CellError, CsvFormatError, parse_cell, read_csv
from .metastore import hold_metadata
from .query import access_where
from .records import Actor, RecordService

BATCH_SIZE = 1000
_DIGITS = re.compile(r"^[0-9]{1,19}$")
ERRORS_KEPT = 10_000


def check_import(entity: EntityDef) -> None:
    """:raises Forbidden: the caller may not import records of ``entity``."""
    if not entity.allows("import"):
        raise Forbidden(f"You may not import {entity.label} records.")


@dataclass(frozen=True)
class RowError:
    row: int
    field: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@dataclass
class ImportReport:
    """What an import did, or would do for a dry run."""

    entity: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    failed_rows: int = 0
    errors: list[RowError] = dataclasses.field(default_factory=list)
    columns: dict[str, str] = dataclasses.field(default_factory=dict)
    ignored_columns: list[str] = dataclasses.field(default_factory=list)
    dry_run: bool = False
    committed: bool = False

    def as_dict(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["errors"] = [error.as_dict() for error in self.errors]
        return body


class ImportFailed(TailorError):
    """An all-or-nothing import met bad rows; nothing was imported."""

    status = 422
    code = "import_failed"
    title = "Import failed"

    def __init__(self, report: ImportReport) -> None:
        super().__init__(
            f"{report.failed_rows} of {counted(report.rows, 'row')} "
            f"{'is' if report.failed_rows == 1 else 'are'} bad; nothing was imported.",
            problems=[
                Problem(
                    f"row {e.row}" + (f".{e.field}" if e.field else ""),
                    e.code,
                    e.message,
                )
                for e in report.errors
            ],
        )
        self.report = report


def _not_writable(entity: EntityDef, field: str, computed: Collection[str]) -> Problem:
    """Why a mapping may not fill ``field``: no such field, one that rules
    compute, or an autonumber."""
    where = f"--map {field}"
    spec = entity.fields.get(field)
    if spec is None:
        message = f"{entity.label} has no field {field!r}."
        return Problem(where, "unknown_field", message)
    if field in computed:
        message = f"{spec['label']} is computed by a rule and cannot be imported."
        return Problem(where, "computed", message)
    message = f"{spec['label']} is numbered by the platform and cannot be imported."
    return Problem(where, "read_only", message)


def match_columns(
    entity: EntityDef,
    header: Sequence[str],
    mapping: Mapping[str, str | int],
    *,
    auto: bool = True,
    computed: Collection[str] = (),
) -> tuple[dict[str, int], list[str]]:
    """Return ``{field: column index}`` and the names of unused columns.

    :param mapping: the column of each field, by its name or by its index (a
        page that shows the columns picks them by index: a file may leave more
        than one column without a name).
    :param auto: match the fields ``mapping`` leaves out by name or label; without
        it only ``mapping`` counts (a person chose every column).
    :param computed: fields that rules compute; like autonumbers they are not
        written, so a column named after one (as an export writes it) is ignored.

    :raises BadRequest: a mapping names an unknown field or a missing column.
    """
    positions = {name.strip().lower(): index for index, name in enumerate(header)}
    writable = {
        name: spec
        for name, spec in entity.fields.items()
        if spec["type"] != "autonumber" and name not in computed
    }
    matched: dict[str, int] = {}
    problems = []
    for field, column in mapping.items():
        if field not in writable:
            problems.append(_not_writable(entity, field, computed))
        elif isinstance(column, int):
            if 0 <= column < len(header):
                matched[field] = column
            else:
                message = f"The file has no column {column + 1}."
                problems.append(Problem(f"--map {field}", "unknown_column", message))
        elif column.strip().lower() not in positions:
            message = f"The file has no column {column!r}."
            problems.append(Problem(f"--map {field}", "unknown_column", message))
        else:
            matched[field] = positions[column.strip().lower()]
    if problems:
        raise BadRequest("The column mapping is wrong.", problems=problems)
    used = set(matched.values())
    # Every field's name first, then labels: a column called like a field's name
    # belongs to that field even when another field carries it as its label.
    for by_label in (False, True) if auto else ():
        for name, spec in writable.items():
            candidate = spec.get("label", "") if by_label else name
            index = positions.get(candidate.strip().lower())
            if name not in matched and index is not None and index not in used:
                matched[name] = index
                used.add(index)
    ignored = [column for index, column in enumerate(header) if index not in used]
    return matched, ignored


class _LookupResolver:
    """Finds target record ids for the texts of a lookup column.

    A text may name a record by an external id, by its record id (what an export
    writes) or by its display field. When these point at different records the
    cell is ambiguous and reported, never guessed.

    :param rows: the row of the file that created each record (record id -> row),
        for a lookup to the importing entity: a refused import or a check keeps
        none of them, so the report names such a record by its row.
    """

    def __init__(
        self,
        connection: sa.Connection,
        target: EntityDef,
        rows: Mapping[int, int] | None = None,
    ) -> None:
        self.connection = connection
        self.target = target
        self.rows = {} if rows is None else rows
        table = target.table
        self.columns = [table.c[name] for name in target.external_ids()]
        display = target.display_field
        if display is not None and display in target.fields:
            column = table.c[display]
            if not any(column is known for known in self.columns):
                self.columns.append(column)

    def resolve(self, texts: set[str]) -> dict[str, int | str]:
        """Map each text to an id, or to an error message when it cannot be."""
        candidates: dict[str, set[int]] = {text: set() for text in texts}
        for column in self.columns:
            for text, record_id in self._matches(column, texts):
                candidates[text].add(record_id)
        for record_id in self._existing_ids(texts):
            candidates[str(record_id)].add(record_id)
        found: dict[str, int | str] = {}
        label = self.target.label
        for text, ids in candidates.items():
            if len(ids) == 1:
                found[text] = next(iter(ids))
            elif ids:
                found[text] = (
                    f"{text!r} names {len(ids)} {label} records ({self._named(ids)}) "
                    "by id, external id or name; use a value that names one."
                )
            else:
                found[text] = f"There is no {label} {text!r}."
        return found

    def _named(self, ids: set[int]) -> str:
        """``ids`` as a report names them: stored records by id, records that
        rows of this file created by their rows."""
        stored = sorted(i for i in ids if i not in self.rows)
        rows = sorted(self.rows[i] for i in ids if i in self.rows)
        parts = []
        if stored:
            listed = ", ".join(str(i) for i in stored)
            parts.append(f"id {listed}" if len(stored) == 1 else f"ids {listed}")
        if rows:
            listed = ", ".join(str(row) for row in rows)
            word = "row" if len(rows) == 1 else "rows"
            parts.append(f"{word} {listed} of this file")
        return " and ".join(parts)

    def _matches(
        self, column: sa.Column[Any], texts: set[str]
    ) -> list[tuple[str, int]]:
        table = self.target.table
        rows = self.connection.execute(
            sa.select(sa.cast(column, sa.Text), table.c.id).where(
                sa.cast(column, sa.Text).in_(list(texts)), *access_where(self.target)
            )
        ).all()
        return [(text, int(record_id)) for text, record_id in rows]

    def _existing_ids(self, texts: set[str]) -> list[int]:
        numeric = [
            int(text)
            for text in texts
            if _DIGITS.match(text)
            and int(text) <= INTEGER_LIMIT
            and str(int(text)) == text
        ]
        if not numeric:
            return []
        table = self.target.table
        return [
            int(record_id)
            for record_id in self.connection.execute(
                sa.select(table.c.id).where(
                    table.c.id.in_(numeric), *access_where(self.target)
                )
            ).scalars()
        ]


class Importer:
    """Runs one import on an open transaction (the caller commits or rolls back)."""

    def __init__(
        self,
        connection: sa.Connection,
        catalog: Catalog,
        actor: Actor,
        entity_name: str,
        *,
        bypass_automation: bool = False,
    ) -> None:
        self.connection = connection
        self.entity = catalog.entity(entity_name)
        check_import(self.entity)
        self.computed = frozenset(catalog.rules.for_entity(entity_name).computed)
        self.service = RecordService(
            connection,
            catalog,
            actor,
            bypass_automation=bypass_automation,
            via="import",
        )
        # Rows are created and changed within the import scope as well.
        self.service.also = "import"
        # A target the caller may not read is in the caller's view, marked
        # removed: nothing of it resolves, as if it held no record.
        #: The row of this file that created each record: record id -> row.
        self.created_rows: dict[int, int] = {}
        self.resolvers = {
            spec["name"]: _LookupResolver(
                connection,
                catalog.entities[spec["target"]],
                self.created_rows if spec["target"] == self.entity.name else None,
            )
            for spec in self.entity.lookups()
        }
        # (row number, record id, self-lookup texts, created by this import)
        self.deferred: list[tuple[int, int, dict[str, str], bool]] = []
        #: For each row of :attr:`deferred`, its record as stored before the row
        #: (none for a row that created it): setting its references belongs to
        #: the row's save, so readonly_if is judged on that record, as for a
        #: PATCH that gives them with the row's other values.
        self.began: dict[int, Mapping[str, Any] | None] = {}
        self.width = 0
        self.keys_seen: dict[Any, int] = {}
        #: The row of this file that saved each unique value: (field, value) -> row.
        self.unique_rows: dict[tuple[str, Any], int] = {}
        self._unique_fields = tuple(
            name for name, spec in self.entity.fields.items() if is_unique(spec)
        )
        self._self_lookups = tuple(
            spec["name"]
            for spec in self.entity.lookups()
            if spec["target"] == self.entity.name
        )
        self.cells: list[tuple[str, int, str, Any, bool]] | None = None
        self.key: str | None = None
        #: Rows that failed after they were saved, with their problems.
        self.undone: dict[int, list[Problem]] = {}
        #: Rows left out when the import is made again, with their problems.
        self.excluded: dict[int, list[Problem]] = {}
        #: The texts that name each record an upsert changes, as it was stored.
        self.stored_names: dict[int, set[str]] = {}
        #: The (self-lookup field, text) pairs that name a row of this file that
        #: was not imported, with that row's number.
        self.failed_names: dict[tuple[str, str], int] = {}
        #: Reading stopped at a row that is not CSV; the rows after it are unread.
        self.unreadable = False

    def run(
        self,
        stream: BinaryIO,
        *,
        mapping: Mapping[str, str | int] | None = None,
        key: str | None = None,
        skip_bad_rows: bool = False,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
        auto_match: bool = True,
    ) -> ImportReport:
        if key is not None:
            self._check_key(key)
        self.key = key
        start = stream.tell()
        # With skip_bad_rows, a row that fails once every row is saved (its
        # reference to another row is refused) was saved with all that followed
        # from it, automations included: the import is made again without it.
        while True:
            attempt = self.connection.begin_nested()
            report = self._attempt(
                stream,
                mapping=mapping or {},
                auto_match=auto_match,
                batch_size=batch_size or BATCH_SIZE,
                progress=progress,
            )
            if not (skip_bad_rows and self.undone):
                break
            attempt.rollback()
            self.excluded.update(self.undone)
            stream.seek(start)
            progress = None
            self.deferred, self.keys_seen, self.undone = [], {}, {}
            self.began = {}
            self.unique_rows = {}
            self.created_rows.clear()
        report.errors.sort(key=lambda error: error.row)
        # Skipping bad rows cannot skip the rest of a file that could not be read
        # to its end: nothing is imported rather than only the rows before it.
        if report.errors and (not skip_bad_rows or self.unreadable):
            attempt.rollback()
            raise ImportFailed(report)
        attempt.commit()
        return report

    def _attempt(
        self,
        stream: BinaryIO,
        *,
        mapping: Mapping[str, str | int],
        auto_match: bool,
        batch_size: int,
        progress: Callable[[int], None] | None,
    ) -> ImportReport:
        """Read and save every row of the file, but the excluded ones."""
        report = ImportReport(self.entity.name)
        key = self.key
        try:
            reader = read_csv(stream)
        except CsvFormatError as error:
            raise BadRequest(str(error)) from None
        columns, report.ignored_columns = match_columns(
            self.entity,
            reader.header,
            mapping,
            auto=auto_match,
            computed=self.computed,
        )
        if not columns:
            # Every row would be saved with defaults alone: a file meant for
            # another entity, or one read with the wrong delimiter, would add
            # blank records rather than be refused.
            raise BadRequest(
                f"No column of the file matches a field of {self.entity.label}; "
                "name the columns after its fields or their labels, or map them "
                "with --map FIELD=COLUMN. Nothing was imported."
            )
        if key is not None and key in self.computed:
            # Its column is left out with the other computed fields: naming it
            # missing would send the person looking for a column that is there.
            raise BadRequest(
                f"--key {key}: a rule computes {key!r}, so the file cannot give "
                "it; choose an external-id field that the file fills."
            )
        if key is not None and key not in columns:
            raise BadRequest(f"--key {key}: the file has no column for {key!r}.")
        access = self.entity.access
        locked = sorted(
            name
            for name in columns
            if access is not None and access.level(name) != "editable"
        )
        if locked:
            raise Forbidden(
                "You may not write some of the mapped fields; nothing was imported.",
                problems=[
                    Problem(name, "forbidden_field", "You may not write this field.")
                    for name in locked
                ],
            )
        report.columns = {field: reader.header[i] for field, i in columns.items()}
        self.width = len(reader.header)
        batch: list[tuple[int, list[str]]] = []
        try:
            for row_number, values in reader:
                batch.append((row_number, values))
                if len(batch) >= batch_size:
                    self._batch(batch, columns, key, report)
                    if progress:
                        progress(len(batch))
                    batch = []
        except CsvFormatError as error:
            report.errors.append(
                RowError(error.row or 0, None, "unreadable_file", _of_the_row(error))
            )
            # The row was reached, so it counts among the rows read: a report
            # never has more bad rows than rows.
            report.rows += 1
            report.failed_rows += 1
            self.unreadable = True
        if batch:
            self._batch(batch, columns, key, report)
            if progress:
                progress(len(batch))
        self._resolve_deferred(report)
        return report

    def _check_key(self, key: str) -> None:
        spec = self.entity.fields.get(key)
        if spec is None or not spec.get("external_id"):
            raise BadRequest(
                f"--key {key}: upserts need an external-id field of "
                f"{self.entity.label}."
            )

    def _batch(
        self,
        batch: list[tuple[int, list[str]]],
        columns: dict[str, int],
        key: str | None,
        report: ImportReport,
    ) -> None:
        report.rows += len(batch)
        parsed = [self._parse_row(number, values, columns) for number, values in batch]
        self._resolve_lookups(parsed)
        creates: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        failing: list[tuple[int, dict[str, Any], list[Problem]]] = []
        # The stored record each failing row would have updated, by row number.
        updating: dict[int, int] = {}
        # The references to rows of this file each failing row gives, by number.
        referring: dict[int, set[str]] = {}
        existing = self._existing_keys(key, parsed)
        if key is not None:
            self._keep_stored_choices(batch, columns, key, parsed, existing)
        # An updated row is saved with its references to stored records, so that
        # rules judge it with them, as a new row is (see _create_in_order).
        found = self._resolve_texts(
            [
                (number, data, deferred)
                for number, data, _, deferred in parsed
                if key is not None and data.get(key) in existing
            ]
        )
        # The self-reference texts resolved since new rows were last stored.
        fresh = {
            (field, text)
            for field, results in found.items()
            for text, result in results.items()
            if not isinstance(result, int)
        }
        for number, data, problems, deferred in parsed:
            # A row with other problems still names its record: its key counts
            # too, so a key given twice is told whichever of its rows is bad.
            if key is not None and _key_was_read(key, problems):
                problems += self._repeated_key(key, data.get(key), number)
            if number in self.excluded:
                self._failed_row(number, data)
                self._fail(report, number, self.excluded[number])
                continue
            if problems:
                if creates:
                    # A bad row is judged on what the rows above it left, as
                    # for a good one: those are stored first.
                    self._create_in_order(report, creates)
                    creates = []
                    fresh = set()
                failing.append((number, data, problems))
                referring[number] = set(deferred)
                if key is not None and data.get(key) in existing:
                    updating[number] = existing[data[key]]
                continue
            if failing:
                # ... and never on what the rows below it leave.
                self._report_failing(report, failing, updating, referring)
                failing = []
            if key is not None and data.get(key) in existing:
                if creates:
                    # Rows are saved in the order of the file: the new rows above
                    # an update are stored first, as saves one by one would be.
                    self._create_in_order(report, creates)
                    creates = []
                    fresh = set()
                # New rows above may be the rows this one names: its texts that
                # named no stored record before are resolved again.
                self._resolve_again(found, deferred, fresh)
                data.update(
                    (field, found[field][text])
                    for field, text in deferred.items()
                    if isinstance(found[field][text], int)
                )
                self._update(report, number, existing[data[key]], data, deferred)
            else:
                creates.append((number, data, deferred))
        if failing:
            self._report_failing(report, failing, updating, referring)
        if creates:
            self._create_in_order(report, creates)

    def _keep_stored_choices(
        self,
        batch: list[tuple[int, list[str]]],
        columns: dict[str, int],
        key: str,
        parsed: list[tuple[int, dict[str, Any], list[Problem], dict[str, str]]],
        existing: Mapping[Any, int],
    ) -> None:
        """Read again a choice cell refused as not offered, in a row that updates
        a stored record: when it names the choice the record holds (one taken
        out of the field since), it is kept, as the edit form and a PATCH of
        the record as read keep it, so that an export imports back unchanged.
        """
        cells = dict(batch)
        table = self.entity.table
        for number, data, problems, _ in parsed:
            record_id = existing.get(data.get(key))
            refused = [p for p in problems if p.code == "invalid_choice"]
            if record_id is None or not refused:
                continue
            stored = (
                self.connection.execute(sa.select(table).where(table.c.id == record_id))
                .mappings()
                .one()
            )
            for problem in refused:
                field = str(problem.field)
                spec = self.entity.fields[field]
                held = stored[field]
                chosen = held if isinstance(held, list) else [held]
                options = [
                    *spec.get("options", ()),
                    *({"value": item} for item in chosen if isinstance(item, str)),
                ]
                try:
                    value = parse_cell(
                        spec["type"], cells[number][columns[field]], options=options
                    )
                except CellError:
                    continue
                if isinstance(value, list) and isinstance(held, list):
                    same = sorted(value) == sorted(held)
                else:
                    same = value == held
                if same:
                    problems.remove(problem)
                    data[field] = held

    def _create_in_order(
        self,
        report: ImportReport,
        creates: list[tuple[int, dict[str, Any], dict[str, str]]],
    ) -> None:
        """Create rows in file order, each with the self-references it can have.

        Rules judge a new record with its references (a parent that required_if
        asks for), so a reference to a stored record or to an earlier row is set
        on the create: the rows before it are stored first. A reference to a
        later row is set once every row exists. Every text stays deferred as
        well and is resolved again then, so one that a later row also matches is
        still reported.
        """
        found = self._resolve_texts(creates)
        pending: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        # The (lookup field, text) pairs that name a pending row.
        named: set[tuple[str, str]] = set()
        for item in creates:
            _, data, deferred = item
            unresolved = {
                (field, text)
                for field, text in deferred.items()
                if not isinstance(found[field][text], int)
            }
            if unresolved & named:
                self._create(report, pending)
                # Only the texts that name a row just stored resolve anew: one
                # query per flush, not one over the rest of the batch.
                for field in found:
                    texts = {text for name, text in named if name == field}
                    if texts:
                        found[field].update(self.resolvers[field].resolve(texts))
                pending, named = [], set()
            data.update(
                (field, found[field][text])
                for field, text in deferred.items()
                if isinstance(found[field][text], int)
            )
            pending.append(item)
            named |= self._names(data, found)
        self._create(report, pending)

    def _resolve_again(
        self,
        found: dict[str, dict[str, int | str]],
        deferred: Mapping[str, str],
        fresh: set[tuple[str, str]],
    ) -> None:
        """Resolve anew the texts of ``deferred`` that ``found`` holds no record
        for, unless they are in ``fresh`` (resolved since new rows were last
        stored), and add them to it."""
        for field, text in deferred.items():
            if isinstance(found[field][text], int) or (field, text) in fresh:
                continue
            found[field].update(self.resolvers[field].resolve({text}))
            fresh.add((field, text))

    def _resolve_texts(
        self, creates: list[tuple[int, dict[str, Any], dict[str, str]]]
    ) -> dict[str, dict[str, int | str]]:
        """Resolve the self-reference texts of ``creates`` against stored records."""
        return {
            field: self.resolvers[field].resolve(
                {deferred[field] for _, _, deferred in creates if field in deferred}
            )
            for field in {name for _, _, deferred in creates for name in deferred}
        }

    def _names(
        self, data: dict[str, Any], fields: Collection[str]
    ) -> set[tuple[str, str]]:
        """The texts by which lookups ``fields`` name the record of ``data``, by an
        external id or display field."""
        return {
            (field, str(data[column.name]))
            for field in fields
            for column in self.resolvers[field].columns
            if data.get(column.name) is not None
        }

    def _create(
        self,
        report: ImportReport,
        creates: list[tuple[int, dict[str, Any], dict[str, str]]],
    ) -> None:
        ids, bad = self.service.create_many(
            self.entity.name, [data for _, data, _ in creates], skip_bad_rows=True
        )
        rows = [(number, data) for number, data, _ in creates]
        for index, (number, data, deferred) in enumerate(creates):
            if index in bad:
                self._failed_row(number, data)
                self._fail(
                    report, number, self._in_file(number, bad[index], data, rows)
                )
                continue
            self._saved(number, data)
            report.created += 1
            record_id = ids[index]
            if record_id is not None:
                self.created_rows[record_id] = number
            if deferred and record_id is not None:
                self.deferred.append((number, record_id, deferred, True))
                self.began[number] = None

    def _failed_row(self, number: int, data: dict[str, Any]) -> None:
        """Note the texts by which later rows may name a row that failed."""
        if self._self_lookups:
            for pair in self._names(data, self._self_lookups):
                self.failed_names.setdefault(pair, number)

    def _not_imported(self, field: str, row: int) -> Problem:
        message = f"It refers to row {row} of this file, which was not imported."
        return Problem(field, "not_imported", message)

    def _saved(self, number: int, data: Mapping[str, Any]) -> None:
        """Note the unique values a row of this file saved."""
        for name in self._unique_fields:
            value = data.get(name)
            if value is not None:
                self.unique_rows.setdefault((name, value), number)

    def _in_file(
        self,
        number: int,
        problems: list[Problem],
        data: Mapping[str, Any],
        rows: Sequence[tuple[int, Mapping[str, Any]]] = (),
    ) -> list[Problem]:
        """A unique value that an earlier row of this file gives, named by that row.

        The record service names the record that holds the value ("record 12"),
        or says that the value appears twice among the records saved together.
        A record an earlier row saved exists only within this import (a check,
        or an import that is refused, keeps none), so that row is named instead,
        as is the earlier row that gives the value twice.

        :param rows: the rows saved together with this one, in file order.
        """
        found: list[Problem] = []
        seen: set[str] = set()
        for problem in problems:
            name = problem.field or ""
            spec = self.entity.fields.get(name)
            value = data.get(name)
            if problem.code != "unique" or spec is None or value is None:
                found.append(problem)
                continue
            row = self.unique_rows.get((name, value))
            if row is None and name in seen:
                # A second problem of the field: the first said which stored
                # record holds the value, this one that an earlier row gives it.
                row = next((r for r, other in rows if other.get(name) == value), None)
            elif row is None:
                given = [r for r, other in rows if other.get(name) == value]
                twice = sum(p.field == name and p.code == "unique" for p in problems)
                row = given[0] if given and given[0] < number and twice == 1 else None
            seen.add(name)
            if row is None or row >= number:
                found.append(problem)
                continue
            clash = self._given_in_row(name, value, row)
            if all(other.message != clash.message for other in found):
                found.append(clash)
        return found

    def _given_in_row(self, name: str, value: Any, row: int) -> Problem:
        """The problem of a unique value that an earlier row of this file gives."""
        label = self.entity.fields[name]["label"]
        message = f"{label} {value!r} already appears in row {row} of this file."
        return Problem(name, "unique", message)

    def _repeated_key(self, key: str, value: Any, number: int) -> list[Problem]:
        """With ``--key`` each row names its record once, and only once."""
        label = self.entity.fields[key]["label"]
        if value is None:
            message = f"The row has no {label}, which finds the record it updates."
            return [Problem(key, "missing_key", message)]
        first = self.keys_seen.setdefault(value, number)
        if first == number:
            return []
        message = f"{label} {value!r} already appears in row {first} of this file."
        return [Problem(key, "duplicate_key", message)]

    def _report_failing(
        self,
        report: ImportReport,
        failing: list[tuple[int, dict[str, Any], list[Problem]]],
        updating: Mapping[int, int],
        referring: Mapping[int, Collection[str]],
    ) -> None:
        """Report bad rows with every problem, not only the cells that failed first.

        The cells that could be read still go through the record service's checks,
        so one attempt shows all that is wrong with a row: as a new record, or as
        the update of the stored record its key finds (``updating``: row number
        to record id), which keeps the fields the row leaves out. A reference
        to a row of this file (``referring``: row number to fields) is not set
        before the rows are saved, so it counts as given and the rules that
        read it are left out, as for a cell that could not be read.

        The rows above them are stored and the rows below them are not, so a
        unique value that a good row above gives is named by that row.
        """
        # A row that could not be split into cells has nothing more to check.
        readable = [item for item in failing if all(p.field for p in item[2])]
        new = [item for item in readable if item[0] not in updating]
        # The rules that read a cell that could not be read are left out; the
        # others judge the row, so that it gets every problem at once.
        _, more = self.service.check_new(
            self.entity.name,
            [data for _, data, _ in new],
            unread=[
                {str(p.field) for p in problems} | set(referring.get(number, ()))
                for number, _, problems in new
            ],
        )
        extra = {number: found for (number, _, _), found in zip(new, more, strict=True)}
        for number, data, problems in readable:
            if number in updating:
                unread = {str(p.field) for p in problems}
                unread |= set(referring.get(number, ()))
                extra[number] = self._update_problems(updating[number], data, unread)
        rows = [(number, data) for number, data, _ in readable]
        for number, data, problems in failing:
            self._failed_row(number, data)
            # The key field is allowed to match a stored record it updates: that
            # is an upsert. A new row's key that a record holds is a clash.
            reported = {problem.field for problem in problems}
            if self.key is not None and number in updating:
                reported.add(self.key)
            found = [p for p in extra.get(number, []) if p.field not in reported]
            found = self._in_file(number, found, data, rows)
            self._fail(report, number, problems + found)

    def _update_problems(
        self, record_id: int, data: dict[str, Any], unread: set[str]
    ) -> list[Problem]:
        """The problems of ``data`` as an update of a stored record, whose
        ``unread`` cells could not be read (the rules that read them are left
        out rather than judge their stored values).

        The update is checked and not written, so no automation runs on it.
        """
        savepoint = self.connection.begin_nested()
        try:
            self.service.update(self.entity.name, record_id, data, unread=unread)
        except TailorError as error:
            return row_problems(error)
        finally:
            savepoint.rollback()
        return []

    def _parse_row(
        self, number: int, values: list[str], columns: dict[str, int]
    ) -> tuple[int, dict[str, Any], list[Problem], dict[str, str]]:
        if len(values) < self.width:
            message = (
                f"This row has {counted(len(values), 'value')} but the header has "
                f"{counted(self.width, 'column')}."
            )
            return number, {}, [Problem(None, "short_row", message)], {}
        if any(value.strip() for value in values[self.width :]):
            message = (
                f"This row has {counted(len(values), 'value')} but the header has "
                f"{counted(self.width, 'column')}; quote values that hold the "
                "delimiter."
            )
            return number, {}, [Problem(None, "long_row", message)], {}
        data: dict[str, Any] = {}
        problems: list[Problem] = []
        deferred: dict[str, str] = {}
        for field, index, kind, options, later in self._cells(columns):
            try:
                value = parse_cell(kind, values[index], options=options)
            except CellError as error:
                problems.append(Problem(field, error.code, error.message))
                continue
            if value is None:
                # A blank cell gives no value: a new record takes the field's
                # default, an updated record keeps what it has.
                continue
            if later:
                deferred[field] = str(value)
                continue
            data[field] = value
        return number, data, problems, deferred

    def _cells(self, columns: dict[str, int]) -> list[tuple[str, int, str, Any, bool]]:
        """Return, once per import, how to read each mapped column."""
        if self.cells is None:
            self.cells = [
                (
                    field,
                    index,
                    spec["type"],
                    spec.get("options"),
                    spec["type"] == "lookup" and spec["target"] == self.entity.name,
                )
                for field, index in columns.items()
                for spec in [self.entity.fields[field]]
            ]
        return self.cells

    def _resolve_lookups(
        self, parsed: list[tuple[int, dict[str, Any], list[Problem], dict[str, str]]]
    ) -> None:
        for field, resolver in self.resolvers.items():
            texts = {
                data[field]
                for _, data, _, _ in parsed
                if isinstance(data.get(field), str)
            }
            if not texts:
                continue
            found = resolver.resolve(texts)
            for _, data, problems, _ in parsed:
                text = data.get(field)
                if not isinstance(text, str):
                    continue
                result = found[text]
                if isinstance(result, int):
                    data[field] = result
                else:
                    del data[field]
                    problems.append(Problem(field, "not_found", result))

    def _existing_keys(
        self,
        key: str | None,
        parsed: list[tuple[int, dict[str, Any], list[Problem], dict[str, str]]],
    ) -> dict[Any, int]:
        if key is None:
            return {}
        wanted = [data[key] for _, data, _, _ in parsed if data.get(key) is not None]
        if not wanted:
            return {}
        table = self.entity.table
        names = {
            column.name: column
            for field, resolver in self.resolvers.items()
            if self.entity.fields[field]["target"] == self.entity.name
            for column in resolver.columns
        }
        rows = self.connection.execute(
            sa.select(table.c[key], table.c.id, *names.values()).where(
                table.c[key].in_(wanted), *access_where(self.entity)
            )
        ).all()
        existing: dict[Any, int] = {}
        for value, record_id, *stored in rows:
            existing[value] = int(record_id)
            self.stored_names[int(record_id)] = {
                str(text) for text in [record_id, *stored] if text is not None
            }
        return existing

    def _update(
        self,
        report: ImportReport,
        number: int,
        record_id: int,
        data: dict[str, Any],
        deferred: dict[str, str],
    ) -> None:
        before = None
        if deferred:
            # Read under the lock the update takes anyway, so that no other save
            # changes it between the two.
            table = self.entity.table
            query = sa.select(table).where(table.c.id == record_id).with_for_update()
            before = self.connection.execute(query).mappings().first()
        try:
            with self.connection.begin_nested():
                self.service.update(self.entity.name, record_id, data)
        except TailorError as error:
            self._fail(report, number, self._in_file(number, row_problems(error), data))
            return
        self._saved(number, data)
        report.updated += 1
        if deferred:
            self.deferred.append((number, record_id, deferred, False))
            self.began[number] = None if before is None else dict(before)

    def _resolve_deferred(self, report: ImportReport) -> None:
        """Set self-references once every row of the file exists.

        A row whose reference cannot be resolved fails; so does a row that refers to
        a failed row. Failed rows created by this import are taken out again, so a
        skipped row is never half imported.
        """
        targets: dict[int, dict[str, int]] = {}
        errors: dict[int, list[Problem]] = {}
        for field in {name for _, _, fields, _ in self.deferred for name in fields}:
            texts = {
                fields[field] for _, _, fields, _ in self.deferred if field in fields
            }
            found = self.resolvers[field].resolve(texts)
            for number, _, fields, _ in self.deferred:
                if field not in fields:
                    continue
                text = fields[field]
                result = found[text]
                if isinstance(result, int):
                    targets.setdefault(number, {})[field] = result
                    continue
                row = self.failed_names.get((field, text))
                errors.setdefault(number, []).append(
                    Problem(field, "not_found", result)
                    if row is None
                    else self._not_imported(field, row)
                )
        self._spread_failures(targets, errors)
        # A row whose update fails (a rule refuses it) fails the rows that refer
        # to it as well: the updates are undone and made again without them.
        while True:
            phase = self.connection.begin_nested()
            failed = self._set_references(targets, errors)
            if failed is None:
                phase.commit()
                break
            phase.rollback()
            number, problems = failed
            errors[number] = problems
            self._spread_failures(targets, errors)
        for number, _, _, created in self.deferred:
            if number in errors:
                self._fail(report, number, errors[number])
                self.undone[number] = errors[number]
                if created:
                    report.created -= 1
                else:
                    report.updated -= 1

    def _set_references(
        self, targets: dict[int, dict[str, int]], errors: dict[int, list[Problem]]
    ) -> tuple[int, list[Problem]] | None:
        """Set the references of every row not failed yet; stop at the first row
        whose update is refused and give its number and problems."""
        under_way = self.service.saves_under_way
        for number, record_id, _, _ in self.deferred:
            if number in errors:
                continue
            key = (self.entity.name, record_id)
            under_way[key] = self.began[number]
            try:
                self.service.update(self.entity.name, record_id, targets[number])
            except TailorError as error:
                return number, row_problems(error)
            finally:
                del under_way[key]
        return None

    def _spread_failures(
        self, targets: dict[int, dict[str, int]], errors: dict[int, list[Problem]]
    ) -> None:
        """Fail every row that refers to a record of a failed new row, or to a
        record of a failed update by a value only that update gives it."""
        rows = {
            number: (rid, fields, new) for number, rid, fields, new in self.deferred
        }
        while True:
            # Left out, a new row leaves no record and an updated one keeps its
            # stored values: only those still name it.
            kept = {
                rid: (number, set() if new else self.stored_names.get(rid, set()))
                for number, (rid, _, new) in rows.items()
                if number in errors
            }
            spread = {
                number: (field, kept[target][0])
                for number, fields in targets.items()
                if number not in errors
                for field, target in fields.items()
                if target in kept and rows[number][1][field] not in kept[target][1]
            }
            if not spread:
                return
            for number, (field, failed) in spread.items():
                errors[number] = [self._not_imported(field, failed)]

    def _fail(self, report: ImportReport, number: int, problems: list[Problem]) -> None:
        report.failed_rows += 1
        _note(report, number, problems)


def _key_was_read(key: str, problems: Sequence[Problem]) -> bool:
    """Whether a row was split into cells and its key cell read (blank or not):
    otherwise the problem already told stands for the key's."""
    return all(problem.field not in (None, key) for problem in problems)


def _note(report: ImportReport, number: int, problems: Sequence[Problem]) -> None:
    """Keep the problems of row ``number``, up to the report's limit."""
    for problem in problems:
        if len(report.errors) < ERRORS_KEPT:
            report.errors.append(
                RowError(number, problem.field, problem.code, problem.message)
            )


def _of_the_row(error: CsvFormatError) -> str:
    """What the reader says of a row it could not read, as a row's problem: the
    report names the row before it ("row 3: This row ...", not "row 3: Row 3 ...")."""
    text = str(error)
    named = f"Row {error.row} "
    if error.row and text.startswith(named):
        return "This row " + text.removeprefix(named)
    return text


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def import_csv(
    platform: Any,
    entity_name: str,
    stream: BinaryIO,
    *,
    actor: Actor,
    mapping: Mapping[str, str | int] | None = None,
    key: str | None = None,
    dry_run: bool = False,
    skip_bad_rows: bool = False,
    bypass_automation: bool = False,
    progress: Callable[[int], None] | None = None,
    auto_match: bool = True,
    caller: Caller | None = None,
) -> ImportReport:
    """Import a CSV file into ``entity_name`` in one transaction.

    Without ``skip_bad_rows`` any bad row makes the whole import change nothing; the
    report (in :class:`ImportFailed`) lists every bad row, rule failures included.
    A dry run reports what would happen and changes nothing. With
    ``bypass_automation`` (administrators only) no automation runs; defaults,
    formulas, validation rules and roll-ups still do.

    :raises ImportFailed: bad rows in an all-or-nothing import.
    :raises BadRequest: the file cannot be read or the mapping is wrong.
    :param caller: whose roles the import runs under (a web page's user); the
        command line runs with full rights.
    :raises Forbidden: ``bypass_automation`` for an actor who is not an admin,
        or the caller may not import into the entity.
    """
    with platform.engine.connect() as connection:
        transaction = connection.begin()
        try:
            hold_metadata(connection)
            catalog = platform.catalogs.get(connection)
            if caller is not None:
                catalog = platform.views.get(catalog, caller)
            if entity_name not in catalog.entities:
                raise NotFound(f"There is no entity named {entity_name!r}.")
            importer = Importer(
                connection,
                catalog,
                actor,
                entity_name,
                bypass_automation=bypass_automation,
            )
            if caller is None and actor.user_id is not None:
                # The command line imports with full rights, and the rules still
                # read the user's roles as on every other path ($user.roles).
                importer.service.user = load_caller(
                    connection, actor.user_id, actor.username, actor.is_admin
                ).condition_data()
            report = importer.run(
                stream,
                mapping=mapping,
                key=key,
                skip_bad_rows=skip_bad_rows,
                progress=progress,
                auto_match=auto_match,
            )
            report.dry_run = dry_run
        except ImportFailed as error:
            error.report.dry_run = dry_run
            transaction.rollback()
            raise
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
            report.committed = True
        return report

"""The CSV import page: upload, map columns to fields, check, import.

The web layer reads the file and runs the importer; these models say what each
step shows. Field names in the importer's row errors become the fields' labels.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..metadata import EntityDef
from ._pages import SYSTEM_LABELS

#: Row errors an import page lists; the rest are counted.
ERRORS_SHOWN = 500


@dataclass(frozen=True)
class ImportColumn:
    """One column of the uploaded file and the field it goes to (``""``: none)."""

    index: int
    name: str
    samples: tuple[str, ...]
    field: str


@dataclass(frozen=True)
class RowProblem:
    row: int
    field: str
    message: str


@dataclass(frozen=True)
class ImportSummary:
    """What an import did, or a dry run found."""

    dry_run: bool
    committed: bool
    rows: int
    created: int
    updated: int
    failed_rows: int
    problems: Sequence[RowProblem]
    #: Row errors beyond those listed.
    more: int

    @property
    def clean(self) -> bool:
        return not self.failed_rows and not self.problems


@dataclass(frozen=True)
class ImportPage:
    entity: str
    entity_label: str
    label_plural: str
    #: ``upload``, ``map`` or ``done``.
    step: str
    action: str
    list_href: str
    filename: str = ""
    columns: Sequence[ImportColumn] = ()
    #: Fields a column may go to, and the external-id fields an update can use.
    fields: Sequence[tuple[str, str]] = ()
    keys: Sequence[tuple[str, str]] = ()
    key: str = ""
    skip_bad_rows: bool = False
    #: Administrators may import without running automations (a data load).
    may_bypass: bool = False
    bypass_automation: bool = False
    summary: ImportSummary | None = None
    errors: Sequence[str] = ()
    max_megabytes: int = 0


def importable_fields(
    entity: EntityDef, computed: Collection[str] = ()
) -> list[tuple[str, str]]:
    """``(name, label)`` of every field an import may write, in label order.

    :param computed: fields that rules compute; like autonumbers, nobody writes
        them.
    """
    found = [
        (name, str(spec.get("label", name)))
        for name, spec in entity.fields.items()
        if spec["type"] != "autonumber" and name not in computed
    ]
    return sorted(found, key=lambda item: item[1].lower())


def key_fields(entity: EntityDef, fixed: Collection[str] = ()) -> list[tuple[str, str]]:
    """``(name, label)`` of the external-id fields records can be updated by.

    :param fixed: fields no column may fill (computed, or read-only to the
        person): the key's column is imported, so they cannot be keys either.
    """
    return [
        (name, str(spec.get("label", name)))
        for name, spec in entity.fields.items()
        if spec.get("external_id")
        and spec["type"] != "autonumber"
        and name not in fixed
    ]


def import_summary(
    entity: EntityDef,
    report: Any,
    *,
    shown: int = ERRORS_SHOWN,
    entities: Mapping[str, EntityDef] | None = None,
) -> ImportSummary:
    """Turn the importer's report into what the page lists.

    :param report: an :class:`~tailorcrm.platform.importer.ImportReport`.
    :param entities: the entities the person sees, by name: a problem on a
        record that a rule or an automation saves names its field with its
        entity (``activity.subject``), shown as their labels.
    """
    problems = [
        RowProblem(
            row=int(error.row),
            field=problem_label(entity, entities or {}, error.field),
            message=str(error.message),
        )
        for error in report.errors[:shown]
    ]
    return ImportSummary(
        dry_run=bool(report.dry_run),
        committed=bool(report.committed),
        rows=int(report.rows),
        created=int(report.created),
        updated=int(report.updated),
        failed_rows=int(report.failed_rows),
        problems=problems,
        more=max(0, len(report.errors) - shown),
    )


def problem_label(
    entity: EntityDef, entities: Mapping[str, EntityDef], name: str | None
) -> str:
    """How a problem's field reads to a person: the label of a field of
    ``entity``, or, for one of another record that a rule or an automation saves
    (``activity.subject``), that entity's and field's labels (``Activity ·
    Subject``) from the ``entities`` the person sees; else the name as given."""
    if not name:
        return ""
    spec = entity.fields.get(name)
    if spec is not None:
        return str(spec.get("label", name))
    if name in SYSTEM_LABELS:
        # A rule may name a column every record has (a validation of owner_id).
        return SYSTEM_LABELS[name]
    owner, _, field = name.partition(".")
    other = entities.get(owner)
    spec = other.fields.get(field) if other is not None else None
    label = str(spec.get("label", field)) if spec else SYSTEM_LABELS.get(field)
    if other is None or label is None:
        return name
    return f"{other.label} · {label}"

"""The CSV import page: upload a file, map its columns, check it, import it.

The importer does the work, through the record service, exactly as
``tailorcrm import`` does. Between the steps the uploaded file waits on the
server under a random name that only the session which uploaded it knows; the
address carries that name, never a path, and it is checked against the session
before any file is opened. A file is removed once it is imported or discarded,
and any left behind is removed after :data:`UPLOAD_LIFETIME` seconds. Several
app processes share uploads only when they share the upload folder
(``IMPORT_FOLDER`` in the app's config; a folder in the system's temporary
directory by default).

An import first claims its file by renaming it (``<name>.csv`` becomes
``<name>.importing``). A rename is atomic, so of two requests that import the
same upload at once (a double click, a second tab) only one finds the file to
rename; the other imports nothing and says why. An import that saved its rows
leaves an empty ``<name>.imported`` behind, so that a later request learns that
the file was imported; the other outcomes give the file back for another try.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app, flash, redirect, request, session, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

from ...errors import BadRequest, Conflict, Forbidden, NotFound
from ...metadata import MAX_FIELDS, Caller, EntityDef
from ...renderer import (
    ImportColumn,
    ImportPage,
    import_summary,
    importable_fields,
    key_fields,
)
from .._app import Session, platform
from ..csvio import CsvFormatError, read_csv
from ..importer import (
    ImportFailed,
    ImportReport,
    check_import,
    import_csv,
    match_columns,
)
from ._blueprint import web
from ._context import LINKS, render, web_session
from ._field_state import fixed_fields
from ._listing import plural

#: The largest file the import page takes.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Seconds an upload waits for its import before it is removed.
UPLOAD_LIFETIME = 2 * 60 * 60
#: Uploads one session keeps at a time; an older one goes when a new one comes.
UPLOADS_PER_SESSION = 3
#: The most columns a file may have: an entity has at most as many fields.
MAX_COLUMNS = MAX_FIELDS
SAMPLE_ROWS = 3
_SESSION_KEY = "tc_uploads"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
_CHUNK = 64 * 1024
# The file of an upload waiting for its import, claimed by the import running
# now, and the empty mark left once it was imported.
_WAITING = ".csv"
_CLAIMED = ".importing"
_IMPORTED = ".imported"


@web.route("/app/<entity_name>/import", methods=["GET", "POST"])
@login_required
def import_page(entity_name: str) -> Response:
    """Show the upload form, or take the file and go on to its columns."""
    with web_session() as found:
        entity = found.catalog.entity(entity_name)
        check_import(entity)
        if request.method == "GET":
            return _render(found, entity, step="upload")
        try:
            token = _receive(entity)
        except BadRequest as error:
            return _render(
                found, entity, step="upload", errors=[error.message], status=422
            )
    return redirect(_mapping_href(entity_name, token), code=303)


@web.route("/app/<entity_name>/import/<token>", methods=["GET", "POST"])
@login_required
def import_mapping(entity_name: str, token: str) -> Response:
    """Map the columns; ``action`` ``check`` runs a dry run, ``import`` imports."""
    try:
        path = _upload_path(entity_name, token)
    except _UploadTaken as error:
        return _taken(entity_name, token, error)
    action = request.form.get("action", "") if request.method == "POST" else ""
    if action == "discard":
        _forget(token)
        flash("The uploaded file was discarded.", "success")
        return redirect(LINKS.list(entity_name), code=303)
    with web_session() as found:
        entity = found.catalog.entity(entity_name)
        check_import(entity)
        header, samples = _preview(path)
        actor = found.user.actor()
        caller = found.user.caller
        computed = fixed_fields(found, entity)
        if request.method == "GET":
            selected = _automatic(entity, header, computed)
            return _render_mapping(found, entity, token, header, samples, selected)
        selected, options = _chosen(header)
        if options.bypass and not found.user.is_admin:
            raise Forbidden("Only administrators may bypass automation.")
        errors = _mapping_errors(entity, selected, options.key, computed)
        if errors or action not in ("check", "import"):
            errors = errors or ["Choose to check the file or to import it."]
            return _render_mapping(
                found,
                entity,
                token,
                header,
                samples,
                selected,
                options,
                errors=errors,
                status=422,
            )
    # By index: a file may leave several columns without a name.
    mapping: dict[str, str | int] = {field: index for index, field in selected.items()}
    # The import opens a write transaction of its own; the page's read
    # transaction is closed first so that SQLite does not wait on itself.
    if action == "check":
        report, errors = _run(
            entity_name,
            path,
            mapping,
            options,
            actor=actor,
            caller=caller,
            dry_run=True,
        )
    else:
        try:
            claimed = _claim(token)
        except _UploadTaken as error:
            return _taken(entity_name, token, error)
        report, errors = _import_claimed(
            entity_name,
            token,
            claimed,
            mapping,
            options,
            actor=actor,
            caller=caller,
        )
    # An imported upload stays known to the session (its file is gone, its mark
    # says it was imported), so that sending the form again says so.
    filename = _name(token)
    with web_session() as found:
        entity = found.catalog.entity(entity_name)
        if report is not None and report.committed:
            return _render(
                found, entity, step="done", summary=report, filename=filename
            )
        return _render_mapping(
            found,
            entity,
            token,
            header,
            samples,
            selected,
            options,
            errors=errors,
            report=report,
            status=422 if errors else 200,
        )


class _UploadTaken(Conflict):
    """The upload is being imported by another request, or was imported."""


def _taken(entity_name: str, token: str, error: _UploadTaken) -> Response:
    """The page that says why this request imports nothing (409)."""
    with web_session() as found:
        entity = found.catalog.entity(entity_name)
        return _render(
            found,
            entity,
            step="done",
            errors=[error.message],
            filename=_name(token),
            status=error.status,
        )


# -- the steps ---------------------------------------------------------------------


def _import_claimed(
    entity_name: str,
    token: str,
    claimed: Path,
    mapping: dict[str, str | int],
    options: _Options,
    *,
    actor: Any,
    caller: Caller | None,
) -> tuple[ImportReport | None, list[str]]:
    """Import the file this request claimed, then mark it imported or give it back."""
    try:
        report, errors = _run(
            entity_name,
            claimed,
            mapping,
            options,
            actor=actor,
            caller=caller,
            dry_run=False,
        )
    except BaseException:
        _release(token, imported=False)
        raise
    _release(token, imported=report is not None and report.committed)
    return report, errors


def _run(
    entity_name: str,
    path: Path,
    mapping: dict[str, str | int],
    options: _Options,
    *,
    actor: Any,
    caller: Caller | None,
    dry_run: bool,
) -> tuple[ImportReport | None, list[str]]:
    try:
        with path.open("rb") as stream:
            report = import_csv(
                platform(),
                entity_name,
                stream,
                actor=actor,
                caller=caller,
                mapping=mapping,
                key=options.key or None,
                dry_run=dry_run,
                skip_bad_rows=options.skip_bad_rows,
                bypass_automation=options.bypass,
                auto_match=False,
            )
    except ImportFailed as error:
        return error.report, []
    except BadRequest as error:
        return None, [error.message, *(problem.message for problem in error.problems)]
    except FileNotFoundError:
        raise NotFound("The uploaded file is gone; upload it again.") from None
    return report, []


def _automatic(
    entity: EntityDef, header: list[str], computed: Collection[str]
) -> dict[int, str]:
    """The field of each column by name or label, as ``tailorcrm import`` finds it.

    A column of a computed field (an export holds them) is left unmatched.
    """
    matched, _ = match_columns(entity, header, {}, computed=computed)
    return {index: field for field, index in matched.items()}


@dataclass(frozen=True)
class _Options:
    """How the file is imported: the key field that finds records to update,
    whether bad rows are skipped, and whether automations are bypassed."""

    key: str = ""
    skip_bad_rows: bool = False
    bypass: bool = False


def _chosen(header: list[str]) -> tuple[dict[int, str], _Options]:
    """What the form sent: the field of each column by index, and the options."""
    selected = {
        index: field
        for index in range(len(header))
        if (field := request.form.get(f"map_{index}", ""))
    }
    form = request.form
    return selected, _Options(
        key=form.get("key", ""),
        skip_bad_rows=_ticked("skip_bad_rows"),
        bypass=_ticked("bypass_automation"),
    )


def _ticked(name: str) -> bool:
    """Whether a checkbox of the form is ticked. A browser sends ``on`` or
    nothing; other text (a script's ``true``) is refused rather than read as
    not ticked, which would run the automations it meant to bypass."""
    value = request.form.get(name)
    if value not in (None, "", "on"):
        raise BadRequest(
            f"{name}: a ticked box sends 'on', an unticked one nothing; "
            f"{value!r} is neither. Nothing was imported."
        )
    return value == "on"


def _mapping_errors(
    entity: EntityDef, selected: dict[int, str], key: str, computed: Collection[str]
) -> list[str]:
    errors = []
    fields = dict(importable_fields(entity, computed))
    chosen = list(selected.values())
    for name in dict.fromkeys(chosen):
        if name not in fields:
            errors.append(f"{entity.label} has no field {name!r} to import into.")
        elif chosen.count(name) > 1:
            message = f"{fields[name]} is chosen for more than one column; keep one."
            errors.append(message)
    if not selected:
        errors.append("Choose a field for at least one column.")
    keys = dict(key_fields(entity, computed))
    if key and key not in keys:
        errors.append("Choose an external-id field to update records by.")
    elif key and key not in chosen:
        errors.append(
            f"Choose the column that holds {keys[key]} to update records by it."
        )
    return errors


# -- uploads -----------------------------------------------------------------------


def upload_dir() -> Path:
    """The folder uploads wait in (created private to this user)."""
    configured = current_app.config.get("IMPORT_FOLDER")
    folder = Path(configured or Path(tempfile.gettempdir()) / "tailorcrm-imports")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _receive(entity: EntityDef) -> str:
    """Store the uploaded file and remember it in the session.

    :raises BadRequest: no file, a file too large, or one that is not CSV.
    """
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise BadRequest("Choose a CSV file to upload.")
    _sweep()
    token = secrets.token_urlsafe(24)
    path = _file(token, _WAITING)
    size = 0
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as target:
        while chunk := upload.stream.read(_CHUNK):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                break
            target.write(chunk)
    if size > MAX_UPLOAD_BYTES:
        path.unlink(missing_ok=True)
        megabytes = MAX_UPLOAD_BYTES // (1024 * 1024)
        raise BadRequest(
            f"The file is larger than {megabytes} MB; split it and import the "
            "parts one after another."
        )
    try:
        _preview(path)
    except BadRequest:
        path.unlink(missing_ok=True)
        raise
    _remember(token, entity.name, upload.filename)
    return token


def _remember(token: str, entity: str, filename: str) -> None:
    uploads = dict(session.get(_SESSION_KEY) or {})
    while len(uploads) >= UPLOADS_PER_SESSION:
        oldest = min(uploads, key=lambda t: uploads[t].get("at", 0))
        _forget(oldest, uploads)
    name = Path(filename.replace("\\", "/")).name[:200]
    uploads[token] = {"entity": entity, "name": name, "at": int(time.time())}
    session[_SESSION_KEY] = uploads


def _forget(token: str, uploads: dict[str, Any] | None = None) -> None:
    """Remove an upload's file and its entry in the session."""
    kept = dict(session.get(_SESSION_KEY) or {}) if uploads is None else uploads
    kept.pop(token, None)
    if _TOKEN.match(token):
        _file(token, _WAITING).unlink(missing_ok=True)
    session[_SESSION_KEY] = kept


def _upload_path(entity_name: str, token: str) -> Path:
    """The file of an upload this session made for this entity.

    :raises NotFound: the token is not one, or the upload expired.
    :raises _UploadTaken: an import has claimed the file, or imported it.
    """
    uploads = session.get(_SESSION_KEY) or {}
    entry = uploads.get(token) if _TOKEN.match(token) else None
    if not isinstance(entry, dict) or entry.get("entity") != entity_name:
        raise NotFound("This upload expired or belongs to another session.")
    path = _file(token, _WAITING)
    if _age(entry) <= UPLOAD_LIFETIME and path.is_file():
        return path
    _check_taken(token)
    _forget(token)
    raise NotFound("This upload expired; upload the file again.")


def _file(token: str, suffix: str) -> Path:
    return upload_dir() / f"{token}{suffix}"


def _claim(token: str) -> Path:
    """Claim an upload's file for this request's import.

    :returns: the file, under its claimed name.
    :raises _UploadTaken: another request claimed it first, or imported it.
    """
    claimed = _file(token, _CLAIMED)
    try:
        os.rename(_file(token, _WAITING), claimed)
    except FileNotFoundError:
        _check_taken(token)
        raise NotFound("This upload expired; upload the file again.") from None
    # From now on the claim is as old as the import, for the sweep.
    os.utime(claimed)
    return claimed


def _release(token: str, *, imported: bool) -> None:
    """End a claim: mark the upload imported, or give its file back."""
    claimed = _file(token, _CLAIMED)
    if imported:
        _file(token, _IMPORTED).touch()
        claimed.unlink(missing_ok=True)
        return
    # The sweep may have removed it meanwhile; the next step says it expired.
    with contextlib.suppress(FileNotFoundError):
        os.rename(claimed, _file(token, _WAITING))


def _check_taken(token: str) -> None:
    """:raises _UploadTaken: an import holds the upload's file, or imported it."""
    if _file(token, _CLAIMED).exists():
        raise _UploadTaken(
            "This file is being imported, from another window or tab perhaps; "
            "its records appear in the list once that import ends. It is not "
            "imported a second time."
        )
    if _file(token, _IMPORTED).exists():
        raise _UploadTaken(
            "This file was already imported; its records are in the list. It is "
            "not imported a second time: to import it again, upload it again."
        )


def _age(entry: Mapping[str, Any]) -> float:
    at = entry.get("at")
    return time.time() - at if isinstance(at, int | float) else float("inf")


def _name(token: str) -> str:
    entry = (session.get(_SESSION_KEY) or {}).get(token) or {}
    return str(entry.get("name", ""))


def _sweep() -> None:
    """Remove uploads, claims and marks older than :data:`UPLOAD_LIFETIME`,
    whoever left them."""
    limit = time.time() - UPLOAD_LIFETIME
    for suffix in (_WAITING, _CLAIMED, _IMPORTED):
        for path in upload_dir().glob(f"*{suffix}"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink(missing_ok=True)
            except OSError:
                continue


def _preview(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the first rows of an uploaded file.

    :raises BadRequest: it cannot be read as CSV, or it has more columns than
        :data:`MAX_COLUMNS`.
    """
    try:
        with path.open("rb") as stream:
            reader = read_csv(stream)
            _check_columns(reader.header)
            samples = []
            for _, values in reader:
                samples.append(values)
                if len(samples) >= SAMPLE_ROWS:
                    break
    except CsvFormatError as error:
        raise BadRequest(error.message) from None
    return reader.header, samples


def _check_columns(header: list[str]) -> None:
    """:raises BadRequest: the file has more columns than an import takes."""
    if len(header) > MAX_COLUMNS:
        raise BadRequest(
            f"The file has {len(header):,} columns; an import takes at most "
            f"{MAX_COLUMNS:,}, as an entity has at most {MAX_FIELDS:,} fields. "
            "Remove the columns you do not import, then upload the file again."
        )


# -- pages -------------------------------------------------------------------------


def _mapping_href(entity_name: str, token: str) -> str:
    return url_for("web.import_mapping", entity_name=entity_name, token=token)


def _render(
    found: Session,
    entity: EntityDef,
    *,
    step: str,
    errors: list[str] | None = None,
    summary: ImportReport | None = None,
    filename: str = "",
    status: int = 200,
) -> Response:
    page = ImportPage(
        entity=entity.name,
        entity_label=entity.label,
        label_plural=plural(entity),
        step=step,
        action=LINKS.import_page(entity.name),
        list_href=LINKS.list(entity.name),
        filename=filename,
        summary=(
            import_summary(entity, summary, entities=found.catalog.entities)
            if summary is not None
            else None
        ),
        errors=errors or [],
        max_megabytes=MAX_UPLOAD_BYTES // (1024 * 1024),
    )
    return _page(found, entity, page, status=status)


def _render_mapping(
    found: Session,
    entity: EntityDef,
    token: str,
    header: list[str],
    samples: list[list[str]],
    selected: Mapping[int, str],
    options: _Options = _Options(),
    *,
    errors: list[str] | None = None,
    report: ImportReport | None = None,
    status: int = 200,
) -> Response:
    columns = [
        ImportColumn(
            index=index,
            name=name,
            samples=tuple(row[index] if index < len(row) else "" for row in samples),
            field=selected.get(index, ""),
        )
        for index, name in enumerate(header)
    ]
    page = ImportPage(
        entity=entity.name,
        entity_label=entity.label,
        label_plural=plural(entity),
        step="map",
        action=_mapping_href(entity.name, token),
        list_href=LINKS.list(entity.name),
        filename=_name(token),
        columns=columns,
        fields=importable_fields(entity, fixed_fields(found, entity)),
        keys=key_fields(entity, fixed_fields(found, entity)),
        key=options.key,
        skip_bad_rows=options.skip_bad_rows,
        may_bypass=found.user.is_admin,
        bypass_automation=options.bypass,
        summary=(
            import_summary(entity, report, entities=found.catalog.entities)
            if report is not None
            else None
        ),
        errors=errors or [],
    )
    return _page(found, entity, page, status=status)


def _page(
    found: Session, entity: EntityDef, page: ImportPage, *, status: int
) -> Response:
    return render(
        "import.html",
        title=f"Import {page.label_plural}",
        session=found,
        current=entity.name,
        page=page,
        status=status,
    )

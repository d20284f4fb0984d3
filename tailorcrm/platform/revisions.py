"""Optimistic locking of metadata documents: each has the revision that stored it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from ..errors import PreconditionFailed
from .db import meta_documents, meta_history

#: What ``If-Match: *`` expects of a document: that one is stored, whatever its
#: revision (RFC 9110).
ANY_REVISION = -1


def check_expected(
    current: Mapping[str, int],
    expected: Mapping[str, int],
    describe: Callable[[str], str],
) -> None:
    """Refuse a change to documents that changed since the caller read them.

    :param current: the revision of each stored document by name (0: none stored).
    :param expected: the revision the caller read of each (its ETag), or
        :data:`ANY_REVISION` for any stored one.
    :param describe: how a document is named in the message, e.g. "Rule 'x'".
    :raises PreconditionFailed: naming the first document that moved, or that is
        not there when any stored one was expected.
    """
    for name, revision in expected.items():
        now = current.get(name, 0)
        if revision == ANY_REVISION:
            if not now:
                raise PreconditionFailed(
                    f"{describe(name)} does not exist; If-Match: * changes only "
                    "one that does."
                )
            continue
        if now == revision:
            continue
        if not revision:
            raise PreconditionFailed(
                f"{describe(name)} already exists (revision {now}); If-Match: "
                '"0" expects none. Read it and apply your change with its revision.'
            )
        if not now:
            raise PreconditionFailed(
                f"{describe(name)} does not exist (any more) though you read "
                f"revision {revision} of it; reload it and apply your change again."
            )
        raise PreconditionFailed(
            f"{describe(name)} was changed at revision {now} since you read it "
            f"(revision {revision}); reload it and apply your change again."
        )


def write_documents(
    connection: sa.Connection,
    kind: str,
    before: Mapping[str, dict[str, Any]],
    after: Mapping[str, dict[str, Any] | None],
    revision: int,
    *,
    wrapped: bool = True,
) -> None:
    """Store named documents of one kind at ``revision``, with their history.

    :param before: the stored documents by name.
    :param after: the new document of each name that changes (``None``: deleted).
    :param wrapped: the history keeps each document as ``{"document": ...}``
        (rules, roles) rather than as it is (layouts, as they always were).
    """
    for name, document in after.items():
        old = before.get(name)
        key = (meta_documents.c.kind == kind, meta_documents.c.name == name)
        if document is None:
            connection.execute(meta_documents.delete().where(*key))
        elif old is None:
            connection.execute(
                meta_documents.insert().values(
                    kind=kind,
                    name=name,
                    body=document,
                    hidden_fields=[],
                    removed=False,
                    revision=revision,
                )
            )
        else:
            connection.execute(
                meta_documents.update()
                .where(*key)
                .values(body=document, revision=revision)
            )
        connection.execute(
            meta_history.insert().values(
                revision=revision,
                kind=kind,
                name=name,
                before=_entry(old, wrapped),
                after=_entry(document, wrapped),
            )
        )


def _entry(document: dict[str, Any] | None, wrapped: bool) -> Any:
    if document is None or not wrapped:
        return document
    return {"document": document}

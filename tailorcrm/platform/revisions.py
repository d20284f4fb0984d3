"""Optimistic locking of metadata documents: each has the revision that stored it."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import PreconditionFailed


def check_expected(
    current: Mapping[str, int],
    expected: Mapping[str, int],
    describe: Callable[[str], str],
) -> None:
    """Refuse a change to documents that changed since the caller read them.

    :param current: the revision of each stored document by name (0: none stored).
    :param expected: the revision the caller read of each (its ETag).
    :param describe: how a document is named in the message, e.g. "Rule 'x'".
    :raises PreconditionFailed: naming the first document that moved.
    """
    for name, revision in expected.items():
        now = current.get(name, 0)
        if now != revision:
            raise PreconditionFailed(
                f"{describe(name)} was changed at revision {now} since you read it "
                f"(revision {revision}); reload it and apply your change again."
            )

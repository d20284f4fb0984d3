"""Automation: what rules of type ``automation`` do after a save.

For every record a save wrote, the automations its change triggers (``create``,
``update`` or ``delete``) run in the order of their ``order``, then name. Each sees
the record as the save left it (and ``$prior`` on updates); its condition picks
``actions`` or ``else_actions``, and every action saves through the record service
one level deeper, with all the rules of that save. A save that an action cannot make
refuses the save that triggered it; past :data:`MAX_AUTOMATION_DEPTH` levels the
save is refused, naming the automations of the loop.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import Conflict, Problem, TailorError, ValidationFailed
from ..metadata import Catalog, EntityDef
from ..rules_engine import Action, AutomationRule, expressions_of, truthy
from .access import readable_rules
from .rules import RecordRules, coerce, names_read

if TYPE_CHECKING:
    from .cascade import Change
    from .records import RecordService

#: How many levels of saves automations may cause, one inside the other.
MAX_AUTOMATION_DEPTH = 5


class AutomationFailed(ValidationFailed):
    """An automation's action could not save; the save that triggered it fails."""

    #: The automation whose action could not save and what it could not save,
    #: when the problems are those of that record's own save (a ``set_field``).
    automation: AutomationRule | None = None
    target: EntityDef | None = None
    #: Whether the caller may be told which automation it was (see :func:`_shown`).
    named: bool = True
    #: Whether the record it could not save is one the caller saved, reached
    #: again further down: the saves above keep its problems as they are.
    saved_by_caller: bool = False


class AutomationConflict(AutomationFailed):
    """An automation's action clashed with stored data (a unique value another
    record holds): answered as any such clash is, with 409."""

    status = Conflict.status
    code = Conflict.code
    title = Conflict.title


class AutomationLoop(AutomationFailed):
    """Automations triggered each other more than :data:`MAX_AUTOMATION_DEPTH` deep.

    The chain names the automations in ``shown`` (all of them when ``None``): the
    others are rules the caller is not shown (see :func:`.access.readable_rules`),
    which stand in it unnamed, so that its shape still shows where it turns.
    """

    def __init__(
        self, chain: Sequence[str], shown: Collection[str] | None = None
    ) -> None:
        path = " -> ".join(
            name if shown is None or name in shown else _UNSEEN_AUTOMATION
            for name in chain
        )
        names = ", ".join(
            name for name in dict.fromkeys(chain) if shown is None or name in shown
        )
        if len(set(chain)) == 1 and (shown is None or chain[0] in shown):
            advice = (
                f"Check that the automation {chain[0]} does not keep setting its own "
                "trigger fields."
            )
        elif shown is None or all(name in shown for name in chain):
            advice = (
                f"Check that the automations {names} do not keep setting each "
                "other's trigger fields."
            )
        elif names:
            advice = (
                f"Check that the automations {names} do not keep setting each "
                "other's trigger fields, and ask an administrator about the ones "
                "you cannot see."
            )
        else:
            advice = (
                "Ask an administrator to check the automations that keep setting "
                "each other's trigger fields."
            )
        message = (
            f"Automations were stopped after {MAX_AUTOMATION_DEPTH} levels of saves "
            f"that triggered each other: {path}. {advice}"
        )
        super().__init__(message, problems=[Problem(None, "automation_loop", message)])
        self.chain = tuple(chain)


#: How an automation the caller is not shown stands in a loop's chain.
_UNSEEN_AUTOMATION = "(an automation you cannot see)"


def row_problems(error: TailorError) -> list[Problem]:
    """The problems of a refused save as an import reports them on its row.

    A row refused for what an automation set on its own record (a
    ``set_field``) keeps that record's problems, fields and codes, as any save
    of it gets them; their messages name the automation (unless the caller is
    not shown it), since a report of rows has no summary above them to say so,
    as the API's detail and a form do.
    """
    found = error.problems or [Problem(None, error.code, error.message)]
    if not isinstance(error, AutomationFailed):
        return list(found)
    automation, target = error.automation, error.target
    if automation is None or target is None:
        return list(found)
    who = f"The automation {automation.name!r}" if error.named else _UNNAMED
    said = f"{who} could not save {target.label}: "
    return [Problem(p.field, p.code, said + p.message) for p in found]


def _rules(
    service: RecordService,
    entity: EntityDef,
    automations: tuple[AutomationRule, ...],
) -> RecordRules:
    related_reads, reads = service.catalog.derived(
        ("automation_reads", entity.name, automations),
        lambda: _reads(automations, entity),
    )
    return RecordRules(
        service.connection,
        service.catalog,
        entity,
        user=service.user,
        now=service.now,
        related_reads=related_reads,
        reads=reads,
    )


def _reads(
    automations: tuple[AutomationRule, ...], entity: EntityDef
) -> tuple[Mapping[str, frozenset[str]] | None, frozenset[str] | None]:
    """What ``automations`` read: of related records, by lookup (see
    :func:`_related_reads`), and of the record itself (see :func:`names_read`)."""
    expressions = [e for rule in automations for e in expressions_of(rule)]
    lookups = frozenset(spec["name"] for spec in entity.lookups())
    return _related_reads(automations, lookups), names_read(expressions)


def _triggered(
    service: RecordService, entity: EntityDef, trigger: str
) -> tuple[AutomationRule, ...]:
    """The automations of ``entity`` that ``trigger`` sets off, in their order."""
    catalog = service.catalog
    return catalog.derived(
        ("automations", entity.name, trigger),
        lambda: tuple(
            automation
            for automation in catalog.rules.for_entity(entity.name).automations
            if trigger in automation.triggers
        ),
    )


def _related_reads(
    automations: tuple[AutomationRule, ...], lookups: frozenset[str]
) -> Mapping[str, frozenset[str]] | None:
    """The fields of related records that ``automations`` read, by lookup.

    Automations see related records as the other rules do, but need only load
    what they read themselves: a field nothing reads cannot change what they do.
    ``None`` (load what every rule of the entity reads) when one of them reads a
    related record whole, or reads names computed while it runs.
    """
    reads: dict[str, set[str]] = {}
    for automation in automations:
        for expression in expressions_of(automation):
            if expression.dynamic:
                return None
            for name in expression.reads:
                head, _, rest = name.partition(".")
                if head in lookups and not rest:
                    return None
                if head in lookups:
                    reads.setdefault(head, set()).add(rest)
    return {lookup: frozenset(fields) for lookup, fields in reads.items()}


def run_automations(service: RecordService, changes: Sequence[Change]) -> bool:
    """Run the automations each change triggers; return whether any action ran.

    A record is one change per save, whatever saves it again on the way: a
    record whose automations a save further out is yet to run (an account
    whose total the save moved, before its deal's action moves it again) is
    left to that save, which runs them once, from the record as stored before
    it to the record as it is when its turn comes.
    """
    pending = service.automations_pending
    mine = [
        change
        for change in changes
        if (change.entity.name, change.record_id) not in pending
        and _triggered(service, change.entity, change.trigger)
    ]
    if not mine:
        return False
    waiting = {(change.entity.name, change.record_id) for change in mine}
    pending |= waiting
    saving = _Saving(
        {(change.entity.name, change.record_id): change.before for change in changes},
        service.saved_by_caller
        if service.chain
        else frozenset(
            (change.entity.name, change.record_id)
            for change in changes
            if not change.followed and change.after is not None
        ),
    )
    acted = False
    try:
        for change in mine:
            key = (change.entity.name, change.record_id)
            pending.discard(key)
            waiting.discard(key)
            acted = _run_for(service, change, saving, again=acted) or acted
    finally:
        pending -= waiting
    return acted


@dataclass(frozen=True)
class _Saving:
    """What one level of a save tells the saves its actions make."""

    #: Every record the save writes, as it found it (``None``: it creates it):
    #: what an action changes of one is part of the save, and ``readonly_if``
    #: is judged on that.
    found: Mapping[tuple[str, int], Mapping[str, Any] | None]
    #: The records the caller saved, those of the save that began it all.
    saved: frozenset[tuple[str, int]]


def _run_for(
    service: RecordService, change: Change, saving: _Saving, *, again: bool
) -> bool:
    """Run the automations that ``change`` triggers; ``again``: actions have run
    since the save wrote the record, which is read as it is now."""
    automations = _triggered(service, change.entity, change.trigger)
    if again:
        change = _as_stored_now(service, change)
    rules = _rules(service, change.entity, automations)
    prior = change.before if change.trigger == "update" else None
    _lock_updated(rules, change, automations)
    rules.load_related([change.record, *([prior] if prior else [])])
    data = rules.data(change.record, prior=prior)
    acted = False
    for automation in automations:
        outcome = automation.condition(data) if automation.condition else True
        actions = automation.actions if truthy(outcome) else automation.else_actions
        for action in actions:
            acted = _act(service, automation, action, change, data, saving) or acted
    return acted


def _as_stored_now(service: RecordService, change: Change) -> Change:
    """``change`` up to what the actions run so far saved of its record.

    An action of an earlier record (a deal's ``set_field`` that moves its
    account's total again) may have saved this record since the save wrote it,
    and run its automations then, on the record as that left it. Run on the
    record as the save first wrote it, they would now write back what was
    true before (a note of the total as it was).
    """
    if change.after is None:
        return change
    table = change.entity.table
    row = (
        service.connection.execute(
            sa.select(table).where(table.c.id == change.record_id)
        )
        .mappings()
        .first()
    )
    if row is None or row["version"] == change.after.get("version"):
        return change
    # Change is cascade's, which imports this module: made through the type of
    # the one at hand.
    return type(change)(
        change.entity,
        change.trigger,
        change.before,
        dict(row),
        followed=change.followed,
    )


def _lock_updated(
    rules: RecordRules, change: Change, automations: tuple[AutomationRule, ...]
) -> None:
    """Load, with their rows locked, the related records that ``update_related``
    actions may change and that the automations read (see
    :meth:`.RecordRules.lock_related`).

    Such a value is computed from what the automation read of the record (a count
    kept by adding one to ``account.touches``): read unlocked, another save of the
    record not yet committed would be overwritten with the value it replaced.
    """
    for automation in automations:
        for action in (*automation.actions, *automation.else_actions):
            lookup = str(action.lookup)
            if action.type == "update_related" and lookup in rules.related_reads:
                rules.lock_related(lookup, change.record.get(lookup))


def _act(
    service: RecordService,
    automation: AutomationRule,
    action: Action,
    change: Change,
    data: Mapping[str, Any],
    saving: _Saving,
) -> bool:
    nested = service.nested(automation.name)
    nested.saved_by_caller = saving.saved
    # A change of a record the save is writing (the caller's, one it changed in
    # turn such as a roll-up's parent, whether by a set_field or through a
    # lookup) is part of that save: readonly_if is judged on the record as the
    # save found it.
    for found, before in saving.found.items():
        nested.saves_under_way.setdefault(found, before)
    target = (
        change.entity
        if action.type == "set_field"
        else service.catalog.entity(str(action.entity))
    )
    values = {
        field: coerce(target.fields[field], expression(data))
        for field, expression in action.values
    }
    key = (change.entity.name, change.record_id)
    # The record its caller saved, also one the person saved reached again
    # further down (a task this save created moved its count): problems there
    # are that save's own.
    own = action.type == "set_field" and (not change.followed or key in saving.saved)
    try:
        if action.type == "set_field":
            nested.update(target.name, change.record_id, values)
        elif action.type == "create_record":
            values[str(action.lookup)] = change.record_id
            nested.create(target.name, values)
        else:
            related = change.record.get(str(action.lookup))
            if related is None or _gone(change, target, int(related)):
                return False
            nested.update(target.name, int(related), values)
    except AutomationFailed as error:
        # The failure of an automation further down, on a record its caller did
        # not save, is named as any other record's: its summary too, which named
        # the automation and the entity as if the record were the caller's.
        if (
            not own
            and error.automation is not None
            and error.target is not None
            and not error.saved_by_caller
        ):
            # That failure is on the record this action saved.
            hidden = _hidden(service, action, change, error.target)
            error.problems = _blamed(
                error.automation,
                error.target,
                False,
                error,
                service.shown_to,
                hidden=hidden,
            )
            if hidden or not _shown(service.shown_to, error.automation, error.target):
                error.message = _UNSEEN
                error.args = (_UNSEEN,)
            error.automation = error.target = None
        raise
    except TailorError as error:
        hidden = not own and _hidden(service, action, change, target)
        named = not hidden and _shown(service.shown_to, automation, target)
        if named:
            detail = (
                f"The automation {automation.name!r} could not save "
                f"{target.label}: {error.message}"
            )
        elif own:
            # The record the caller saved, whose problems they are told, by an
            # automation they are not shown.
            detail = f"{_UNNAMED} could not save {target.label}: {error.message}"
        else:
            detail = _UNSEEN
        refusal = (
            AutomationConflict if isinstance(error, Conflict) else AutomationFailed
        )
        failed = refusal(
            detail,
            problems=_blamed(
                automation,
                target,
                own,
                error,
                service.shown_to,
                hidden=hidden,
                written=values,
            ),
        )
        if own:
            failed.automation, failed.target = automation, target
            failed.named = named
            failed.saved_by_caller = key in saving.saved
        raise failed from None
    return True


_UNSEEN = "An automation could not save this change; ask an administrator."
#: How an automation the caller is not shown is named when it could not save the
#: record they saved.
_UNNAMED = "An automation you cannot see"
#: What a caller is told of a value that an automation they are not shown set on
#: the record they saved, and which that record could not hold.
_UNSEEN_VALUE = (
    "An automation you cannot see set a value this record cannot hold; ask an "
    "administrator."
)


def _gone(change: Change, target: EntityDef, related: int) -> bool:
    """Whether ``related`` is the record whose delete triggered the automation.

    A record may refer to itself (an account its own parent) and still be
    deleted; the lookup then points at nothing, as an empty one does.
    """
    return (
        change.trigger == "delete"
        and target.name == change.entity.name
        and related == change.record_id
    )


def _hidden(
    service: RecordService, action: Action, change: Change, target: EntityDef
) -> bool:
    """Whether the person whose save this is may not read the stored record that
    ``action`` saves (a new one is theirs to be told of): what a rule refused
    there would tell them of a record their roles keep from them."""
    if action.type == "create_record":
        return False
    if action.type == "set_field":
        record_id: Any = change.record_id
    else:
        record_id = change.record.get(str(action.lookup))
    if not isinstance(record_id, int):
        return False
    try:
        return service.hidden_from_caller(target.name, record_id)
    except sa.exc.DBAPIError:
        # The database refused the save in a way that ends its transaction (a
        # unique value another save took at the same moment): nothing more can
        # be read in it, so the record is told of as one the caller may not read.
        return True


def _shown(view: Catalog, automation: AutomationRule, target: EntityDef) -> bool:
    """Whether the caller whose ``view`` of the catalog this is may be told which
    automation failed on which entity: those that the rules they are shown
    name (see :func:`.access.readable_rules`), as a computed field's refusal
    names its rule."""
    shown = readable_rules(view)
    seen = view.entities.get(target.name)
    return (shown is None or automation.name in shown) and not (
        seen is None or seen.removed
    )


def _blamed(
    automation: AutomationRule,
    target: EntityDef,
    own: bool,
    error: TailorError,
    view: Catalog,
    *,
    hidden: bool = False,
    written: Collection[str] = (),
) -> list[Problem]:
    """The problems of a save an automation could not make, as the save that
    triggered it reports them. On the record its caller saved (``own``, a
    ``set_field``) they are the ones any save of it gets: a rule refuses the same
    way on every path. Only a problem on a field the automation set (one of
    ``written``) is told without that field and its message when the caller is
    not shown the automation: the value it computed may be what their roles
    hide (``'E-7' is not one of the choices``). On another record (one the
    automation creates or updates, or one the save changed in turn, such as a
    roll-up's parent), each field is named with its entity (``task.subject``),
    as roll-ups name theirs, and each message names the automation. A caller
    whose ``view`` does not show the automation or the entity it saves, or who
    may not read the record it saves (``hidden``), is told neither, nor what
    was wrong."""
    found = error.problems or [Problem(None, error.code, error.message)]
    if own and (not written or _shown(view, automation, target)):
        return list(found)
    if own:
        told: list[Problem] = []
        for problem in found:
            if problem.field in written:
                problem = Problem(None, problem.code, _UNSEEN_VALUE)
            if problem not in told:
                told.append(problem)
        return told
    if hidden or not _shown(view, automation, target):
        return [
            Problem(None, code, _UNSEEN)
            for code in dict.fromkeys(problem.code for problem in found)
        ]
    seen = view.entities[target.name]
    blamed = []
    for problem in found:
        field = problem.field
        if field in target.fields and field not in seen.fields:
            # A field the caller's roles hide.
            field = None
        if field is not None and "." not in field:
            field = f"{target.name}.{field}"
        message = (
            f"The automation {automation.name!r} could not save {target.label}: "
            f"{problem.message}"
        )
        blamed.append(Problem(field, problem.code, message))
    return blamed

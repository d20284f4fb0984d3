"""Form models: one widget per field type, typed values kept, errors beside fields.

A form moves values in two directions. :func:`form_values` turns a record (API form)
into the text each widget shows; :func:`read_form` turns what a browser posted back
into the JSON-like data the record service checks. The service is the only judge of
what is valid: this module converts shapes, never decides.

Field state comes decided (:class:`~._states.FormRules`): a field that is not
visible stays in the page with the ``hidden`` attribute, so that the form's script
can show it again, and it is sent with the rest, so that hiding a field never
clears it; a read-only field is sent with its value, which the record service
refuses to see changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any

from ..metadata import (
    EntityDef,
    ascii_digits,
    int_of_digits,
    max_length,
    precision_scale,
)
from ._format import (
    DEFAULT_LOCALE,
    currency_unit,
    format_date,
    format_datetime,
    format_number,
    option_label,
)
from ._pages import Links, Names, Section, Tab, sections_of, title_of
from ._states import NO_FORM_RULES, FormRules

_INTEGER = re.compile(r"^[+-]?[0-9]+$")
#: A number as a number input takes it with an exponent (``1e3``, ``2.5E-2``):
#: sign, digits before and after the point, exponent.
_EXPONENT_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?[eE]([+-]?[0-9]{1,9})")
#: The largest exponent written out; no field holds a number near it, and a
#: number past it is left as typed, for the record service to refuse.
_MAX_EXPONENT = 1000
#: A whole number as a number input may hold it: ``15`` or ``15.0``.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+(\.0*)?")
#: A date and time to the minute, as a datetime-local input sends one on the minute.
_MINUTE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
NUMBER_TYPES = frozenset({"integer", "decimal", "currency", "percent"})
#: An email or web address is a text input (with its keyboard, see
#: :data:`INPUT_MODES`): without scripts the browser's own checks stay on (for
#: numbers and dates it cannot read), and its email and address checks are not
#: the save's; they would keep a form holding 'zoë@example.org', which the save
#: takes, from being sent at all.
INPUT_TYPES = {
    "text": "text",
    "email": "text",
    "phone": "tel",
    "url": "text",
    "integer": "number",
    "decimal": "number",
    "currency": "number",
    "percent": "number",
    "date": "date",
    "datetime": "datetime-local",
}
# What the browser may fill in for a field of each type.
AUTOCOMPLETE = {"email": "email", "phone": "tel", "url": "url"}
# The keyboard a text input of each type offers.
INPUT_MODES = {"email": "email", "url": "url"}

BOOLEAN_TEXT = {"on": True, "true": True, "": False, "off": False, "false": False}

#: What a form field holds: one text, or several chosen values.
FormValue = str | list[str]


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    selected: bool


@dataclass(frozen=True)
class Widget:
    """One field of a form, with everything its template needs."""

    name: str
    label: str
    type: str
    #: Which template macro draws it: input, textarea, select, checkboxes,
    #: checkbox, lookup, readonly.
    widget: str
    value: FormValue
    required: bool
    errors: list[str]
    help_text: str = ""
    input_type: str = "text"
    attrs: dict[str, str] = field(default_factory=dict)
    choices: list[Choice] = field(default_factory=list)
    #: For a lookup: the target entity, its label, and what the text box shows
    #: (the chosen record's name, or what was typed).
    target: str = ""
    target_label: str = ""
    search_text: str = ""
    #: The unit shown after the input ("$ USD", "%", "UTC"); screen readers hear
    #: it with the field's description.
    suffix: str = ""
    #: False while field state hides the field (it stays in the page, hidden).
    visible: bool = True
    #: Shown and sent, but not to be changed: ``readonly_if`` is true.
    readonly: bool = False
    #: Whether the entity document requires the field, whatever the rules say.
    always_required: bool = False
    #: The ``visible_if`` and ``required_if`` the browser evaluates, as written.
    conditions: dict[str, Any] = field(default_factory=dict)

    @property
    def input_id(self) -> str:
        return f"f-{self.name}"

    @property
    def described_by(self) -> str:
        """The ids of the help text, unit and errors that describe the input."""
        ids = []
        if self.help_text:
            ids.append(f"{self.input_id}-help")
        if self.suffix:
            ids.append(f"{self.input_id}-unit")
        if self.errors:
            ids.append(f"{self.input_id}-errors")
        return " ".join(ids)


@dataclass(frozen=True)
class FormPage:
    entity: str
    entity_label: str
    record_id: int | None
    title: str
    version: int | None
    tabs: list[Tab]
    #: Problems not tied to one field (``record``), shown in the summary only.
    record_errors: list[str]
    #: (widget id, label, message) for the summary at the top.
    summary: list[tuple[str, str, str]]
    cancel_href: str
    #: What the browser evaluates field state with; None: nothing is live.
    rules_context: Mapping[str, Any] | None = None
    #: The fields the form shows, as ``id:name`` pairs: a save writes only those,
    #: found by id, so a field renamed or added meanwhile is not overwritten.
    shown_fields: str = ""

    @property
    def problem_count(self) -> int:
        return len(self.summary) + len(self.record_errors)


def _step(scale: int) -> str:
    return "1" if scale <= 0 else "0." + "0" * (scale - 1) + "1"


def _bound_text(value: Any, scale: int, *, lowest: bool) -> str:
    """A ``min`` (``lowest``) or ``max`` as an input's attribute: on the step.

    A browser counts the steps of a number input from its ``min`` and refuses
    a value off them, so a min of 0.5 on whole numbers would refuse 1 and take
    only 0.5, 1.5, ...; a bound with more decimals than the field keeps is moved
    to the nearest value the field can hold inside it, which leaves the same
    values allowed.
    """
    number = Decimal(_number_text(value))
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -scale:
        with localcontext() as context:
            context.prec = max(context.prec, number.adjusted() + scale + 2)
            number = number.quantize(
                Decimal(1).scaleb(-scale),
                rounding=ROUND_CEILING if lowest else ROUND_FLOOR,
            )
        # -0.001 goes up to 0, written without its sign.
        number = number.copy_abs() if number.is_zero() else number
    return format(number, "f")


def _decimal_or_none(value: FormValue) -> Decimal | None:
    """The number an input shows, or None for a blank or one it cannot read."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        number = Decimal(value.strip())
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _plain_number(text: str) -> str:
    """``text`` written out without its exponent, exactly: ``1.5e3`` is ``1500``.

    A number input takes a number with an exponent and the browser sends it as
    typed; the record service reads a number written out, as the API does.
    ``field_state.js`` writes it out the same way. Other text is returned as it
    is.
    """
    found = _EXPONENT_NUMBER.fullmatch(text)
    if found is None:
        return text
    sign, whole, fraction, exponent = found.group(1, 2, 3, 4)
    fraction = fraction or ""
    shift = int(exponent)
    if not (whole or fraction) or abs(shift) > _MAX_EXPONENT:
        return text
    digits = whole + fraction
    point = len(whole) + shift
    if point <= 0:
        digits = "0" * (1 - point) + digits
        point = 1
    elif point > len(digits):
        digits += "0" * (point - len(digits))
    head = digits[:point].lstrip("0") or "0"
    rest = digits[point:]
    return sign + head + (f".{rest}" if rest else "")


def _number_text(value: Any) -> str:
    if isinstance(value, float):
        return format(Decimal(str(value)), "f")
    return str(value)


def form_values(entity: EntityDef, record: Mapping[str, Any]) -> dict[str, FormValue]:
    """Return what each widget shows for a stored record (or a set of defaults)."""
    values: dict[str, FormValue] = {}
    for name, spec in entity.fields.items():
        value = record.get(name)
        kind = spec["type"]
        if value is None:
            values[name] = [] if kind == "multi_picklist" else ""
        elif kind == "multi_picklist":
            values[name] = [str(item) for item in value]
        elif kind == "boolean":
            values[name] = "on" if value else ""
        elif kind == "datetime":
            # datetime-local has no zone; values are shown and read as UTC, to the
            # second (the decimals of a stored value are kept by not sending it).
            # A default rule's value comes as a datetime, which str() would write
            # with a space where the input writes a T.
            if isinstance(value, dt.datetime):
                value = _utc_text(value)
            values[name] = str(value).removesuffix("Z")[:19]
        elif kind in NUMBER_TYPES:
            values[name] = _number_text(value)
        else:
            values[name] = str(value)
    return values


def _utc_text(value: dt.datetime) -> str:
    """``value`` in ISO form, in UTC without its zone, as the API writes it."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat()


def as_shown(spec: Mapping[str, Any], posted: FormValue) -> FormValue:
    """``posted`` written as :func:`form_values` writes the same value.

    A browser sends a date and time on the minute without its seconds: given
    ``2031-04-17T09:41:00`` it sends ``2031-04-17T09:41``. Read as written, that
    would be a change, and saving the form would rewrite a stored
    ``09:41:00.5`` as the whole second.
    """
    if (
        spec["type"] == "datetime"
        and isinstance(posted, str)
        and _MINUTE.fullmatch(posted)
    ):
        return f"{posted}:00"
    return posted


#: Fields shown in an input of one line, which holds no line break.
ONE_LINE_TYPES = frozenset({"text", "email", "phone", "url"})


def one_line(text: str) -> str:
    """``text`` as an input of one line holds it: without its line breaks."""
    return text.replace("\r", "").replace("\n", "")


def as_sent(spec: Mapping[str, Any], value: FormValue) -> FormValue:
    """``value`` as a browser sends it back from a form that showed it.

    An input of one line drops the line breaks of its value (text saved through
    the API or an import may hold some), and a textarea sends every line break as
    CRLF, whatever it was. Both the value shown and the value posted are compared
    this way, so that saving a form does not rewrite what nobody touched.
    """
    if not isinstance(value, str):
        return value
    if spec["type"] in ONE_LINE_TYPES:
        return one_line(value)
    if spec["type"] == "textarea":
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def read_form(
    entity: EntityDef,
    form: Mapping[str, FormValue],
    *,
    editable: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Turn posted form values into record data for the record service.

    Every editable field is sent (a blank one as null), so a cleared field is
    cleared; a field not in ``editable`` is not sent, so it keeps its value. Text
    that is not a number stays text: the record service then says what is wrong
    with it, in the same words as for the API.
    """
    data: dict[str, Any] = {}
    names = editable if editable is not None else list(entity.fields)
    for name in names:
        spec = entity.fields.get(name)
        if spec is None or spec["type"] == "autonumber":
            continue
        raw = form.get(name, "")
        kind = spec["type"]
        if kind == "multi_picklist":
            data[name] = [item for item in _as_list(raw) if item] or None
            continue
        text = raw[-1] if isinstance(raw, list) and raw else raw
        text = text if isinstance(text, str) else ""
        if kind == "boolean":
            # Anything but the checkbox's own values goes on as text, for the
            # record service to refuse as it would through the API.
            data[name] = BOOLEAN_TEXT.get(text, text)
        elif kind == "textarea":
            data[name] = text.replace("\r\n", "\n") or None
        elif not text.strip():
            data[name] = None
        elif kind == "lookup" and (chosen := _whole(text.strip())) is not None:
            data[name] = chosen
        elif kind in NUMBER_TYPES:
            number = _plain_number(text.strip())
            if kind == "integer" and _WHOLE_NUMBER.fullmatch(number):
                # A whole number written with zero decimals (15.0, 1.5e1) is one
                # a number input of whole numbers takes. One too long to be read
                # as an int goes on as a Decimal, which the record service tells
                # to be out of range, as it tells the API's.
                whole = _whole(number.split(".")[0])
                data[name] = Decimal(number) if whole is None else whole
            else:
                data[name] = number
        else:
            data[name] = text.strip()
    return data


def _whole(text: str) -> int | None:
    """The whole number ``text`` writes, or ``None`` for other text and for one
    too long to be read (see :func:`.int_of_digits`), which goes on as text for
    the record service to refuse in its words."""
    return int_of_digits(text) if _INTEGER.match(text) else None


def _as_list(raw: FormValue) -> list[str]:
    return raw if isinstance(raw, list) else ([raw] if raw else [])


def _choices(spec: Mapping[str, Any], value: FormValue) -> list[Choice]:
    chosen = _as_list(value)
    offered = [
        Choice(
            str(option["value"]),
            str(option.get("label") or option["value"]),
            str(option["value"]) in chosen,
        )
        for option in spec.get("options", ())
    ]
    # A stored value whose option was removed since stays chosen, so that saving
    # the form without touching the field keeps it instead of clearing it.
    known = {choice.value for choice in offered}
    stale = [
        Choice(item, f"{item} (no longer offered)", True)
        for item in chosen
        if item and item not in known
    ]
    return [*offered, *stale]


def _input_attrs(
    spec: Mapping[str, Any], locale: str, value: FormValue = ""
) -> tuple[dict[str, str], str]:
    """The attributes of an ``<input>`` and the unit shown after it.

    :param value: what the input shows. A ``min`` or ``max`` it already breaks
        (the bound was changed after the value was saved) is left out: the
        browser would refuse to send the whole form for a value nobody touched,
        which the save keeps; a value typed in its place is judged by the save.
        Such a bound goes in ``data-min`` or ``data-max`` instead, for the field
        state of the form.
    """
    kind = spec["type"]
    attrs: dict[str, str] = {}
    suffix = ""
    limit = max_length(dict(spec))
    if limit is not None:
        attrs["maxlength"] = str(limit)
    if kind in AUTOCOMPLETE:
        attrs["autocomplete"] = AUTOCOMPLETE[kind]
    if kind in INPUT_MODES:
        attrs["inputmode"] = INPUT_MODES[kind]
    if kind in NUMBER_TYPES:
        scale = 0 if kind == "integer" else precision_scale(dict(spec))[1]
        # The step lets the browser accept exactly the decimals the field keeps.
        attrs["step"] = _step(scale)
        if kind != "integer":
            precision, scale = precision_scale(dict(spec))
            # For field_state.js, which reads a number the field cannot hold
            # as null, as the record service does.
            attrs["data-integer-digits"] = str(precision - scale)
        attrs["inputmode"] = "numeric" if kind == "integer" else "decimal"
        shown = _decimal_or_none(value)
        for key in ("min", "max"):
            if key not in spec:
                continue
            bound = _bound_text(spec[key], scale, lowest=key == "min")
            if shown is not None and (
                shown < Decimal(bound) if key == "min" else shown > Decimal(bound)
            ):
                # field_state.js still reads a number typed past it as null,
                # as the record service does.
                attrs[f"data-{key}"] = bound
                continue
            attrs[key] = bound
        if kind == "percent":
            suffix = "%"
        elif kind == "currency":
            suffix = currency_unit(spec, locale)
    if kind == "datetime":
        attrs["step"] = "1"
        suffix = "UTC"
    return attrs, suffix


def widget_for(
    spec: Mapping[str, Any],
    value: FormValue,
    errors: list[str],
    *,
    search_text: str = "",
    target_label: str = "",
    locale: str = DEFAULT_LOCALE,
    rules: FormRules = NO_FORM_RULES,
) -> Widget:
    """Return the widget of one field showing ``value`` (its form text).

    :param rules: the field's state and conditions; a computed field gets the
        read-only widget, which sends nothing.
    """
    kind = spec["type"]
    name = spec["name"]
    state = rules.state(name)
    always = bool(spec.get("required"))
    common: dict[str, Any] = {
        "name": name,
        "label": str(spec.get("label", name)),
        "type": kind,
        "value": value,
        "required": always or state.required,
        "errors": errors,
        "help_text": str(spec.get("help_text", "")),
        # A field with a problem is shown, hidden or not: the person must see
        # what to fix.
        "visible": state.visible or bool(errors),
        "readonly": state.readonly,
        "always_required": always,
        "conditions": rules.live_conditions(name),
    }
    if kind == "autonumber" or name in rules.computed:
        shown = _readonly_text(spec, value, search_text, locale)
        return Widget(widget="readonly", **{**common, "value": shown})
    if kind == "textarea":
        attrs = {"maxlength": str(max_length(dict(spec))), "rows": "5"}
        return Widget(widget="textarea", attrs=attrs, **common)
    if kind == "boolean":
        return Widget(widget="checkbox", **common)
    if kind in ("picklist", "multi_picklist"):
        widget = "select" if kind == "picklist" else "checkboxes"
        return Widget(widget=widget, choices=_choices(spec, value), **common)
    if kind == "lookup":
        return Widget(
            widget="lookup",
            target=str(spec["target"]),
            target_label=target_label,
            search_text=search_text,
            **common,
        )
    attrs, suffix = _input_attrs(spec, locale, value)
    return Widget(
        widget="input",
        input_type=INPUT_TYPES.get(kind, "text"),
        attrs=attrs,
        suffix=suffix,
        **common,
    )


def _readonly_text(
    spec: Mapping[str, Any], value: FormValue, search_text: str, locale: str
) -> str:
    """What a field shown read-only reads: a choice by its label, a checkbox as
    Yes or No, a lookup by its record's name, money with its symbol and dates
    in the locale's words, as the record page has them."""
    kind = spec["type"]
    chosen = _as_list(value)
    if kind in ("picklist", "multi_picklist"):
        return ", ".join(option_label(spec, item) for item in chosen)
    if kind == "boolean":
        return "Yes" if value else "No"
    if kind == "lookup":
        return search_text
    if not isinstance(value, str):
        return ", ".join(chosen)
    if not value:
        return value
    if kind in NUMBER_TYPES:
        try:
            return format_number(spec, value, locale)
        except ArithmeticError:
            # Not a number (a value sent back with a refused save): shown as
            # it is.
            return value
    if kind == "date":
        return format_date(value, locale)
    if kind == "datetime":
        return format_datetime(value, locale)
    return value


def _lookup_text(
    spec: Mapping[str, Any],
    value: FormValue,
    names: Names,
    typed: Mapping[str, str],
) -> str:
    """What a lookup's text box shows: what was typed, else the chosen name."""
    if spec["name"] in typed:
        return typed[spec["name"]]
    if not isinstance(value, str) or not value:
        return ""
    if ascii_digits(value) and len(value) < 20:
        found = names.get(spec["target"], {}).get(int(value))
        if found:
            return found
    return f"#{value}"


def _settle(section: Section) -> Section:
    """Open a collapsed section that holds a problem, and show a section with a
    problem whatever its ``visible_if``; hide one whose fields are all hidden."""
    widgets = [item for item in section.items if isinstance(item, Widget)]
    if any(widget.errors for widget in widgets):
        return dataclasses.replace(section, collapsed=False, visible=True)
    if len(widgets) == len(section.items) and not any(w.visible for w in widgets):
        return dataclasses.replace(section, visible=False)
    return section


def _open_problems(tabs: list[Tab]) -> list[Tab]:
    """Count each tab's problems, and open collapsed sections that hold one."""

    def problems(section: Section) -> int:
        return sum(len(w.errors) for w in section.items if isinstance(w, Widget))

    found = []
    for tab in tabs:
        sections = [_settle(section) for section in tab.sections]
        count = sum(problems(section) for section in sections)
        found.append(dataclasses.replace(tab, sections=sections, errors=count))
    return found


def form_page(
    entity: EntityDef,
    layout: Mapping[str, Any],
    values: Mapping[str, FormValue],
    errors: Mapping[str, list[str]],
    names: Names,
    links: Links,
    catalog_labels: Callable[[str], str],
    *,
    record: Mapping[str, Any] | None = None,
    typed: Mapping[str, str] | None = None,
    locale: str = DEFAULT_LOCALE,
    rules: FormRules = NO_FORM_RULES,
) -> FormPage:
    """Build a create or edit form.

    :param values: what each widget shows (a record's values, or what was posted).
    :param errors: messages per field name; ``record`` for the record as a whole.
    :param names: display names of the records lookups point to.
    :param catalog_labels: an entity name's label, for lookup placeholders.
    :param record: the stored record when editing; its version goes with the form.
    :param typed: what was typed in each lookup's text box, kept as typed.
    :param rules: field state as the server decided it, and what the browser
        needs to decide it again.
    """
    widgets: list[Widget] = []
    typed = typed or {}

    def build(item: Mapping[str, Any]) -> Any:
        spec = entity.fields.get(item.get("field", ""))
        if spec is None:
            return None
        computed = spec["type"] == "autonumber" or spec["name"] in rules.computed
        if computed and record is None:
            # Numbered or computed when saved: nothing to show or type before.
            return None
        value = values.get(spec["name"], "")
        widget = widget_for(
            spec,
            value,
            list(errors.get(spec["name"], [])),
            search_text=(
                _lookup_text(spec, value, names, typed)
                if spec["type"] == "lookup"
                else ""
            ),
            target_label=catalog_labels(spec["target"]) if "target" in spec else "",
            locale=locale,
            rules=rules,
        )
        widgets.append(widget)
        return widget

    tabs = _open_problems(
        sections_of(layout, build, shown=rules.sections, fixed=rules.fixed_sections)
    )
    placed = {widget.name for widget in widgets}
    summary = [
        (widget.input_id, widget.label, message)
        for widget in widgets
        for message in widget.errors
    ]
    # A field the layout leaves out can still have a problem (a required field
    # added after the layout was made): it goes to the summary by its label.
    unplaced = [
        f"{entity.fields[name].get('label', name)}: {message}"
        for name, messages in errors.items()
        if name in entity.fields and name not in placed
        for message in messages
    ]
    if record is not None:
        title = title_of(entity, record)
        record_id: int | None = int(record["id"])
        version: int | None = int(record.get("version") or 1)
        cancel = links.record(entity.name, int(record["id"]))
    else:
        title = f"New {entity.label}"
        record_id = version = None
        cancel = links.list(entity.name)
    return FormPage(
        entity=entity.name,
        entity_label=entity.label,
        record_id=record_id,
        title=title,
        version=version,
        tabs=tabs,
        record_errors=[*errors.get("record", ()), *unplaced],
        summary=summary,
        cancel_href=cancel,
        rules_context=rules.context,
        shown_fields=" ".join(
            f"{entity.fields[widget.name].get('id', '')}:{widget.name}"
            for widget in widgets
        ),
    )

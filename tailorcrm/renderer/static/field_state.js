/*
 * Tailor CRM: field state while a form is being filled in.
 *
 * The server renders every field as the rules judge it: hidden while its
 * visible_if (or its layout section's) is false, marked required while its
 * required_if is true, read-only while its readonly_if is true for the record as
 * stored. This file evaluates visible_if and required_if again on every change,
 * with the same conditions and the same evaluator of the language (rules.js), so
 * that choosing a stage shows or hides the fields that depend on it at once.
 * readonly_if is left to the server: it is judged on the record as stored, which
 * does not change while the form is open. The server always decides; a save runs
 * every rule again, and this file only helps.
 *
 * The form carries data-field-state: the record as conditions read it (system
 * columns, computed fields, the related records behind lookups) and $user. Each
 * field carries its type (data-type; none for fields the form does not send) and
 * its conditions as JSON (data-visible-if, data-required-if); a section may carry
 * its own data-visible-if. After each change the form sends the event
 * "tailor:sections", on which app.js offers only the tabs left with a section in
 * sight.
 *
 * Values are read as the form would send them (FormData, hidden fields included)
 * and typed as the record service types them: blank is null, numbers of decimal
 * fields are exact decimals, dates and datetimes are date values, a checkbox is a
 * boolean, a multi-picklist the list of chosen values. A field that readonly_if
 * locks reads as the server read it (as stored), and so does one that still
 * holds what the server rendered in it (a date and time saved with a fraction
 * of a second, which its input shows to the second). A lookup reads as the
 * related record the server loaded while it still points at that record. A
 * record chosen since is known by its id only until the server says more: when
 * a condition reads another of its fields, the form asks for it (GET
 * /app/<entity>/related?field=&id=, the record as the conditions read it) and
 * judges again with the answer. Until then, or when the answer is the id alone
 * (a record this person cannot read), the condition gives null: it shows the
 * field and does not require it, and the save decides with the real values. A name
 * typed and not chosen is a record that is there, and of which nothing is known.
 *
 * Progressive enhancement only: without this file the form is what the server
 * rendered, and it saves the same.
 */
(function () {
  "use strict";

  var Rules = window.TailorRules;
  var INTEGER = /^[+-]?[0-9]+$/;
  // What the record service takes as a decimal: written out, without an
  // exponent. A number typed with one (1e3) is written out first, as the form's
  // save writes it out (see plainNumber).
  var DECIMAL_TEXT = /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$/;
  var EXPONENT_NUMBER = /^([+-]?)([0-9]*)(?:\.([0-9]*))?[eE]([+-]?[0-9]{1,9})$/;
  var MAX_EXPONENT = 1000;
  // A whole number as a number input may hold it: 15 or 15.0.
  var WHOLE_NUMBER = /^[+-]?[0-9]+(\.0*)?$/;
  var INTEGER_LIMIT = BigInt("9223372036854775807");
  var FALSE_TEXTS = ["", "off", "false"];
  // The spaces of Python's regular expressions (\s is str.isspace()): a next
  // line (U+0085) and the separators U+001C to U+001F are, a byte order mark
  // (U+FEFF) is not, where JavaScript's \s has it the other way round.
  var SPACE = "[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
  var NOT_SPACE_AT = "[^@" + SPACE.slice(1);
  var NOT_SPACE_AT_DOT = "[^@." + SPACE.slice(1);
  // What the record service takes as an email address and a phone number (see
  // tailorcrm/metadata/_fields.py), and as a web address (webAddress below);
  // other text in such a field reads as null, as the server reads it, and the
  // save says what is wrong.
  var TEXT_CHECKS = {
    email: new RegExp("^" + NOT_SPACE_AT + "+@" + NOT_SPACE_AT_DOT + "+(\\." + NOT_SPACE_AT_DOT + "+)+$"),
    phone: new RegExp("^\\+?\\(?[0-9][0-9 ().\\-/]*(" + SPACE + "*(x|ext\\.?)" + SPACE + "*[0-9]+)?$", "i")
  };
  // Text the record service refuses in any text field: the NUL character, half
  // of a UTF-16 pair.
  var UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
  var TEXT_TYPES = ["text", "textarea", "email", "phone", "url"];
  var HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
  var IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/;
  // The lookup's text box, sent beside the id (see lookup.js).
  var SEARCH_SUFFIX = "__search";
  var hasOwn = Object.prototype.hasOwnProperty;

  function parse(text) {
    if (text === null) {
      return undefined;
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      return undefined;
    }
  }

  // The server tags the values that JSON cannot type: {"$decimal": "12.50"},
  // {"$date": "2024-05-31"}, {"$datetime": "2024-05-31T14:30:00"}.
  function decode(value) {
    if (Array.isArray(value)) {
      return value.map(decode);
    }
    if (value === null || typeof value !== "object") {
      return value;
    }
    try {
      if (hasOwn.call(value, "$decimal")) {
        return Rules.decimal(value.$decimal);
      }
      if (hasOwn.call(value, "$date")) {
        return Rules.date(value.$date);
      }
      if (hasOwn.call(value, "$datetime")) {
        return Rules.datetime(value.$datetime);
      }
    } catch (error) {
      return null;
    }
    var result = {};
    Object.keys(value).forEach(function (key) {
      result[key] = decode(value[key]);
    });
    return result;
  }

  // A related record the browser knows in part: one chosen in a lookup since
  // the page was rendered (its id alone), or one whose name was typed and not
  // chosen (nothing: the save looks it up by the name). Reading any other field
  // of it is noted (see judge), since null there would be a guess: "account.
  // industry is not retail" is true of null, and would require a field that the
  // save may not require.
  var unknownRead = false;
  // The records chosen since that a condition read a field of, by lookup, while
  // the form was last judged: the form asks the server for them (see setup).
  var missing = {};

  // lookup: the lookup a record chosen since and known by its id alone was
  // chosen in; none for what the server answered of one.
  function partlyKnown(known, lookup) {
    return new Proxy(known, {
      getOwnPropertyDescriptor: function (target, key) {
        if (!hasOwn.call(target, key)) {
          unknownRead = true;
          if (lookup) {
            missing[lookup] = target.id;
          }
        }
        return Object.getOwnPropertyDescriptor(target, key);
      }
    });
  }

  // A condition's value on the record; null when it read a field of a record
  // chosen since, whose value only the save knows.
  function judge(rule, record) {
    unknownRead = false;
    var value = rule(record);
    return unknownRead ? null : value;
  }

  // Whether a number typed in a field's input is one the field holds, as the
  // record service checks it: a whole number within 64 bits, or a decimal with
  // at most the field's decimals (its step) and digits before the point
  // (data-integer-digits), and within the input's min and max. One it refuses
  // reads as null, as the server reads it; the save says what is wrong.
  function fits(control, type, text) {
    if (!control) {
      return true;
    }
    if (type === "integer") {
      var whole = BigInt(text);
      if (whole > INTEGER_LIMIT || -whole > INTEGER_LIMIT) {
        return false;
      }
    } else {
      var parts = text.replace(/^[+-]/, "").split(".");
      var step = control.getAttribute("step") || "1";
      var scale = step.indexOf(".") === -1 ? 0 : step.length - step.indexOf(".") - 1;
      var digits = control.getAttribute("data-integer-digits");
      if (!DECIMAL_TEXT.test(text) || (parts[1] || "").replace(/0+$/, "").length > scale ||
          (digits !== null && parts[0].replace(/^0+/, "").length > Number(digits))) {
        return false;
      }
    }
    var number = Number(text);
    // A bound the value shown already breaks is not the input's own (the
    // browser would refuse to send the form), but a number typed is held to it.
    var low = bound(control, "min");
    var high = bound(control, "max");
    return !(low !== null && number < Number(low)) && !(high !== null && number > Number(high));
  }

  function bound(control, name) {
    var found = control.getAttribute(name);
    return found === null ? control.getAttribute("data-" + name) : found;
  }

  // A number typed with an exponent, written out exactly (1.5e3 is 1500), as
  // the save writes it out (_plain_number in tailorcrm/renderer/_forms.py);
  // other text as it is.
  function plainNumber(text) {
    var found = EXPONENT_NUMBER.exec(text);
    if (!found) {
      return text;
    }
    var whole = found[2];
    var fraction = found[3] || "";
    var shift = Number(found[4]);
    if (!(whole || fraction) || Math.abs(shift) > MAX_EXPONENT) {
      return text;
    }
    var digits = whole + fraction;
    var point = whole.length + shift;
    if (point <= 0) {
      digits = "0".repeat(1 - point) + digits;
      point = 1;
    } else if (point > digits.length) {
      digits += "0".repeat(point - digits.length);
    }
    var head = digits.slice(0, point).replace(/^0+/, "") || "0";
    var rest = digits.slice(point);
    return found[1] + head + (rest ? "." + rest : "");
  }

  // What the server rendered in a field's controls, as the form would send it
  // (their values as the page came, not as typed since): a value it shows as
  // stored reads as stored, as the save keeps it (see unchanged_fields in
  // tailorcrm/platform/web/_field_state.py). The input shows a date and time
  // to the second and a number within the field's limits of today, where the
  // record holds 09:00:00.5, or 150 saved before the limit was lowered.
  function rendered(form, name) {
    var values = [];
    Array.prototype.forEach.call(form.elements, function (control) {
      if (control.name !== name || control.disabled) {
        return;
      }
      if (control.type === "checkbox" || control.type === "radio") {
        if (control.defaultChecked) {
          values.push(control.value);
        }
      } else if (control.tagName === "SELECT") {
        var chosen = Array.prototype.filter.call(control.options, function (option) {
          return option.defaultSelected;
        });
        if (!chosen.length && !control.multiple && control.options.length) {
          chosen = [control.options[0]];
        }
        chosen.forEach(function (option) {
          values.push(option.value);
        });
      } else if (control.tagName === "INPUT") {
        values.push(cleaned(control, control.defaultValue));
      } else if (control.tagName === "TEXTAREA") {
        values.push(control.defaultValue);
      }
    });
    return values;
  }

  // A value as an input of control's type cleans it: 09:00:00 shows, and is
  // sent, as 09:00.
  function cleaned(control, text) {
    var probe = document.createElement("input");
    probe.type = control.type;
    probe.value = text;
    return probe.value;
  }

  // What the form showed for the stored record (before), for a field that
  // holds other text after a refused save, as its controls would send it.
  function shownBefore(field, before) {
    var shown = Array.isArray(before.shown) ? before.shown.slice() : [before.shown];
    var control = field.control;
    if (control && control.tagName === "INPUT" && !Array.isArray(before.shown)) {
      shown = [cleaned(control, before.shown)];
    }
    return shown;
  }

  function sameValues(posted, shown, anyOrder) {
    var normal = function (value) {
      return String(value).replace(/\r\n?/g, "\n");
    };
    var left = posted.map(normal);
    var right = shown.map(normal);
    if (anyOrder) {
      // The choices of a multi-picklist, without the blank sent beside them.
      left = left.filter(Boolean).sort();
      right = right.filter(Boolean).sort();
    }
    return left.length === right.length && left.every(function (value, index) {
      return value === right[index];
    });
  }

  function attempt(convert, text) {
    try {
      return convert(text);
    } catch (error) {
      return null;
    }
  }

  // One field's value from what the form would send for it (every value posted
  // under its name, the last one counting, as on the server). known: what the
  // server rendered for the field; answered: for a lookup, the records chosen
  // in it since that the server was asked about, by id.
  function typed(field, posted, known, answered) {
    var type = field.type;
    if (type === "multi_picklist") {
      var chosen = posted.filter(function (item) {
        return item !== "";
      });
      return chosen.length ? chosen : null;
    }
    var text = posted.length ? String(posted[posted.length - 1]) : "";
    if (type === "boolean") {
      return FALSE_TEXTS.indexOf(text) === -1;
    }
    // Spaces are what Python's str.strip() removes, as the record service
    // strips: a next line (U+0085) is one, a byte order mark (U+FEFF) is not,
    // where the browser's trim() has it the other way round.
    var stripped = Rules.strip(text);
    if (!stripped) {
      // Blank is blank for every type: text of spaces and line breaks only is
      // stored as null.
      return null;
    }
    if (type === "textarea") {
      // A long text keeps its spaces and lines as they are typed.
      var lines = text.replace(/\r\n/g, "\n");
      return holds(field.control, lines) ? lines : null;
    }
    text = stripped;
    switch (type) {
      case "integer":
        text = plainNumber(text);
        if (WHOLE_NUMBER.test(text)) {
          text = text.split(".")[0];
        }
        return INTEGER.test(text) && fits(field.control, type, text) ? Number(text) : null;
      case "decimal":
      case "currency":
      case "percent":
        text = plainNumber(text);
        return fits(field.control, type, text) ? attempt(Rules.decimal, text) : null;
      case "date":
        return attempt(Rules.date, text);
      case "datetime":
        return attempt(Rules.datetime, text);
      case "lookup":
        if (!INTEGER.test(text)) {
          return null;
        }
        var id = Number(text);
        if (known && typeof known === "object" && String(known.id) === String(id)) {
          return known;
        }
        if (answered && hasOwn.call(answered, String(id))) {
          return partlyKnown(answered[String(id)]);
        }
        return partlyKnown({ id: id }, field.name);
      case "url":
        return webAddress(text) && holds(field.control, text) ? text : null;
      default:
        if (TEXT_TYPES.indexOf(type) !== -1 && !holds(field.control, text)) {
          return null;
        }
        return hasOwn.call(TEXT_CHECKS, type) && !TEXT_CHECKS[type].test(text) ? null : text;
    }
  }

  // Whether a text field holds text, as the record service checks it: no NUL
  // or broken character, and no more characters (as Python counts them, by
  // code point) than its maxlength. The input's maxlength keeps what is typed
  // within it, counting UTF-16 units, but not a value stored before the
  // field's limit was lowered, which the person may shorten and still leave
  // too long.
  function holds(control, text) {
    if (UNSTORABLE.test(text)) {
      return false;
    }
    var limit = control ? control.getAttribute("maxlength") : null;
    return limit === null || Array.from(text).length <= Number(limit);
  }

  // Whether text is an IPv4 address as Python's ipaddress reads one: four
  // numbers up to 255, without leading zeros.
  function ipv4(text) {
    var octets = text.split(".");
    return octets.length === 4 && octets.every(function (octet) {
      return IPV4_OCTET.test(octet) && Number(octet) <= 255;
    });
  }

  // Whether text is an IPv6 address as Python's ipaddress reads one: eight
  // groups of up to four hex digits, the last two of which may be an IPv4
  // address, one run of them left out as "::", and a zone after "%".
  function ipv6(text) {
    var zone = text.indexOf("%");
    if (zone !== -1) {
      var scope = text.slice(zone + 1);
      if (!scope || scope.indexOf("%") !== -1) {
        return false;
      }
      text = text.slice(0, zone);
    }
    var parts = text.split(":");
    if (parts.length < 3) {
      return false;
    }
    if (parts[parts.length - 1].indexOf(".") !== -1) {
      if (!ipv4(parts.pop())) {
        return false;
      }
      parts.push("0", "0");
    }
    if (parts.length > 9) {
      return false;
    }
    var skip = -1;
    for (var i = 1; i < parts.length - 1; i += 1) {
      if (!parts[i]) {
        if (skip !== -1) {
          return false;
        }
        skip = i;
      }
    }
    var groups = parts;
    if (skip !== -1) {
      var high = parts.slice(0, skip);
      var low = parts.slice(skip + 1);
      if (!high[0] && high.length) {
        if (high.length !== 1) {
          return false;
        }
        high = [];
      }
      if (!low[low.length - 1] && low.length) {
        if (low.length !== 1) {
          return false;
        }
        low = [];
      }
      if (high.length + low.length > 7) {
        return false;
      }
      groups = high.concat(low);
    } else if (parts.length !== 8) {
      return false;
    }
    return groups.every(function (group) {
      return HEX_GROUP.test(group);
    });
  }

  // Whether text is an http or https address with a host, as the record
  // service reads it with Python's urllib.parse.urlsplit: control characters
  // and spaces before it and tabs and line breaks within it are dropped, and
  // a host in brackets must be an IPv6 address (or an IPvFuture one).
  function webAddress(text) {
    var url = text.replace(/^[\x00-\x20]+/, "").replace(/[\t\r\n]/g, "");
    var found = /^([A-Za-z][A-Za-z0-9+.\-]*):\/\/([^\/?#]*)/.exec(url);
    if (!found || !/^https?$/i.test(found[1]) || !found[2]) {
      return false;
    }
    var host = found[2];
    var opens = host.indexOf("[") !== -1;
    if (opens !== (host.indexOf("]") !== -1)) {
      return false;
    }
    if (opens) {
      // From the first "[" to the first "]" after it, or to the end.
      var inside = host.slice(host.indexOf("[") + 1);
      inside = inside.indexOf("]") === -1 ? inside : inside.slice(0, inside.indexOf("]"));
      var future = /^v[0-9a-fA-F]+\.[\s\S]+$/;
      if (inside.charAt(0) === "v" ? !future.test(inside) : !ipv6(inside)) {
        return false;
      }
    }
    // A host that compatibility normalization turns into one holding a
    // delimiter ("\u2100" is "a/c") is refused.
    var bare = host.replace(/[@:#?]/g, "");
    var normal = bare.normalize("NFKC");
    return normal === bare || !/[\/?#@:]/.test(normal);
  }

  // A condition from a data attribute, compiled once; null when there is none.
  // One that does not compile (it would not have been saved) leaves the field as
  // the server rendered it.
  function compiled(element, attribute) {
    var condition = parse(element.getAttribute(attribute));
    if (condition === undefined) {
      return null;
    }
    try {
      return Rules.compile(condition);
    } catch (error) {
      return false;
    }
  }

  // As on the server: shown unless the condition is false; null shows.
  function shows(rule, record) {
    if (!rule) {
      return true;
    }
    var value = judge(rule, record);
    return value === null || value === undefined || Rules.truthy(value);
  }

  function setup(form) {
    var context = decode(parse(form.getAttribute("data-field-state")) || {});
    var base = context.record || {};
    var user = context.user || null;
    // On a form redrawn after a refused save: the fields that hold other than
    // what the form first showed for the stored record, with that text and the
    // stored value. Typed back, the save keeps the stored value.
    var stored = context.stored || {};
    // Where to ask for a record chosen in a lookup since the page came, and
    // what was asked and answered (lookup name -> id -> record).
    var relatedUrl = form.getAttribute("data-related-url");
    var asked = {};
    var answered = {};

    var sections = Array.prototype.map.call(form.querySelectorAll("section.section"), function (element) {
      // A condition that reads what this person cannot see is not in the page:
      // the server judged it (data-state-fixed says how), and its fields follow
      // their own conditions within it, as the save judges them.
      var fixed = element.hasAttribute("data-state-fixed");
      var rule = fixed ? false : compiled(element, "data-visible-if");
      return {
        element: element,
        rule: rule,
        fixed: fixed,
        fixedShown: element.getAttribute("data-state-fixed") !== "hidden",
        fields: [],
        shown: true
      };
    });

    function sectionOf(box) {
      var element = box.closest("section.section");
      for (var i = 0; i < sections.length; i += 1) {
        if (sections[i].element === element) {
          return sections[i];
        }
      }
      return null;
    }

    var fields = Array.prototype.map.call(form.querySelectorAll("[data-field]"), function (box) {
      var name = box.getAttribute("data-field");
      var field = {
        box: box,
        name: name,
        type: box.getAttribute("data-type"),
        label: box.getAttribute("data-label") || name,
        always: box.hasAttribute("data-always-required"),
        // Its conditions read what this person cannot see: the server decided
        // what they make of the field (data-state-fixed: whether they show it
        // and require it), which its section's state still bounds.
        fixed: box.hasAttribute("data-state-fixed"),
        fixedState: parse(box.getAttribute("data-state-fixed")),
        visibleIf: compiled(box, "data-visible-if"),
        requiredIf: compiled(box, "data-required-if"),
        mark: box.querySelector("[data-required-mark]"),
        control: document.getElementById("f-" + name),
        section: sectionOf(box),
        visible: !box.hidden,
        shown: rendered(form, name),
        before: hasOwn.call(stored, name) ? stored[name] : null
      };
      if (field.before) {
        field.before = { shown: shownBefore(field, field.before), value: field.before.value };
      }
      // A control that readonly_if locks cannot change while the form is open,
      // and its save keeps the stored value: it reads as the server read it (a
      // blank boolean stays blank, though its box shows unticked). Only a field
      // the form sends (one with a type) is so locked: one the person's roles
      // make read-only is shown and never sent, and required_if still asks for
      // it, as the save does (RecordRules.validate spares readonly_if alone).
      field.locked = Boolean(field.type && field.control &&
        (field.control.disabled || field.control.readOnly));
      if (field.section) {
        field.section.fields.push(field);
      }
      return field;
    });

    function record() {
      var posted = new FormData(form);
      var data = Object.assign({}, base);
      fields.forEach(function (field) {
        // Fields the form does not send (computed, numbered) and locked ones keep
        // the server's value.
        var values = posted.getAll(field.name);
        var anyOrder = field.type === "multi_picklist";
        if (field.type && !field.locked && field.type !== "lookup" &&
            hasOwn.call(base, field.name) && sameValues(values, field.shown, anyOrder)) {
          // Shown as the server read it and not changed since (a lookup's
          // hidden id changes its rendered value too; typed knows its record).
          data[field.name] = base[field.name];
        } else if (field.type && !field.locked && field.before &&
            sameValues(values, field.before.shown, anyOrder)) {
          // What the form first showed for the stored record, typed back.
          data[field.name] = field.before.value;
        } else if (field.type && !field.locked) {
          data[field.name] = typed(field, values, base[field.name], answered[field.name]);
          if (field.type === "lookup" && data[field.name] === null &&
              Rules.strip(String(posted.get(field.name + SEARCH_SUFFIX) || ""))) {
            // A name typed and not chosen: the save looks the record up by it
            // (and refuses the name if no record has it).
            data[field.name] = partlyKnown({});
          }
        }
      });
      data.$user = user;
      return data;
    }

    function hasError(field) {
      return field.box.classList.contains("has-error");
    }

    // A section whose condition does not compile (it would not have been
    // saved) leaves itself and its fields as the server rendered them.
    function frozen(section) {
      return section.rule === false && !section.fixed;
    }

    function applyField(field, data) {
      var own = field.fixedState;
      if (field.fixed && !(own && typeof own === "object")) {
        return;
      }
      if (field.section && frozen(field.section)) {
        return;
      }
      if (!field.fixed && (field.visibleIf === false || field.requiredIf === false)) {
        return;
      }
      var sectionShown = !field.section || field.section.shown;
      var visible;
      var required;
      if (field.fixed) {
        visible = sectionShown && own.visible === true;
        required = field.always || (!field.locked && visible && own.required === true);
      } else {
        visible = sectionShown && shows(field.visibleIf, data);
        // A locked field is not asked for: this save cannot fill it (as the
        // server judges it, see RecordRules.validate).
        required = field.always || (!field.locked && visible &&
          field.requiredIf !== null && Rules.truthy(judge(field.requiredIf, data)));
      }
      // A field with a problem stays in sight until the next save: the person
      // must see what to fix.
      field.visible = visible || hasError(field);
      field.required = required;
      field.box.hidden = !field.visible;
      if (field.mark) {
        field.mark.hidden = !required;
      }
      var control = field.control;
      if (control && control.matches("input:not([type=checkbox]):not([type=hidden]), select, textarea")) {
        if (required) {
          control.setAttribute("aria-required", "true");
        } else {
          control.removeAttribute("aria-required");
        }
      }
    }

    function applySection(section) {
      if (frozen(section)) {
        return;
      }
      var problems = section.fields.some(hasError);
      var onlyFields = !section.element.querySelector(".related");
      var anyShown = section.fields.some(function (field) {
        return field.visible;
      });
      var empty = onlyFields && section.fields.length > 0 && !anyShown;
      section.element.hidden = !problems && (!section.shown || empty);
    }

    // A condition read a field of a record chosen since: ask the server for
    // that record as the conditions read it (what the page would have carried
    // had it come pointing at it), and judge again with it. Until the answer
    // comes, and for what it does not hold (all but the id of a record this
    // person cannot read), the field reads as unknown, and the save decides.
    function askForChosen(wanted) {
      if (!relatedUrl || !window.fetch) {
        return;
      }
      Object.keys(wanted).forEach(function (lookup) {
        var id = wanted[lookup];
        var key = lookup + "\n" + id;
        if (typeof id !== "number" || hasOwn.call(asked, key)) {
          return;
        }
        asked[key] = true;
        var query = new URLSearchParams({ field: lookup, id: String(id) });
        fetch(relatedUrl + "?" + query.toString(), {
          credentials: "same-origin",
          headers: { Accept: "application/json" }
        })
          .then(function (response) {
            return response.ok ? response.json() : null;
          })
          .then(function (found) {
            if (found && typeof found === "object" && !Array.isArray(found)) {
              if (!hasOwn.call(answered, lookup)) {
                answered[lookup] = {};
              }
              answered[lookup][String(id)] = decode(found);
              update();
            }
          })
          .catch(function () {
            // Nothing is lost: the save decides.
          });
      });
    }

    // What a change of a value showed, hid or made required is said to screen
    // readers (the boxes change out of their sight), once the page has settled.
    var status = document.createElement("p");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    status.setAttribute("data-state-status", "");
    form.appendChild(status);
    var settled = false;

    function states() {
      return fields.map(function (field) {
        return { visible: field.visible, required: Boolean(field.required) };
      });
    }

    function announce(before, data) {
      var shown = [];
      var hidden = [];
      var required = [];
      var optional = [];
      fields.forEach(function (field, index) {
        var was = before[index];
        var now = field.visible;
        var label = field.label + (now && field.required ? " (required)" : "");
        if (now && !was.visible) {
          shown.push(label);
        } else if (!now && was.visible) {
          hidden.push(field.label);
        } else if (now && field.required && !was.required) {
          required.push(field.label);
        } else if (now && !field.required && was.required) {
          optional.push(field.label);
        }
        if (now && field.required && !was.required && Rules.isBlank(data[field.name])) {
          // A field to fill in now is not left inside a closed section.
          var details = field.box.closest("details");
          if (details && !details.open) {
            details.open = true;
          }
        }
      });
      var said = [];
      [["Shown: ", shown], ["Hidden: ", hidden], ["Now required: ", required],
        ["No longer required: ", optional]].forEach(function (part) {
        if (part[1].length) {
          said.push(part[0] + part[1].join(", ") + ".");
        }
      });
      if (said.length) {
        status.textContent = said.join(" ");
      }
    }

    function update() {
      var before = states();
      missing = {};
      var data = record();
      sections.forEach(function (section) {
        if (section.fixed) {
          section.shown = section.fixedShown;
        } else {
          section.shown = section.rule === false || shows(section.rule, data);
        }
      });
      fields.forEach(function (field) {
        applyField(field, data);
      });
      sections.forEach(applySection);
      if (settled) {
        announce(before, data);
      }
      settled = true;
      // The tabs (app.js) offer only those left with a section in sight.
      form.dispatchEvent(new Event("tailor:sections", { bubbles: true }));
      askForChosen(missing);
    }

    form.addEventListener("input", update);
    form.addEventListener("change", update);
    // The page cache may bring the form back with the values someone left in it.
    window.addEventListener("pageshow", update);
    update();
  }

  if (!Rules) {
    return;
  }
  Array.prototype.forEach.call(document.querySelectorAll("form[data-field-state]"), setup);
})();

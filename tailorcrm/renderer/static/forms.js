/*
 * Tailor CRM: behaviour of record forms.
 *
 * Progressive enhancement only: forms work without this file. app.js follows the
 * error summary's links to the fields and switches tabs; this file makes sure a
 * form that comes back with problems starts on its summary, and adds what only
 * forms need.
 */
(function () {
  "use strict";

  // What a number, date or time input holds that the browser cannot read
  // ("5e", 31 February): the browser sends it as blank text, and the save would
  // clear the field without a word. The person is told instead, as the server
  // tells of a value it refuses, and the form is not sent.
  var UNREADABLE = {
    number: "Enter a number.",
    date: "Enter a whole date that exists.",
    "datetime-local": "Enter a whole date and time that exist."
  };
  var CLIENT_MARK = "data-unreadable";

  function clearUnreadable(form) {
    Array.prototype.forEach.call(form.querySelectorAll("[" + CLIENT_MARK + "]"), function (node) {
      if (node.matches("input")) {
        node.removeAttribute(CLIENT_MARK);
        node.removeAttribute("aria-invalid");
        node.setAttribute("aria-describedby", node.getAttribute("data-described-before") || "");
        node.removeAttribute("data-described-before");
        if (!node.getAttribute("aria-describedby")) {
          node.removeAttribute("aria-describedby");
        }
        node.closest(".field").classList.remove("has-error");
      } else {
        node.remove();
      }
    });
  }

  function markUnreadable(input, message) {
    var field = input.closest(".field");
    var list = document.createElement("ul");
    var item = document.createElement("li");
    var hidden = document.createElement("span");
    list.className = "field-errors";
    list.id = input.id + "-unreadable";
    list.setAttribute(CLIENT_MARK, "");
    hidden.className = "visually-hidden";
    hidden.textContent = "Error: ";
    item.append(hidden, message);
    list.appendChild(item);
    field.appendChild(list);
    field.classList.add("has-error");
    input.setAttribute(CLIENT_MARK, "");
    input.setAttribute("data-described-before", input.getAttribute("aria-describedby") || "");
    input.setAttribute("aria-describedby", ((input.getAttribute("aria-describedby") || "") + " " + list.id).trim());
    input.setAttribute("aria-invalid", "true");
  }

  // Whether every value can be sent as typed; if not, each unreadable field says
  // so, and a summary of them (its links lead to the fields, see app.js) takes
  // focus.
  function readable(form) {
    clearUnreadable(form);
    var found = Array.prototype.filter.call(form.querySelectorAll("input"), function (input) {
      return input.name && input.validity && input.validity.badInput && hasOwn(UNREADABLE, input.type);
    });
    if (!found.length) {
      return true;
    }
    var summary = document.createElement("div");
    var title = document.createElement("h2");
    var list = document.createElement("ul");
    summary.className = "error-summary";
    summary.setAttribute("role", "alert");
    summary.setAttribute("tabindex", "-1");
    summary.setAttribute(CLIENT_MARK, "");
    title.textContent = found.length === 1 ?
      "1 value could not be read; nothing was saved" :
      found.length + " values could not be read; nothing was saved";
    found.forEach(function (input) {
      var whole = input.closest("[data-type]");
      var message = whole && whole.getAttribute("data-type") === "integer" ?
        "Enter a whole number." : UNREADABLE[input.type];
      var label = form.querySelector('label[for="' + input.id + '"]');
      var link = document.createElement("a");
      var item = document.createElement("li");
      link.href = "#" + input.id;
      link.textContent = (label ? label.firstChild.textContent.trim() + ": " : "") + message;
      item.appendChild(link);
      list.appendChild(item);
      markUnreadable(input, message);
    });
    summary.append(title, list);
    form.parentNode.insertBefore(summary, form);
    // Field state (field_state.js) shows a field with a problem whatever its
    // visible_if, and its section and tab with it, so that the links lead to it.
    form.dispatchEvent(new Event("input", { bubbles: true }));
    summary.focus();
    return false;
  }

  function hasOwn(object, key) {
    return Object.prototype.hasOwnProperty.call(object, key);
  }

  // A second click on Save while the first is on its way would create the record
  // twice; the page cache may bring the form back, so pageshow resets it.
  function guardDoubleSubmit(form) {
    var sending = false;
    form.addEventListener("submit", function (event) {
      if (sending || !readable(form)) {
        event.preventDefault();
        return;
      }
      sending = true;
      form.setAttribute("aria-busy", "true");
    });
    window.addEventListener("pageshow", function () {
      sending = false;
      form.removeAttribute("aria-busy");
    });
  }

  // The types of field whose inputs can show what the server answers for a
  // default; a lookup keeps what it shows (its box shows a record's name, which
  // the answer does not hold), and the save still works its default out.
  var FOLLOWING_TYPES = ["text", "email", "phone", "url", "integer", "decimal",
    "currency", "percent", "date", "datetime", "textarea", "picklist", "boolean",
    "multi_picklist"];

  // A date and time on the minute as the server writes it: a datetime-local
  // input shows 09:00:00 as "09:00" (as_shown in tailorcrm/renderer/_forms.py).
  var MINUTE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$/;

  function asShown(control, text) {
    return control.type === "datetime-local" && MINUTE.test(text) ? text + ":00" : text;
  }

  // The boxes of a multi-picklist, each with its choice as its value.
  function choiceBoxes(box) {
    return Array.prototype.slice.call(box.querySelectorAll('input[type="checkbox"][value]'));
  }

  // What a field's inputs show, written as the server writes a default: "on" or
  // "" for a checkbox, the chosen values (sorted) of a multi-picklist, text for
  // the others.
  function shownValue(box, control) {
    var type = box.getAttribute("data-type");
    if (type === "boolean") {
      return control.checked ? "on" : "";
    }
    if (type === "multi_picklist") {
      return choiceBoxes(box).filter(function (input) {
        return input.checked;
      }).map(function (input) {
        return input.value;
      }).sort();
    }
    return asShown(control, control.value);
  }

  function showValue(box, control, value) {
    var type = box.getAttribute("data-type");
    if (type === "boolean") {
      control.checked = value === "on";
    } else if (type === "multi_picklist") {
      choiceBoxes(box).forEach(function (input) {
        input.checked = value.indexOf(input.value) !== -1;
      });
    } else {
      control.value = value;
    }
  }

  function sameValue(one, other) {
    if (Array.isArray(one) && Array.isArray(other)) {
      return JSON.stringify(one.slice().sort()) === JSON.stringify(other.slice().sort());
    }
    return one === other;
  }

  // Whether the server's answer for a field is of the shape its inputs show.
  function fitting(box, value) {
    if (box.getAttribute("data-type") !== "multi_picklist") {
      return typeof value === "string";
    }
    return Array.isArray(value) && value.every(function (item) {
      return typeof item === "string";
    });
  }

  function parsed(text) {
    try {
      var value = JSON.parse(text);
      return value && typeof value === "object" ? value : {};
    } catch (error) {
      return {};
    }
  }

  // A new form carries what default rules filled in (_defaulted). One nobody
  // changed follows the fields it reads (a default that reads account.industry,
  // shown before an account was picked): after each change the server works
  // the defaults out again from what the form holds, and each input still
  // showing its default shows the new one. The save decides in any case.
  function followDefaults(form) {
    var carrier = form.querySelector('input[name="_defaulted"]');
    var action = form.getAttribute("data-defaults-action");
    if (!carrier || !action || !window.fetch) {
      return;
    }
    var sequence = 0;

    // What the inputs showed as defaults, kept with the page's place in the
    // history: Back and Forward bring the inputs' values back, but neither the
    // carrier (a hidden input) nor the lookups, so a default followed since the
    // page came would read as changed by the person, and follow no more.
    function keep(shown) {
      if (history.replaceState) {
        var state = history.state && typeof history.state === "object" ? history.state : {};
        history.replaceState(Object.assign({}, state, { tailorDefaulted: shown }), "");
      }
    }

    // A default the browser brought back as it was last shown is still a default
    // nobody changed; true when there is one.
    function restore() {
      var kept = history.state && history.state.tailorDefaulted;
      if (!kept || typeof kept !== "object") {
        return false;
      }
      var shown = parsed(carrier.value);
      var restored = false;
      Object.keys(shown).forEach(function (name) {
        var box = form.querySelector('[data-field="' + CSS.escape(name) + '"]');
        var control = document.getElementById("f-" + name);
        if (!box || !control || !hasOwn(kept, name)) {
          return;
        }
        var now = shownValue(box, control);
        if (!sameValue(now, shown[name]) && sameValue(now, kept[name])) {
          shown[name] = kept[name];
          restored = true;
        }
      });
      if (restored) {
        carrier.value = JSON.stringify(shown);
      }
      return restored;
    }

    function show(filled) {
      var shown = parsed(carrier.value);
      var moved = false;
      Object.keys(filled).forEach(function (name) {
        var box = form.querySelector('[data-field="' + CSS.escape(name) + '"]');
        var control = document.getElementById("f-" + name);
        if (!box || !control || !hasOwn(shown, name) ||
            FOLLOWING_TYPES.indexOf(box.getAttribute("data-type")) === -1 ||
            !fitting(box, filled[name]) || !sameValue(shownValue(box, control), shown[name])) {
          return;
        }
        if (!sameValue(shownValue(box, control), filled[name])) {
          showValue(box, control, filled[name]);
          moved = true;
        }
        // What the inputs show (a choice that is not offered shows blank), so
        // that the save knows it as the default nobody changed.
        shown[name] = shownValue(box, control);
      });
      carrier.value = JSON.stringify(shown);
      keep(shown);
      if (moved) {
        // Field state (field_state.js) judges the new values.
        form.dispatchEvent(new Event("input", { bubbles: true }));
      }
    }

    function ask() {
      sequence += 1;
      var mine = sequence;
      fetch(action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (filled) {
          // Only the answer to the last change counts.
          if (filled && mine === sequence) {
            show(filled);
          }
        })
        .catch(function () {
          // Nothing is lost: the save works the defaults out.
        });
    }

    form.addEventListener("change", ask);
    // The browser brings the inputs' values back by the time the page shows;
    // the defaults brought back follow the form as it came back (its lookups
    // blank again).
    window.addEventListener("pageshow", function () {
      if (restore()) {
        ask();
      }
    });
  }

  // Turning the mouse wheel over a focused number field changes its value in
  // most browsers; people mean to scroll the page.
  function keepNumbersOnWheel(event) {
    var target = event.target;
    if (target instanceof HTMLInputElement && target.type === "number" &&
        document.activeElement === target) {
      target.blur();
    }
  }

  // The summary is read out first (role=alert) and its links lead to the
  // fields. app.js focuses whatever is marked [data-focus]; this covers a page
  // where it did not. Scripts run one after another and a person may act in
  // between: focus they moved elsewhere (a summary link followed) stays there.
  function focusSummary() {
    var summary = document.querySelector(".error-summary[data-focus]");
    var active = document.activeElement;
    if (summary && (!active || active === document.body)) {
      summary.focus();
    }
  }

  // With scripts, these checks speak for the browser's own, whose bubbles
  // vanish and are not read out; without scripts the browser's checks stay, and
  // keep a value it cannot read from being sent as blank.
  Array.prototype.forEach.call(
    document.querySelectorAll("form[data-record-form]"), function (form) {
      form.noValidate = true;
      guardDoubleSubmit(form);
      followDefaults(form);
    }
  );
  focusSummary();
  document.addEventListener("wheel", keepNumbersOnWheel, { passive: true });
})();

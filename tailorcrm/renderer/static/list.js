/*
 * Tailor CRM: list pages and the import page.
 *
 * Progressive enhancement only: the filter builder is a plain GET form and the
 * server checks whatever it sends. Here, picking a field narrows the conditions
 * to those of its type and gives the value the right input (a date picker, the
 * picklist's values, a type-ahead of record names for a lookup). On the import
 * page, choosing a field for one column frees it from any other column, and a
 * form sent once is not sent again by a second click while the first runs (the
 * server refuses a second import of a file all the same). A table that fits its
 * frame is marked so, for list.css to let its headers stay in view.
 */
(function () {
  "use strict";

  function each(selector, callback, scope) {
    Array.prototype.forEach.call((scope || document).querySelectorAll(selector), callback);
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  /* -- filter builder -------------------------------------------------------- */

  var BLANK_OPS = ["blank", "notblank"];

  function setupFilterForm(form) {
    var fields;
    try {
      fields = JSON.parse(form.getAttribute("data-fields") || "[]");
    } catch (error) {
      return;
    }
    var byName = {};
    fields.forEach(function (field) {
      byName[field.name] = field;
    });
    var fieldSelect = form.querySelector("[data-filter-field]");
    var opSelect = form.querySelector("[data-filter-op]");
    var valueBox = form.querySelector("[data-filter-value]");
    if (!fieldSelect || !opSelect || !valueBox) {
      return;
    }
    each(".no-js-only", function (node) {
      node.hidden = true;
    }, form);

    function fillOperators(field) {
      var previous = opSelect.value;
      opSelect.textContent = "";
      if (!field) {
        opSelect.appendChild(element("option", { value: "" }, "Choose a field first"));
        opSelect.disabled = true;
        return;
      }
      opSelect.disabled = false;
      field.operators.forEach(function (pair) {
        var option = element("option", { value: pair[0] }, pair[1]);
        option.selected = pair[0] === previous;
        opSelect.appendChild(option);
      });
    }

    function valueInput(field, op) {
      var id = "add_value";
      var nodes = [];
      if (field.input === "select") {
        var select = element("select", { id: id, name: "add_value" });
        if (op === "in") {
          select.multiple = true;
          select.size = Math.min(field.choices.length, 5);
        }
        field.choices.forEach(function (pair) {
          select.appendChild(element("option", { value: pair[0] }, pair[1]));
        });
        nodes.push(element("label", { for: id }, "Value"), select);
        if (select.multiple) {
          // Said as the page without scripts says it.
          select.setAttribute("aria-describedby", id + "-help");
          nodes.push(element("p", { id: id + "-help", "class": "help" },
            "For “is one of”, choose several values (Ctrl or ⌘ and click)."));
        }
        return nodes;
      }
      if (field.input === "lookup") {
        var listId = "add_value-options";
        var text = element("input", {
          type: "text", id: id, name: "add_text", list: listId, autocomplete: "off",
          placeholder: "Type a name…"
        });
        var hidden = element("input", { type: "hidden", name: "add_id", value: "" });
        var list = element("datalist", { id: listId });
        setupLookup(text, hidden, list, field.lookup);
        nodes.push(element("label", { for: id }, field.target + " name"), text, hidden, list);
        return nodes;
      }
      var input = element("input", { id: id, name: "add_value" });
      if (field.input === "number") {
        input.type = "text";
        input.setAttribute("inputmode", "decimal");
      } else if (field.input === "date") {
        input.type = "date";
      } else if (field.input === "datetime-local") {
        // Seconds can be entered, as record pages show them and forms take them.
        input.type = "datetime-local";
        input.step = "1";
      } else {
        input.type = "text";
      }
      nodes.push(element("label", { for: id }, "Value"), input);
      if (field.help) {
        input.setAttribute("aria-describedby", id + "-help");
        nodes.push(element("p", { id: id + "-help", "class": "help" }, field.help));
      }
      return nodes;
    }

    function fillValue() {
      var field = byName[fieldSelect.value];
      var op = opSelect.value;
      valueBox.textContent = "";
      valueBox.hidden = !field || BLANK_OPS.indexOf(op) !== -1;
      if (field) {
        valueInput(field, op).forEach(function (node) {
          valueBox.appendChild(node);
        });
      }
    }

    fieldSelect.addEventListener("change", function () {
      fillOperators(byName[fieldSelect.value]);
      fillValue();
    });
    opSelect.addEventListener("change", function () {
      var multiple = opSelect.value === "in";
      var current = valueBox.querySelector("select");
      // Keep what was typed when only the kind of comparison changes.
      if (current && current.multiple !== multiple) {
        fillValue();
      } else {
        valueBox.hidden = BLANK_OPS.indexOf(opSelect.value) !== -1;
      }
    });

    // A field chosen by the server (after an error) keeps the server's inputs.
    if (!fieldSelect.value) {
      fillOperators(null);
      valueBox.hidden = true;
    } else {
      valueBox.hidden = BLANK_OPS.indexOf(opSelect.value) !== -1;
      var lookupText = valueBox.querySelector("[data-lookup-href]");
      if (lookupText) {
        setupLookup(
          lookupText,
          valueBox.querySelector("[data-lookup-id]"),
          valueBox.querySelector("datalist"),
          lookupText.getAttribute("data-lookup-href")
        );
      }
    }
  }

  // Names of the target records as a datalist; the id of the one picked goes in
  // a hidden input (the server resolves a typed name when there is none).
  function setupLookup(text, hidden, list, url) {
    var timer = null;
    var found = Object.create(null);
    var asked = "";

    function ask() {
      var typed = text.value.trim();
      if (typed === asked || !url) {
        return;
      }
      // A record picked from the list is not looked for again: "Name (#40)" is
      // no record's name, and the empty answer would drop the record picked.
      if (found[text.value] !== undefined) {
        return;
      }
      asked = typed;
      var address = url + (url.indexOf("?") === -1 ? "?" : "&") + "q=" + encodeURIComponent(typed);
      fetch(address, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.ok ? response.json() : [];
        })
        .then(function (records) {
          if (text.value.trim() !== typed) {
            return;
          }
          list.textContent = "";
          // Without a prototype, a name such as "constructor" finds nothing
          // every object has.
          found = Object.create(null);
          var named = Object.create(null);
          records.forEach(function (record) {
            named[record.name] = (named[record.name] || 0) + 1;
          });
          // A name several records share gets each one's number, so that
          // picking one of them picks that record.
          records.forEach(function (record) {
            var shown = named[record.name] > 1
              ? record.name + " (#" + record.id + ")"
              : record.name;
            found[shown] = record.id;
            list.appendChild(element("option", { value: shown }));
          });
          pick();
        })
        .catch(function () {
          list.textContent = "";
        });
    }

    function pick() {
      var id = found[text.value];
      hidden.value = id === undefined ? "" : String(id);
    }

    text.addEventListener("input", function () {
      pick();
      clearTimeout(timer);
      timer = setTimeout(ask, 200);
    });
    text.addEventListener("focus", ask);
  }

  /* -- import mapping -------------------------------------------------------- */

  function setupMapping(form) {
    form.addEventListener("change", function (event) {
      var changed = event.target;
      if (!changed.matches("[data-map-select]") || !changed.value) {
        return;
      }
      each("[data-map-select]", function (other) {
        if (other !== changed && other.value === changed.value) {
          other.value = "";
        }
      }, form);
    });
  }

  /* -- forms sent once ------------------------------------------------------- */

  function setupSubmitOnce(form) {
    var status = form.querySelector("[data-submit-status]");

    form.addEventListener("submit", function (event) {
      if (form.hasAttribute("data-submitting")) {
        event.preventDefault();
        return;
      }
      // The buttons stay enabled: a disabled button would leave its own name
      // and value (the action chosen) out of what the form sends.
      form.setAttribute("data-submitting", "");
      form.setAttribute("aria-busy", "true");
      if (status) {
        status.textContent = status.getAttribute("data-submit-status");
      }
    });
    // A page shown again from the history (the Back button) may be sent anew.
    window.addEventListener("pageshow", function () {
      form.removeAttribute("data-submitting");
      form.removeAttribute("aria-busy");
      if (status) {
        status.textContent = "";
      }
    });
  }

  /* -- tables ---------------------------------------------------------------- */

  function setupTableWrap(wrap) {
    var pending = false;

    function measure() {
      pending = false;
      wrap.classList.toggle("is-fitting", wrap.scrollWidth <= wrap.clientWidth);
    }

    measure();
    window.addEventListener("resize", function () {
      if (!pending) {
        pending = true;
        window.requestAnimationFrame(measure);
      }
    });
  }

  each("form[data-filter-form]", setupFilterForm);
  each("form[data-import-mapping]", setupMapping);
  each("form[data-submit-once]", setupSubmitOnce);
  each("[data-table-wrap]", setupTableWrap);
})();

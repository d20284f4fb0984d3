/*
 * Tailor CRM: lookup fields as comboboxes.
 *
 * The ARIA 1.2 combobox pattern with a listbox popup: typing asks the server for
 * the records whose name starts with the text (GET <target>/lookup?q=, JSON
 * [{id, name}], at most ten, by name); Down and Up move through them
 * (aria-activedescendant keeps focus in the text box), Enter chooses one, Escape
 * closes the list. Choosing sets the hidden input that holds the record's id;
 * changing the text clears it, so what is saved is always what the box shows.
 *
 * Progressive enhancement: without this file the box is plain text, and the
 * server looks up the exact name typed.
 */
(function () {
  "use strict";

  var DELAY_MS = 200;

  function setupLookup(box) {
    var input = box.querySelector("[data-lookup-input]");
    var hidden = box.querySelector("[data-lookup-value]");
    var list = box.querySelector('[role="listbox"]');
    var status = box.querySelector("[data-lookup-status]");
    var url = box.getAttribute("data-lookup-url");
    if (!input || !hidden || !list || !url) {
      return;
    }
    var options = [];
    // The text the options were found for.
    var optionsFor = null;
    var active = -1;
    var timer = null;
    var controller = null;
    var sequence = 0;
    // The name of the record whose id the hidden input holds.
    var chosenName = hidden.value ? input.value : "";

    function announce(text) {
      if (status) {
        status.textContent = text;
      }
    }

    function setActive(index) {
      if (active >= 0 && options[active]) {
        options[active].element.setAttribute("aria-selected", "false");
      }
      active = index;
      if (index < 0 || !options[index]) {
        input.removeAttribute("aria-activedescendant");
        return;
      }
      var element = options[index].element;
      element.setAttribute("aria-selected", "true");
      input.setAttribute("aria-activedescendant", element.id);
      element.scrollIntoView({ block: "nearest" });
    }

    function open() {
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function close() {
      setActive(-1);
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
    }

    function choose(index) {
      var option = options[index];
      if (!option) {
        return;
      }
      hidden.value = String(option.id);
      input.value = option.name;
      chosenName = option.name;
      close();
      announce(option.name + " chosen.");
      hidden.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function show(text, results) {
      optionsFor = text;
      list.textContent = "";
      options = results.map(function (result, index) {
        var item = document.createElement("li");
        item.id = list.id + "-" + index;
        item.setAttribute("role", "option");
        item.setAttribute("aria-selected", "false");
        // Names are data: text, never markup.
        item.textContent = result.name;
        item.addEventListener("click", function () {
          choose(index);
        });
        list.appendChild(item);
        return { id: result.id, name: result.name, element: item };
      });
      active = -1;
      if (!options.length) {
        close();
        announce("No matches.");
        return;
      }
      open();
      announce(
        (options.length === 1 ? "1 match" : options.length + " matches") +
          "; use the Down arrow to choose."
      );
    }

    function search(text) {
      if (controller) {
        controller.abort();
      }
      controller = window.AbortController ? new AbortController() : null;
      sequence += 1;
      var mine = sequence;
      fetch(url + "?q=" + encodeURIComponent(text), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: controller ? controller.signal : undefined
      })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("lookup answered " + response.status);
          }
          return response.json();
        })
        .then(function (results) {
          var current = mine === sequence && text === input.value.trim();
          if (current && document.activeElement === input) {
            show(text, results);
          }
        })
        .catch(function (error) {
          if (error.name !== "AbortError" && mine === sequence) {
            close();
            announce("Suggestions are not available; type the full name.");
          }
        });
    }

    function typed() {
      if (input.value !== chosenName) {
        var dropped = hidden.value !== "";
        hidden.value = "";
        chosenName = "";
        // The record chosen is gone, as when one is chosen: say so, so that
        // what follows the lookup (default rules) follows it now. The box's own
        // change event may never come: cleared in the focus it was chosen in,
        // it holds what it held when focused.
        if (dropped) {
          hidden.dispatchEvent(new Event("change", { bubbles: true }));
        }
      }
      clearTimeout(timer);
      if (!input.value.trim()) {
        close();
        return;
      }
      timer = setTimeout(function () {
        search(input.value.trim());
      }, DELAY_MS);
    }

    input.addEventListener("input", typed);

    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown") {
        event.preventDefault();
        if (list.hidden && optionsFor !== input.value.trim()) {
          search(input.value.trim());
        } else if (list.hidden) {
          if (options.length) {
            open();
            setActive(event.altKey ? -1 : 0);
          }
        } else if (!event.altKey) {
          setActive(active + 1 < options.length ? active + 1 : 0);
        }
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        if (!options.length || optionsFor !== input.value.trim()) {
          return;
        }
        open();
        setActive(active > 0 ? active - 1 : options.length - 1);
      } else if (event.key === "Enter") {
        // Enter on a highlighted match chooses it; otherwise the form submits.
        if (!list.hidden && active >= 0) {
          event.preventDefault();
          choose(active);
        }
      } else if (event.key === "Escape") {
        if (!list.hidden) {
          event.preventDefault();
          close();
        }
      }
    });

    // Pressing on the list (an option, its scroll bar) keeps focus in the text
    // box, so the list stays open and a click on an option chooses it.
    list.addEventListener("mousedown", function (event) {
      event.preventDefault();
    });
    input.addEventListener("blur", close);

    // Text typed into a new choice before this script ran (a slow page) is
    // searched for as if typed now.
    if (document.activeElement === input && !hidden.value && input.value.trim()) {
      typed();
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-lookup]"), setupLookup);
})();

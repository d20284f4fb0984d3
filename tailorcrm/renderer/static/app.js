/*
 * Tailor CRM: behaviour every page shares.
 *
 * Progressive enhancement only: each page works without this file, and the server
 * decides everything. Loaded with `defer`, so the document is parsed when it runs.
 * Pieces: the Menu button, focus on the element marked [data-focus], links to
 * fields (error summaries), tabs, and the bulk bar of lists.
 */
(function () {
  "use strict";

  var root = document.documentElement;
  root.classList.add("js");

  function each(selector, callback, scope) {
    Array.prototype.forEach.call((scope || document).querySelectorAll(selector), callback);
  }

  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : many);
  }

  /* -- Menu button ----------------------------------------------------------- */

  function setupNavToggle(button) {
    var nav = document.getElementById(button.getAttribute("aria-controls"));
    if (!nav) {
      return;
    }

    function setOpen(open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      nav.classList.toggle("is-open", open);
    }

    setOpen(false);
    button.addEventListener("click", function () {
      setOpen(button.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape" || button.getAttribute("aria-expanded") !== "true") {
        return;
      }
      setOpen(false);
      button.focus();
    });
  }

  /* -- tabs ------------------------------------------------------------------ */

  // Tab widgets, so that a link to a field inside a hidden panel can show it.
  var tabWidgets = [];

  function setupTabs(list) {
    var tabs = Array.prototype.slice.call(list.querySelectorAll('[role="tab"]'));
    var panels = tabs.map(function (tab) {
      return document.getElementById(tab.getAttribute("aria-controls"));
    });
    if (!tabs.length || panels.indexOf(null) !== -1) {
      return;
    }

    // A tab is offered while its panel shows something: on a form, field state
    // hides sections (field_state.js), and a tab left with none is hidden.
    function offered(index) {
      return Array.prototype.some.call(panels[index].children, function (child) {
        return !child.hidden;
      });
    }

    function offeredIndexes() {
      return tabs.map(function (tab, index) {
        return index;
      }).filter(function (index) {
        return !tabs[index].hidden;
      });
    }

    function select(index, moveFocus) {
      tabs.forEach(function (tab, i) {
        var chosen = i === index;
        tab.setAttribute("aria-selected", chosen ? "true" : "false");
        tab.tabIndex = chosen ? 0 : -1;
        panels[i].hidden = !chosen;
      });
      if (moveFocus) {
        tabs[index].focus();
      }
    }

    function panelIndexOf(element) {
      for (var i = 0; i < panels.length; i += 1) {
        if (panels[i] === element || panels[i].contains(element)) {
          return i;
        }
      }
      return -1;
    }

    // Start on the tab named in the address if it is offered, else the first
    // one holding a problem, else the one the server marked.
    var start = -1;
    if (location.hash.length > 1) {
      start = panelIndexOf(document.getElementById(decodeURIComponent(location.hash.slice(1))));
    }
    if (start === -1 || tabs[start].hidden) {
      start = panelIndexOf(list.parentNode.querySelector('.has-error, [aria-invalid="true"]'));
    }
    if (start === -1) {
      start = Math.max(0, tabs.map(function (tab) {
        return tab.getAttribute("aria-selected");
      }).indexOf("true"));
    }
    select(start, false);

    // Offer the tabs that show something; if the open one no longer does, open
    // the first that does. A bar that would offer one tab only is hidden.
    function refresh() {
      tabs.forEach(function (tab, index) {
        tab.hidden = !offered(index);
      });
      var open = tabs.map(function (tab) {
        return tab.getAttribute("aria-selected");
      }).indexOf("true");
      var shown = offeredIndexes();
      list.hidden = shown.length < 2;
      if (shown.length && (open === -1 || tabs[open].hidden)) {
        select(shown[0], false);
      }
    }

    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function (event) {
        event.preventDefault();
        select(index, true);
        if (history.replaceState) {
          history.replaceState(history.state, "", "#" + panels[index].id);
        }
      });
      tab.addEventListener("keydown", function (event) {
        // The arrows, Home and End move among the tabs offered.
        var shown = offeredIndexes();
        var place = shown.indexOf(index);
        var last = shown.length - 1;
        var next = shown[{
          ArrowRight: place === last ? 0 : place + 1,
          ArrowLeft: place <= 0 ? last : place - 1,
          Home: 0,
          End: last
        }[event.key]];
        if (event.key === " ") {
          event.preventDefault();
          tab.click();
          return;
        }
        if (next === undefined) {
          return;
        }
        event.preventDefault();
        select(next, true);
      });
    });

    tabWidgets.push({
      reveal: function (element) {
        var index = panelIndexOf(element);
        if (index !== -1 && panels[index].hidden && !tabs[index].hidden) {
          select(index, false);
        }
      },
      refresh: refresh
    });
  }

  function reveal(element) {
    tabWidgets.forEach(function (widget) {
      widget.reveal(element);
    });
    var closed = element.closest("details:not([open])");
    if (closed) {
      closed.open = true;
    }
  }

  /* -- focus ----------------------------------------------------------------- */

  // A link to a form control (an error summary's, say) focuses the control and
  // shows its label, not just scrolls to it.
  function followFieldLink(event) {
    var link = event.target.closest('a[href^="#"]');
    if (!link || link.getAttribute("href").length < 2) {
      return;
    }
    var target = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
    if (!target || !target.matches("input, select, textarea, button, fieldset")) {
      return;
    }
    event.preventDefault();
    reveal(target);
    var field = target.closest(".field") || target;
    field.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
  }

  function focusMarked() {
    var marked = document.querySelector("[data-focus]");
    if (!marked) {
      return;
    }
    reveal(marked);
    if (!marked.hasAttribute("tabindex") && !marked.matches("a, button, input, select, textarea")) {
      marked.setAttribute("tabindex", "-1");
    }
    marked.focus();
  }

  /* -- bulk bar -------------------------------------------------------------- */

  function setupBulk(form) {
    var all = form.querySelector("[data-select-all]");
    var count = form.querySelector("[data-bulk-count]");
    var bar = form.querySelector("[data-bulk-bar]");
    var lastClicked = null;

    function rows() {
      return Array.prototype.slice.call(
        form.querySelectorAll('tbody input[type="checkbox"]:not([data-select-all])')
      );
    }

    function update() {
      var boxes = rows();
      var chosen = boxes.filter(function (box) {
        return box.checked;
      }).length;
      boxes.forEach(function (box) {
        var row = box.closest("tr");
        if (row) {
          row.classList.toggle("is-selected", box.checked);
        }
      });
      if (all) {
        all.checked = chosen > 0 && chosen === boxes.length;
        all.indeterminate = chosen > 0 && chosen < boxes.length;
      }
      if (count) {
        count.textContent = chosen ? plural(chosen, "row", "rows") + " selected" : "No rows selected";
      }
      if (bar) {
        bar.classList.toggle("has-selection", chosen > 0);
        each("button, input[type=submit]", function (button) {
          button.disabled = chosen === 0;
        }, bar);
      }
    }

    if (all) {
      all.addEventListener("change", function () {
        rows().forEach(function (box) {
          box.checked = all.checked;
        });
        update();
      });
    }

    // Shift-click ticks or clears every row between the last click and this one.
    form.addEventListener("click", function (event) {
      var box = event.target;
      if (!box.matches || !box.matches('tbody input[type="checkbox"]')) {
        return;
      }
      var boxes = rows();
      if (event.shiftKey && lastClicked && boxes.indexOf(lastClicked) !== -1) {
        var from = boxes.indexOf(lastClicked);
        var to = boxes.indexOf(box);
        boxes.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(function (other) {
          other.checked = box.checked;
        });
      }
      lastClicked = box;
      update();
    });
    form.addEventListener("change", update);
    // Going back to the page may restore ticked boxes from the page cache.
    window.addEventListener("pageshow", update);
    update();
  }

  /* -- start ----------------------------------------------------------------- */

  each(".nav-toggle[aria-controls]", setupNavToggle);
  each("[data-tabs]", setupTabs);
  // Sent by field_state.js each time it has shown or hidden sections.
  document.addEventListener("tailor:sections", function () {
    tabWidgets.forEach(function (widget) {
      widget.refresh();
    });
  });
  each("form[data-bulk]", setupBulk);
  document.addEventListener("click", followFieldLink);
  window.addEventListener("hashchange", function () {
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) {
      reveal(target);
    }
  });
  focusMarked();
})();

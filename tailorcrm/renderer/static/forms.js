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

  // A second click on Save while the first is on its way would create the record
  // twice; the page cache may bring the form back, so pageshow resets it.
  function guardDoubleSubmit(form) {
    var sending = false;
    form.addEventListener("submit", function (event) {
      if (sending) {
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

  Array.prototype.forEach.call(
    document.querySelectorAll("form[data-record-form]"), guardDoubleSubmit
  );
  focusSummary();
  document.addEventListener("wheel", keepNumbersOnWheel, { passive: true });
})();

/* The simple cohort builder (cohorts/definition_builder.html): progressive help only — the form works without
 * it. Shows one rule row at a time ("Add a rule" reveals the next), and lets the concept chips add their id to
 * the concept field of their block and set its domain select. No inline script; ids come from data-* attributes.
 */
(function () {
  "use strict";

  var form = document.querySelector("[data-builder]");
  if (!form) {
    return;
  }

  function addId(input, id) {
    var ids = input.value.split(/[\s,;]+/).filter(Boolean);
    if (ids.indexOf(String(id)) === -1) {
      ids.push(String(id));
    }
    input.value = ids.join(", ");
    input.dispatchEvent(new Event("change"));
  }

  form.addEventListener("click", function (event) {
    var chip = event.target.closest("button[data-concept-id]");
    if (!chip) {
      return;
    }
    var block = chip.closest("[data-rule]") || chip.closest("fieldset");
    var input = block.querySelector("input[data-concept-input]");
    var select = block.querySelector("select[name$=domain]");
    if (input) {
      addId(input, chip.dataset.conceptId);
    }
    if (select && !input.value.replace(chip.dataset.conceptId, "").replace(/[\s,;]/g, "")) {
      // Only the first concept of a block sets its domain: mixing domains in one set is the user's call.
      select.value = chip.dataset.conceptDomain;
    }
  });

  var hidden = Array.prototype.slice.call(form.querySelectorAll("[data-rule].rule-empty"));
  var addButton = form.querySelector("[data-add-rule]");
  if (addButton && hidden.length) {
    hidden.forEach(function (row) {
      row.hidden = true;
    });
    addButton.hidden = false;
    addButton.addEventListener("click", function () {
      var next = hidden.shift();
      if (next) {
        next.hidden = false;
        var first = next.querySelector("input[data-concept-input]");
        if (first) {
          first.focus();
        }
      }
      if (!hidden.length) {
        addButton.hidden = true;
      }
    });
  }
})();

/* The definitions list (cohorts/definition_list.html): "Compare the selected" needs 2 to 4 ticked definitions.
 * With another number it says so beside the button instead of leaving the page; the server refuses the same
 * choices on its own (cohorts/runs/comparison_views.py), so this is a convenience, not the rule. */
(function () {
  "use strict";

  const { _, interpolate } = window.Soyang;

  const button = document.getElementById("compare-selected");
  const message = document.getElementById("compare-message");
  if (!button || !message) {
    return;
  }
  const min = Number(button.dataset.min);
  const max = Number(button.dataset.max);

  button.addEventListener("click", (event) => {
    const chosen = document.querySelectorAll("input[name=definitions][form=set-form]:checked").length;
    if (chosen >= min && chosen <= max) {
      message.hidden = true;
      return;
    }
    event.preventDefault();
    message.textContent = interpolate(_("Choose %(min)s to %(max)s definitions to compare (you chose %(n)s)."),
      { min: min, max: max, n: chosen }, true);
    message.hidden = false;
  });
})();

/* Vocabulary search page: a changed filter searches again at once (the form works without this script too). */
(function () {
  "use strict";
  var form = document.getElementById("concept-search");
  if (!form) {
    return;
  }
  form.querySelectorAll(".concepts-autosubmit").forEach(function (control) {
    control.addEventListener("change", function () {
      if (document.getElementById("concept-q").value.trim()) {
        form.requestSubmit();
      }
    });
  });
})();

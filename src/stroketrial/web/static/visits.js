// The visit forms' edit checks as the form is filled: when a field is left (change), the form is posted to its
// check endpoint and the errors and warnings it answers replace the form's checks box; the form's live region
// says only their count (the answer's data-summary, in the page's language), not the whole list again. Nothing is
// stored; saving checks everything again, and the form works without this script.
(function () {
  "use strict";
  var forms = document.querySelectorAll("form[data-check]");
  Array.prototype.forEach.call(forms, function (form) {
    var box = form.querySelector("[data-checks]");
    var summary = form.querySelector("[data-checks-summary]");
    var csrf = form.querySelector("input[name=csrf]");
    var sequence = 0;
    function refresh() {
      var mine = ++sequence;
      fetch(form.dataset.check, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf ? csrf.value : "" }
      }).then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      }).then(function (html) {
        if (mine !== sequence) return;
        box.innerHTML = html;
        var said = box.querySelector("[data-summary]");
        if (summary && said && summary.textContent !== said.textContent) summary.textContent = said.textContent;
      })
        .catch(function () { /* the box keeps its last state; saving still checks everything */ });
    }
    form.addEventListener("change", function (event) {
      var name = event.target && event.target.name;
      if (name === "confirm" || name === "confirm_reason" || name === "reason") return;
      refresh();
    });
  });
})();

// The procedure page: the passes' stepper, and the verdict as the fields are given (the server screens; nothing is
// stored until "Randomize now"). The live region says one short sentence when the verdict changes.
(function () {
  "use strict";
  var form = document.getElementById("procedure-form");
  if (!form) return;
  var verdict = document.getElementById("verdict");
  var said = document.getElementById("verdict-said");
  var timer = null, sequence = 0, last = "";
  function refresh() {
    var mine = ++sequence;
    fetch(form.dataset.preview, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-CSRF-Token": form.dataset.csrf }
    }).then(function (response) {
      if (!response.ok) { throw new Error("preview " + response.status); }
      return response.text();
    }).then(function (html) {
      if (mine !== sequence) return;
      verdict.innerHTML = html;
      var summary = verdict.querySelector("[data-summary]");
      var text = summary ? summary.textContent : "";
      if (text !== last) { said.textContent = text; last = text; }
    }).catch(function () { /* the verdict keeps its last state; submitting checks everything */ });
  }
  function later() { clearTimeout(timer); timer = setTimeout(refresh, 200); }
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-step]") : null;
    if (!button) return;
    var input = document.getElementById(button.getAttribute("aria-controls"));
    var value = parseInt(input.value, 10);
    var next = (isNaN(value) ? 0 : value) + parseInt(button.getAttribute("data-step"), 10);
    var low = input.min === "" ? 0 : parseInt(input.min, 10), high = input.max === "" ? 99 : parseInt(input.max, 10);
    input.value = String(Math.min(high, Math.max(low, next)));
    later();
  });
  var first = verdict.querySelector("[data-summary]");
  last = first ? first.textContent : "";
})();

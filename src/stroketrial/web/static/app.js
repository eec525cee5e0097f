// A little plain JavaScript: live eligibility while the screening form fills in, and buttons that
// submit once. The server never depends on it: forms work without it, and randomization is
// idempotent on the key the page carries. No page has inline script or on*= handlers: the
// Content-Security-Policy (script-src 'self') would block them; behaviour is bound here instead.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-print], [data-back]") : null;
    if (!target) return;
    if (target.hasAttribute("data-print")) { window.print(); return; }
    if (window.history.length > 1) { event.preventDefault(); window.history.back(); }
  });
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("button[data-once]");
    if (!button) return;
    if (event.target.dataset.submitted === "1") { event.preventDefault(); return; }
    event.target.dataset.submitted = "1";
    button.disabled = true;
    button.textContent = "Working…";
  });

  var form = document.getElementById("screening-form");
  if (!form) return;
  var panel = document.getElementById("eligibility");
  var timer = null, sequence = 0;
  function refresh() {
    var mine = ++sequence;
    fetch(form.dataset.preview, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-CSRF-Token": form.dataset.csrf }
    }).then(function (response) { return response.text(); })
      .then(function (html) { if (mine === sequence) panel.innerHTML = html; })
      .catch(function () { /* the panel keeps its last state; submitting still checks everything */ });
  }
  function later() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  if (form.querySelector("input[name=patient_id]").value) refresh();
})();

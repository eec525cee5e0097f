// A little plain JavaScript: live eligibility while the screening form fills in (each field checked as it is
// left), and buttons that submit once. The server never depends on it: forms work without it, and randomization is
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
    // the page's own word for it (data-working, in the page's language), else English
    button.textContent = event.target.getAttribute("data-working") || "Working…";
  });

  var form = document.getElementById("screening-form");
  if (!form) return;
  var panel = document.getElementById("eligibility");
  // The live region stays while the panel is replaced: it announces the panel's short summary ("eligible", "not
  // eligible: 2 criteria") when that changes, never the whole list of criteria.
  var live = document.getElementById("eligibility-live");
  function announce() {
    var summary = panel.querySelector("[data-summary]");
    var words = summary ? summary.textContent.trim() : "";
    if (live && words && live.textContent !== words) live.textContent = words;
  }
  var timer = null, sequence = 0;
  // Screening fields whose problems are shown beside them (data-live): those the user has left, and those the
  // server already marked. Other fields (the screening number, a correction's reason) keep the server's word.
  var left = {};
  Array.prototype.forEach.call(form.querySelectorAll("[data-error-for][data-live]"), function (span) {
    if (!span.hidden) left[span.getAttribute("data-error-for")] = true;
  });
  function fieldName(element) {
    var name = element && element.name;
    return name ? name.replace(/__unit$/, "") : null;
  }
  // Each field left says what is wrong with it (or clears its mark), from the panel's list of problems.
  function markFields() {
    Array.prototype.forEach.call(form.querySelectorAll("[data-error-for][data-live]"), function (span) {
      var name = span.getAttribute("data-error-for");
      if (!left[name]) return;
      var item = panel.querySelector('li[data-field="' + name + '"] [data-message]');
      var box = span.closest(".field");
      span.textContent = item ? item.textContent : "";
      span.hidden = !item;
      if (box) {
        box.classList.toggle("has-error", !!item);
        Array.prototype.forEach.call(box.querySelectorAll("input, select, [role=radiogroup]"), function (control) {
          if (item) control.setAttribute("aria-invalid", "true"); else control.removeAttribute("aria-invalid");
        });
      }
    });
  }
  function refresh() {
    var mine = ++sequence;
    fetch(form.dataset.preview, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-CSRF-Token": form.dataset.csrf }
    }).then(function (response) {
      // an ended session answers 401 (session.js says so); any refusal leaves the panel as it was
      if (!response.ok) { throw new Error("preview " + response.status); }
      return response.text();
    })
      .then(function (html) { if (mine === sequence) { panel.innerHTML = html; markFields(); announce(); } })
      .catch(function () { /* the panel keeps its last state; submitting still checks everything */ });
  }
  function later() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("focusout", function (event) {
    var name = fieldName(event.target);
    if (!name || name === "csrf") return;
    left[name] = true;
    clearTimeout(timer);
    refresh();
  });
  var code = form.querySelector("input[name=patient_id]");
  if (code && code.value) refresh();
})();

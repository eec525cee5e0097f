// The site's envelope procedure on the randomize confirmation page: the randomize POST is sent with fetch, and
// when it cannot reach the platform (a network failure, or 502-504 from a proxy or a database that is down) the
// page says which sealed envelope to open instead of a browser error. Without this script the form posts as usual.
// No inline script (CSP script-src 'self'): this file is bound to forms marked data-envelope-panel.
(function () {
  "use strict";
  var form = document.querySelector("form[data-envelope-panel]");
  if (!form) return;
  var panel = document.getElementById(form.dataset.envelopePanel);
  var message = panel ? panel.querySelector("[data-offline-message]") : null;
  var button = form.querySelector("button[type=submit]");
  var label = button ? button.textContent : "";

  function unreachable() {
    if (message) message.hidden = false;
    if (panel) { panel.classList.add("offline"); panel.scrollIntoView({ block: "start" }); }
    if (button) { button.disabled = false; button.textContent = label; }
    form.dataset.submitted = "";
  }

  if (navigator.onLine === false) unreachable();
  window.addEventListener("offline", unreachable);

  form.addEventListener("submit", function (event) {
    if (!window.fetch || !window.FormData) return;  // the plain post
    event.preventDefault();
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin", redirect: "follow" })
      .then(function (response) {
        if (response.status === 502 || response.status === 503 || response.status === 504) { unreachable(); return; }
        if (response.ok && response.redirected) { window.location.assign(response.url); return; }
        // Any other answer (a refusal the server explains): post again without the script, to show its page; the
        // same key makes a second post return the first answer, never a second randomization.
        HTMLFormElement.prototype.submit.call(form);
      })
      .catch(unreachable);
  });
})();

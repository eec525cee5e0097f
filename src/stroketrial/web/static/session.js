// The session's end, without losing what was typed (issue 20, defect 2).
// - A warning two minutes before the session ends for want of activity, with "Stay signed in".
// - When a page's background request finds the session ended (401 with session_ended), a notice with a link
//   to sign in again in a new tab; this page keeps what was typed, and takes the new form token on return.
// - What is typed in a form is kept in this tab's sessionStorage; if a submit meets an ended session, the
//   sign-in page brings the user back here and the form is filled again, said so, to be checked and saved.
// sessionStorage belongs to this tab alone and is cleared on signing out.
// The words are the page's language: templates/_session_strings.html writes them (data attributes of an element
// the page frame includes); without it, English.
(function () {
  "use strict";
  var body = document.body;
  var warning = document.getElementById("session-warning");
  var KEY = "stroketrial:form:";
  var WORDS = {
    ended: "Your session has ended. What you typed stays on this page:",
    signInAgain: "sign in again in a new tab",
    thenSave: ", then come back here and save.",
    endsIn: "Your session ends in {minutes} minute(s) without activity.",
    stay: "Stay signed in",
    unreachable: "The platform cannot be reached; what you typed stays on this page.",
    signedInAgain: "You are signed in again as {user}: check what you typed, then save.",
    restored: "What you typed before your session ended is back in the form: check it, then save."
  };
  var given = document.getElementById("session-strings");
  if (given) {
    Object.keys(WORDS).forEach(function (k) { if (given.dataset[k]) { WORDS[k] = given.dataset[k]; } });
  }
  function said(key, values) {
    return WORDS[key].replace(/\{(\w+)\}/g, function (all, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : all;
    });
  }

  // Each part is text or an element: nothing typed or translated is read as HTML.
  function show() {
    if (!warning) { return; }
    warning.textContent = "";
    Array.prototype.forEach.call(arguments, function (part) {
      warning.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    });
    warning.hidden = false;
  }
  function element(tag, attributes, text) {
    var e = document.createElement(tag);
    Object.keys(attributes).forEach(function (k) { e.setAttribute(k, attributes[k]); });
    e.textContent = text;
    return e;
  }

  function ended(login) {
    show(said("ended") + " ",
         element("a", {href: login || "/login", target: "_blank", rel: "noopener", "data-testid": "sign-in-again"},
                 said("signInAgain")),
         said("thenSave"));
  }

  // ---- the warning before the idle timeout --------------------------------------------------------------
  var minutes = parseFloat(body.dataset.sessionMinutes || "");
  var timer = null;
  function arm() {
    if (!(minutes > 0)) { return; }
    clearTimeout(timer);
    var total = minutes * 60 * 1000;
    var lead = Math.min(2 * 60 * 1000, total / 2);
    timer = setTimeout(function () {
      var button = element("button", {type: "button", "data-testid": "stay-signed-in"}, said("stay"));
      button.addEventListener("click", keepalive);
      show(said("endsIn", {minutes: Math.round(lead / 60000 * 10) / 10}) + " ", button);
      timer = setTimeout(function () { ended(null); }, lead);
    }, total - lead);
  }
  function keepalive() {
    fetch("/session/keepalive", {method: "POST", credentials: "same-origin",
                                 headers: {"X-CSRF-Token": body.dataset.csrf || ""}})
      .then(function (response) {
        if (response.ok) { warning.hidden = true; arm(); return null; }
        return response.json().then(function (answer) { ended(answer.login); });
      })
      .catch(function () { show(said("unreachable")); });
  }

  // ---- background requests that meet an ended session -------------------------------------------------------
  if (window.fetch) {
    var plain = window.fetch.bind(window);
    window.fetch = function (resource, options) {
      return plain(resource, options).then(function (response) {
        if (response.status === 401) {
          response.clone().json().then(function (answer) {
            if (answer && answer.session_ended) { ended(answer.login); }
          }).catch(function () { /* not ours */ });
        } else if (response.ok && minutes > 0) {
          arm();  // any answered request is activity
        }
        return response;
      });
    };
  }

  // Back from signing in again in another tab: take the new form token, so the form can be saved.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible" || warning.hidden) { return; }
    plain("/session/token", {credentials: "same-origin", headers: {"X-CSRF-Token": body.dataset.csrf || ""}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (!answer) { return; }
        body.dataset.csrf = answer.csrf;
        document.querySelectorAll("input[name=csrf]").forEach(function (i) { i.value = answer.csrf; });
        document.querySelectorAll("[data-csrf]").forEach(function (e) { e.dataset.csrf = answer.csrf; });
        show(said("signedInAgain", {user: answer.user}));
        arm();
      })
      .catch(function () { /* still signed out */ });
  });

  // ---- what was typed, kept across signing in again -----------------------------------------------------------
  function keptForms() {
    return Array.prototype.filter.call(document.querySelectorAll("form[method=post]"), function (form) {
      var action = form.getAttribute("action") || "";
      return action !== "/login" && action !== "/logout";
    });
  }
  function fields(form) {
    return Array.prototype.filter.call(form.elements, function (e) {
      return e.name && e.name !== "csrf" && e.name !== "next" && e.type !== "password" && e.type !== "file" &&
        e.type !== "submit" && e.type !== "button" && e.type !== "hidden";
    });
  }
  function snapshot(form) {
    var values = {};
    fields(form).forEach(function (e) {
      if (e.type === "checkbox" || e.type === "radio") {
        if (e.checked) { values[e.name + "=" + e.value] = true; }
      } else if (e.value !== "") {
        values[e.name] = e.value;
      }
    });
    return values;
  }
  function restore(form, values) {
    fields(form).forEach(function (e) {
      if (e.type === "checkbox" || e.type === "radio") {
        e.checked = values[e.name + "=" + e.value] === true;
      } else if (Object.prototype.hasOwnProperty.call(values, e.name)) {
        e.value = values[e.name];
      }
    });
    form.dispatchEvent(new Event("input", {bubbles: true}));  // the live panel checks the restored values
  }
  function key(index) { return KEY + location.pathname + "#" + index; }

  // The pages send no Referer (Referrer-Policy: no-referrer), so this tab remembers the way itself: the page
  // whose form was submitted (where to come back after signing in), and that the sign-in form was submitted.
  var RETURN = KEY + "return", SIGNED_IN = KEY + "signed-in";
  if (body.hasAttribute("data-login-page")) {
    var back = sessionStorage.getItem(RETURN);
    var next = document.querySelector("form[action='/login'] input[name=next]");
    if (back && next && back.charAt(0) === "/" && back.charAt(1) !== "/") { next.value = back; }
    var login = document.querySelector("form[action='/login']");
    if (login) { login.addEventListener("submit", function () { sessionStorage.setItem(SIGNED_IN, "1"); }); }
    return;  // the sign-in page keeps what the page before it saved
  }
  var fromLogin = sessionStorage.getItem(SIGNED_IN) === "1";
  sessionStorage.removeItem(SIGNED_IN);
  sessionStorage.removeItem(RETURN);
  keptForms().forEach(function (form, index) {
    var saved = sessionStorage.getItem(key(index));
    sessionStorage.removeItem(key(index));
    if (saved && fromLogin) {
      restore(form, JSON.parse(saved));
      show(said("restored"));
    }
    var save = function () { sessionStorage.setItem(key(index), JSON.stringify(snapshot(form))); };
    form.addEventListener("input", save);
    form.addEventListener("change", save);
    form.addEventListener("submit", function () {
      save();
      sessionStorage.setItem(RETURN, location.pathname + location.search);
    });
  });
  document.querySelectorAll("form[action='/logout']").forEach(function (form) {
    form.addEventListener("submit", function () { sessionStorage.clear(); });
  });
  arm();
}());

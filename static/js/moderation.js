// Moderation pages: keyboard shortcuts, the image blur toggle and bulk selection.
// Plain JavaScript, no dependencies. Every action is still a normal form post, so the
// pages work without it; this only makes them faster to drive.
(function () {
  "use strict";

  // Keys typed into a text field are text; a focused checkbox or button still takes shortcuts.
  var NON_TEXT_INPUTS = ["checkbox", "radio", "button", "submit", "reset"];

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    if (tag === "input") return NON_TEXT_INPUTS.indexOf(target.type) === -1;
    return tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function noteField() {
    return document.querySelector("#decision-form textarea[name=note]");
  }

  // Images start blurred: a moderator chooses when to look at possibly abusive content,
  // and the choice is remembered for that moderator from case to case.
  var blurScope = document.querySelector("[data-blur-scope]");
  var blurKey = blurScope ? "faceproof-blur:" + blurScope.dataset.blurOwner : "";

  function toggleBlur() {
    var scopes = document.querySelectorAll("[data-blur-scope]");
    var blurred = false;
    scopes.forEach(function (scope) {
      blurred = scope.classList.toggle("blurred");
    });
    document.querySelectorAll("[data-blur-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", blurred ? "true" : "false");
      button.firstChild.textContent = blurred ? "Show images " : "Blur images ";
    });
    try {
      window.localStorage.setItem(blurKey, blurred ? "blurred" : "shown");
    } catch (error) {
      // Private browsing without storage: the toggle still works, it is just not kept.
    }
  }

  document.querySelectorAll("[data-blur-toggle]").forEach(function (button) {
    button.addEventListener("click", toggleBlur);
  });
  try {
    if (blurScope && window.localStorage.getItem(blurKey) === "shown") toggleBlur();
  } catch (error) {
    // As above: no storage, images start blurred.
  }

  // A decision against the model's verdict needs a note: say so before the round trip.
  // The server checks it again.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-needs-note]");
    if (!button || !button.form) return;
    var note = button.form.elements.namedItem("note");
    if (!note || note.value.trim()) return;
    event.preventDefault();
    note.setCustomValidity("Write a note first: this decision goes against the model or escalates.");
    note.reportValidity();
    note.focus();
    note.addEventListener("input", function clear() {
      note.setCustomValidity("");
      note.removeEventListener("input", clear);
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "/") {
      var note = noteField();
      if (note) {
        event.preventDefault();
        note.focus();
      }
      return;
    }
    var key = event.key.length === 1 ? event.key.toLowerCase() : "";
    if (!/^[a-z]$/.test(key)) return;
    var target = document.querySelector('[data-shortcut="' + key + '"]');
    if (!target || target.disabled) return;
    event.preventDefault();
    target.click();
  });

  // Bulk selection in the queue.
  var bulkForm = document.getElementById("bulk-form");
  if (bulkForm) {
    var boxes = function () {
      return document.querySelectorAll('input[name=cases][form=bulk-form]:not(:disabled)');
    };
    var refresh = function () {
      var selected = Array.prototype.filter.call(boxes(), function (box) { return box.checked; }).length;
      document.querySelectorAll("[data-selected-count]").forEach(function (counter) {
        counter.textContent = String(selected);
      });
      bulkForm.querySelectorAll("[data-bulk-action]").forEach(function (button) {
        button.disabled = selected === 0;
      });
      var all = document.querySelector("[data-select-all]");
      if (all) {
        all.checked = selected > 0 && selected === boxes().length;
        all.indeterminate = selected > 0 && selected < boxes().length;
      }
    };
    document.querySelectorAll("[data-select-all]").forEach(function (all) {
      all.addEventListener("change", function () {
        boxes().forEach(function (box) { box.checked = all.checked; });
        refresh();
      });
    });
    boxes().forEach(function (box) { box.addEventListener("change", refresh); });
    refresh();
  }
})();

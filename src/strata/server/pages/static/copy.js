// Progressive enhancement: a "Copy" button beside every command ([data-copy]).
// Without JavaScript the commands are plain, selectable text.
(function () {
  "use strict";
  function announce(text) {
    var status = document.getElementById("copy-status");
    if (status) { status.textContent = text; }
  }
  function copy(text, button) {
    document.body.setAttribute("data-last-copied", text);
    function done(ok) {
      button.textContent = ok ? "Copied" : "Select and copy";
      announce(ok ? "Copied: " + text : "Copy failed; select the text");
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(true); },
                                               function () { done(false); });
    } else {
      done(false);
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var items = document.querySelectorAll("[data-copy]");
    Array.prototype.forEach.call(items, function (el) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy: " + el.textContent);
      button.addEventListener("click", function () { copy(el.textContent, button); });
      el.insertAdjacentElement("afterend", button);
    });
  });
})();

// The dashboard's only script (a file: the CSP allows no inline script). It reloads the page every
// `data-refresh` seconds while the tab is visible, so a screen in the 督查室 stays current.
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!seconds) { return; }
  setInterval(function () {
    var editing = document.activeElement && document.activeElement.tagName === "SELECT";
    if (document.visibilityState === "visible" && !editing) { window.location.reload(); }
  }, seconds * 1000);
}());

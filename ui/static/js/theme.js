// Sets the theme before the first paint, from the last value this browser saw.
// A classic script (not a module) so it runs synchronously in <head>; the live
// settings then set the real value.
(function () {
  var theme = "dark";
  try {
    var saved = window.localStorage.getItem("dashboard.theme");
    if (saved === "light" || saved === "dark") {
      theme = saved;
    }
  } catch (e) {
    // Storage can be off (private mode); the server's value arrives shortly.
  }
  document.documentElement.setAttribute("data-theme", theme);
})();

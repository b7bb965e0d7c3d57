// Applies the saved theme ("light", "dark", or absent for the system's) before the first
// paint. A classic script on purpose: modules run after parsing, which would flash the page.
(function () {
  try {
    var theme = localStorage.getItem('thinkbank.theme');
    if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  } catch (e) {
    // Storage disabled: follow the system theme.
  }
})();

// Mark every box that scrolls sideways (a wide table, a wide figure, a long equation: MathJax makes
// the equation's own container scroll) so lpirc.css shows a hint on it; unmark it when the window is
// wide enough again. MathJax typesets after the load event, so equations are marked again once it is done.
(function () {
  const boxes = ".pst-scrollable-table-container, figure.lpirc-wide, div.math";
  function scrolls(el) {
    return [el, ...el.querySelectorAll("mjx-container")].some(function (e) {
      return e.scrollWidth > e.clientWidth + 1;
    });
  }
  function mark() {
    document.querySelectorAll(boxes).forEach(function (el) {
      el.classList.toggle("lpirc-scrolls", scrolls(el));
    });
  }
  window.addEventListener("load", mark);
  window.addEventListener("resize", mark);
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(mark);
  } else {
    window.addEventListener("load", function () { setTimeout(mark, 1500); });
  }
})();

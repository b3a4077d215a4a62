// loopml's UI: the columns a user hides in a runs table, remembered per experiment.
(function () {
  "use strict";

  function key(section) {
    return "loopml.hidden-columns." + section.dataset.experiment;
  }

  function hidden(section) {
    try {
      return new Set(JSON.parse(localStorage.getItem(key(section)) || "[]"));
    } catch (error) {
      return new Set();
    }
  }

  function apply(section) {
    const gone = hidden(section);
    section.querySelectorAll("input[data-column]").forEach(function (box) {
      box.checked = !gone.has(box.dataset.column);
    });
    section.querySelectorAll("th[data-column], td[data-column]").forEach(function (cell) {
      cell.classList.toggle("hidden-column", gone.has(cell.dataset.column));
    });
  }

  function setUp(root) {
    root.querySelectorAll("section.runs").forEach(function (section) {
      apply(section);
      if (section.dataset.ready) {
        return;
      }
      section.dataset.ready = "yes";
      section.addEventListener("change", function (event) {
        const box = event.target;
        if (!box.matches("input[data-column]")) {
          return;
        }
        const gone = hidden(section);
        if (box.checked) {
          gone.delete(box.dataset.column);
        } else {
          gone.add(box.dataset.column);
        }
        localStorage.setItem(key(section), JSON.stringify(Array.from(gone)));
        apply(section);
      });
    });
  }

  // Compare: rows where every run agrees can be hidden.
  document.addEventListener("change", function (event) {
    if (event.target.id === "hide-same") {
      document.body.classList.toggle("hide-same", event.target.checked);
    }
  });

  // htmx:load comes for the page, then for every fragment htmx swaps in.
  document.addEventListener("htmx:load", function (event) {
    setUp(event.detail.elt.parentNode || document);
  });
})();

"use strict";
(function () {
  var table = document.getElementById("results");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rank = { error: 0, fail: 1, unsupported: 2, pass: 3 };
  function key(row, field) {
    var v = row.dataset[field] || "";
    if (field === "status") { return rank[v] === undefined ? -1 : rank[v]; }
    if (field === "id") { return v; }
    var n = parseFloat(v);
    return isNaN(n) ? 0 : n;
  }
  var buttons = table.querySelectorAll("th button[data-sort]");
  Array.prototype.forEach.call(buttons, function (button) {
    button.addEventListener("click", function () {
      var field = button.dataset.sort;
      var asc = !(button.classList.contains("sorted") && button.classList.contains("asc"));
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, field), y = key(b, field);
        var c = x < y ? -1 : (x > y ? 1 : 0);
        if (c === 0) { return a.dataset.order - b.dataset.order; }
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      Array.prototype.forEach.call(buttons, function (b) { b.classList.remove("sorted", "asc"); });
      button.classList.add("sorted");
      if (asc) { button.classList.add("asc"); }
      table.dataset.sortedBy = field + (asc ? ":asc" : ":desc");
    });
  });
})();

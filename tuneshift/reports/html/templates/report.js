// tuneshift report: sortable record lists, record selection, heat maps. No network, no libraries.
// Token texts come from the page's JSON data and are drawn with canvas fillText or set with
// textContent, never parsed as HTML.
(function () {
  "use strict";

  function cellValue(row, col, numeric) {
    var v = row.cells[col].getAttribute("data-value");
    if (!numeric) return v || "";
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }

  function sortTable(table, col, numeric, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, col, numeric), y = cellValue(b, col, numeric);
      if (x === y) return 0;
      if (x === null) return 1;          // undefined values last, in both directions
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.classList.remove("asc", "desc");
      if (i === col) th.classList.add(dir > 0 ? "asc" : "desc");
    });
  }

  function initSortable(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () {
        var numeric = th.getAttribute("data-type") === "num";
        // first click: numbers largest first, text A to Z; then toggle
        var dir = th.classList.contains("desc") ? 1 : th.classList.contains("asc") ? -1 : (numeric ? -1 : 1);
        sortTable(table, col, numeric, dir);
      });
    });
    var first = table.querySelector("th.sorted-col");
    if (first) sortTable(table, first.cellIndex, true, -1);
  }

  function showDetail(section, key, row) {
    section.querySelectorAll(".record-detail").forEach(function (d) { d.hidden = d.id !== key; });
    section.querySelectorAll("tr.selected").forEach(function (r) { r.classList.remove("selected"); });
    if (row) row.classList.add("selected");
  }

  function colour(v) {  // red for positive values, blue for negative ones (sign policy signed)
    var a = Math.max(0, Math.min(1, Math.abs(v)));
    return (v < 0 ? "rgba(37, 99, 235, " : "rgba(220, 38, 38, ") + a.toFixed(3) + ")";
  }

  function drawHeat(side, data) {
    var canvas = side.querySelector(".heat-canvas");
    var caption = side.querySelector(".heat-caption");
    var rows = data.prompt.length, cols = data.response.length;
    var cell = Math.max(6, Math.min(16, Math.floor(560 / Math.max(cols, 1))));
    var left = 110, top = 90;
    canvas.width = left + cols * cell + 4;
    canvas.height = top + rows * cell + 4;
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.font = Math.min(11, cell) + "px monospace";
    ctx.fillStyle = "#1f2328";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (var i = 0; i < rows; i++) ctx.fillText(data.prompt[i].slice(0, 14), left - 4, top + i * cell + cell / 2);
    ctx.save();
    for (var j = 0; j < cols; j++) {
      ctx.setTransform(1, 0, 0, 1, left + j * cell + cell / 2, top - 4);
      ctx.rotate(-Math.PI / 3);
      ctx.textAlign = "left";
      ctx.fillText(data.response[j].slice(0, 10), 0, 0);
    }
    ctx.restore();
    for (i = 0; i < rows; i++) {
      for (j = 0; j < cols; j++) {
        var v = data.values[i][j];
        ctx.fillStyle = v !== 0 ? colour(v) : "#f6f8fa";
        ctx.fillRect(left + j * cell, top + i * cell, cell - 1, cell - 1);
      }
    }
    canvas.onmousemove = function (ev) {
      var r = canvas.getBoundingClientRect();
      var x = (ev.clientX - r.left) * canvas.width / r.width, y = (ev.clientY - r.top) * canvas.height / r.height;
      var j = Math.floor((x - left) / cell), i = Math.floor((y - top) / cell);
      highlight(side, -1, -1);
      if (i < 0 || j < 0 || i >= rows || j >= cols) { caption.textContent = "hover a cell"; return; }
      caption.textContent = "prompt token " + i + " \u00ab" + data.prompt[i] + "\u00bb \u2192 response token " + j +
        " \u00ab" + data.response[j] + "\u00bb: " + data.values[i][j].toFixed(2) + " (post-processed attribution / L)";
      highlight(side, i, j);
    };
  }

  function highlight(side, i, j) {
    side.querySelectorAll(".hl").forEach(function (e) { e.classList.remove("hl"); });
    if (i >= 0) { var t = side.querySelector('.tok[data-i="' + i + '"]'); if (t) t.classList.add("hl"); }
    if (j >= 0) { var r = side.querySelector('.rtok[data-j="' + j + '"]'); if (r) r.classList.add("hl"); }
  }

  function initSection(section) {
    var script = section.querySelector("script.heat-data");
    var heat = script ? JSON.parse(script.textContent) : {};
    section.querySelectorAll("table.sortable").forEach(initSortable);
    section.querySelectorAll("tr.has-detail").forEach(function (row) {
      var open = function () { showDetail(section, row.getAttribute("data-detail"), row); };
      row.addEventListener("click", open);
      row.addEventListener("keydown", function (ev) { if (ev.key === "Enter") open(); });
    });
    section.querySelectorAll(".side").forEach(function (side) {
      var key = side.getAttribute("data-heat");
      var box = side.querySelector(".heat");
      var toggle = function () {
        box.hidden = !box.hidden;
        if (!box.hidden && heat[key] && !box.getAttribute("data-drawn")) { drawHeat(side, heat[key]); box.setAttribute("data-drawn", "1"); }
      };
      side.querySelector(".heat-toggle").addEventListener("click", toggle);
      side.querySelectorAll(".tok").forEach(function (t) {
        t.addEventListener("click", function () { if (box.hidden) toggle(); });
      });
    });
  }

  document.querySelectorAll("section.attribution").forEach(initSection);
})();

// Sort any table.sortable by a click on a column header (numbers numerically, '-' last) and keep the sort in
// the page's URL (a reload, a bookmark or the CSV link shows the same order); submit the leaderboard filters
// when one changes. No framework: a few lines of DOM code.
"use strict";

function cellKey(row, col) {
  const td = row.cells[col];
  const v = td.dataset.value;
  if (v !== undefined && v !== "") return {num: true, v: parseFloat(v)};
  const text = td.textContent.trim();
  return text === "-" || text === "" ? {num: true, v: NaN} : {num: false, v: text.toLowerCase()};
}

function compareKeys(a, b, dir) {
  const aMissing = a.num && isNaN(a.v), bMissing = b.num && isNaN(b.v);
  if (aMissing || bMissing) return aMissing - bMissing;  // missing values stay last either way
  if (a.num && b.num) return dir * (a.v - b.v);
  return dir * String(a.v).localeCompare(String(b.v));
}

function keepInUrl(column, order) {
  const url = new URL(window.location.href);
  url.searchParams.set("sort", column);
  url.searchParams.set("order", order);
  history.replaceState(null, "", url);
  for (const f of document.querySelectorAll("[data-sort-field]")) f.value = column;
  for (const f of document.querySelectorAll("[data-order-field]")) f.value = order;
  for (const a of document.querySelectorAll("a[data-keep-query]")) a.search = url.search;
}

function sortTable(table, col) {
  const th = table.tHead.rows[0].cells[col];
  const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  for (const h of table.tHead.rows[0].cells) h.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).map((r, i) => ({r, i, k: cellKey(r, col)}));
  rows.sort((a, b) => compareKeys(a.k, b.k, dir) || a.i - b.i);
  for (const {r} of rows) body.appendChild(r);
  if (th.dataset.col) keepInUrl(th.dataset.col, dir === 1 ? "asc" : "desc");
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tHead.rows[0].cells).forEach((th, col) => {
      if (th.classList.contains("pick")) return;
      th.addEventListener("click", () => sortTable(table, col));
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sortTable(table, col); });
    });
  }
  for (const el of document.querySelectorAll("[data-autosubmit]")) {
    el.addEventListener("change", () => el.form.submit());
  }
});

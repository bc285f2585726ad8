// The statedb web view: the tables, and one table as a grid that follows
// its change stream (Server-Sent Events) live. No framework, no build step.
"use strict";

const BASE = document.body.dataset.base;
const $ = (sel) => document.querySelector(sel);

const state = {
  table: null,      // name of the open table
  columns: [],      // column names
  own: false,       // the table has its own columns (cells), not JSON fields
  rows: new Map(),  // key -> { tr, change }
  source: null,     // EventSource
  sort: null,       // { col, dir }
  selected: null,   // key of the row shown in the detail pane
};

function setStatus(text) { $("#status").textContent = text; }

// ---- the table list ---------------------------------------------------

let tableInfo = [];

async function loadTables() {
  try {
    const res = await fetch(BASE + "tables");
    if (!res.ok) throw new Error("HTTP " + res.status);
    tableInfo = await res.json();
  } catch (e) {
    setStatus("cannot list tables: " + e.message);
    return;
  }
  const ul = $("#tables");
  ul.replaceChildren(...tableInfo.map((t) => {
    const a = document.createElement("a");
    a.href = "#" + encodeURIComponent(t.name);
    a.dataset.table = t.name;
    a.className = t.name === state.table ? "current" : "";
    const name = document.createElement("span");
    name.textContent = t.name;
    const n = document.createElement("span");
    n.className = "n";
    n.textContent = t.objects;
    a.append(name, n);
    const li = document.createElement("li");
    li.append(a);
    return li;
  }));
}

// ---- one table ----------------------------------------------------------

function openTable(name) {
  if (state.source) state.source.close();
  state.table = name;
  state.rows = new Map();
  state.sort = null;
  state.selected = null;
  $("#detail").hidden = true;
  $("#grid tbody").replaceChildren();
  $("#title").textContent = name || "Pick a table";
  for (const a of document.querySelectorAll("#tables a")) {
    a.className = a.dataset.table === name ? "current" : "";
  }
  const info = tableInfo.find((t) => t.name === name);
  state.own = !!(info && info.columns);
  state.columns = state.own ? info.columns.slice() : [];
  renderHeader();
  updateCount();
  if (!name) return;
  if (!info) {
    // Not a table of this server (a stale link, a typo): say so, instead
    // of a stream that can only fail.
    state.table = null;
    $("#title").textContent = "No table " + JSON.stringify(name);
    setStatus("no table " + JSON.stringify(name) + " on this server");
    updateCount();
    return;
  }
  const url = BASE + "tables/" + encodeURIComponent(name) + "/changes?format=sse&from=0";
  const source = new EventSource(url);
  state.source = source;
  source.addEventListener("open", () => setStatus("live"));
  source.addEventListener("error", () => {
    // The table went away (or the server restarted without it).
    if (tableInfo.length && !tableInfo.some((t) => t.name === name)) {
      source.close();
      setStatus("table " + JSON.stringify(name) + " is gone");
      return;
    }
    setStatus("reconnecting…");
  });
  source.addEventListener("start", (ev) => {
    const start = JSON.parse(ev.data);
    if (start.resync) {
      // The stream replays the whole table: forget what is shown.
      state.rows = new Map();
      $("#grid tbody").replaceChildren();
    }
  });
  source.addEventListener("upsert", (ev) => upsert(JSON.parse(ev.data)));
  source.addEventListener("delete", (ev) => remove(JSON.parse(ev.data)));
}

function cellsOf(change) {
  if (state.own) return change.cells || [];
  const o = change.object;
  if (o === null || typeof o !== "object" || Array.isArray(o)) {
    return [text(o)];
  }
  return state.columns.map((c) => text(o[c]));
}

function text(v) {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

// New JSON fields become new columns.
function learnColumns(change) {
  if (state.own) return false;
  const o = change.object;
  const fields = o !== null && typeof o === "object" && !Array.isArray(o) ? Object.keys(o) : ["value"];
  let added = false;
  for (const f of fields) {
    if (!state.columns.includes(f)) { state.columns.push(f); added = true; }
  }
  return added;
}

function renderHeader() {
  const tr = $("#grid thead tr");
  tr.replaceChildren(...state.columns.map((c, i) => {
    const th = document.createElement("th");
    th.textContent = c;
    if (state.sort && state.sort.col === i) th.className = state.sort.dir > 0 ? "asc" : "desc";
    th.addEventListener("click", () => sortBy(i));
    return th;
  }));
}

function fillRow(tr, change) {
  tr.replaceChildren(...cellsOf(change).map((c) => {
    const td = document.createElement("td");
    td.textContent = c;
    return td;
  }));
}

function upsert(change) {
  if (learnColumns(change)) {
    renderHeader();
    for (const row of state.rows.values()) fillRow(row.tr, row.change);
  }
  let row = state.rows.get(change.key);
  if (!row) {
    const tr = document.createElement("tr");
    tr.dataset.key = change.key;
    tr.addEventListener("click", () => select(change.key));
    row = { tr, change, removal: null };
    state.rows.set(change.key, row);
    $("#grid tbody").append(tr);
  }
  if (row.removal) { clearTimeout(row.removal); row.removal = null; }
  row.change = change;
  row.tr.classList.remove("deleted");
  fillRow(row.tr, change);
  flash(row.tr);
  placeRow(row.tr);
  applyFilter(row.tr);
  if (state.selected === change.key) showDetail(change);
  updateCount();
}

function remove(change) {
  const row = state.rows.get(change.key);
  if (!row) return;
  row.change = change;
  row.tr.classList.remove("flash");
  row.tr.classList.add("deleted");
  // Fade out, then go.
  row.removal = setTimeout(() => {
    row.tr.remove();
    // Only if it is still this row: a resync or another table may have
    // put a new one under the same key meanwhile.
    if (state.rows.get(change.key) !== row) return;
    state.rows.delete(change.key);
    if (state.selected === change.key) $("#detail").hidden = true;
    updateCount();
  }, 1000);
}

function flash(tr) {
  tr.classList.remove("flash");
  void tr.offsetWidth; // restart the animation
  tr.classList.add("flash");
}

// A row keeps its flash only while it plays: moved later (sorting), it
// would play again.
document.addEventListener("animationend", (ev) => {
  if (ev.target.classList) ev.target.classList.remove("flash");
});

function updateCount() {
  const rows = [...state.rows.values()].filter((r) => !r.removal);
  const live = rows.length;
  const shown = rows.filter((r) => !r.tr.classList.contains("hidden")).length;
  const noun = live === 1 ? " object" : " objects";
  $("#count").textContent = !state.table ? ""
    : shown === live ? live + noun
    : shown + " of " + live + noun;
  // The open table's count in the list follows live too.
  for (const a of document.querySelectorAll("#tables a")) {
    if (a.dataset.table === state.table) a.querySelector(".n").textContent = live;
  }
}

// ---- sorting, filtering, detail ----------------------------------------

function compare(a, b) {
  const x = Number(a), y = Number(b);
  if (a !== "" && b !== "" && !Number.isNaN(x) && !Number.isNaN(y)) return x - y;
  return a.localeCompare(b);
}

function sortKey(tr) {
  const td = tr.children[state.sort.col];
  return td ? td.textContent : "";
}

function sortBy(col) {
  const dir = state.sort && state.sort.col === col ? -state.sort.dir : 1;
  state.sort = { col, dir };
  renderHeader();
  const body = $("#grid tbody");
  const trs = [...body.children];
  trs.sort((a, b) => dir * compare(sortKey(a), sortKey(b)));
  body.append(...trs);
}

// Keeps a changed row in sorted order.
function placeRow(tr) {
  if (!state.sort) return;
  const body = $("#grid tbody");
  const key = sortKey(tr);
  for (const other of body.children) {
    if (other !== tr && state.sort.dir * compare(key, sortKey(other)) < 0) {
      body.insertBefore(tr, other);
      return;
    }
  }
  body.append(tr);
}

function applyFilter(tr) {
  const f = $("#filter").value.trim().toLowerCase();
  tr.classList.toggle("hidden", f !== "" && !tr.textContent.toLowerCase().includes(f));
}

function select(key) {
  const row = state.rows.get(key);
  if (!row) return;
  for (const tr of document.querySelectorAll("#grid tbody tr.selected")) tr.classList.remove("selected");
  row.tr.classList.add("selected");
  state.selected = key;
  showDetail(row.change);
}

function showDetail(change) {
  $("#json").textContent = JSON.stringify(
    { revision: change.revision, deleted: change.deleted, object: change.object }, null, 2);
  $("#detail").hidden = false;
}

// ---- wiring ----------------------------------------------------------------

for (const ev of ["input", "change", "search"]) {
  $("#filter").addEventListener(ev, () => {
    for (const tr of $("#grid tbody").children) applyFilter(tr);
    updateCount();
  });
}
$("#close").addEventListener("click", () => {
  $("#detail").hidden = true;
  state.selected = null;
});
window.addEventListener("hashchange", () => openTable(decodeURIComponent(location.hash.slice(1))));

(async () => {
  await loadTables();
  const wanted = decodeURIComponent(location.hash.slice(1));
  openTable(wanted || (tableInfo[0] && tableInfo[0].name) || null);
  setInterval(loadTables, 3000);
})();

// The causalvae viewer's page: plain JavaScript over the JSON API under /api/ (see docs/viewer.md).
//
// One state object holds the graph (from /api/graph) and each variable's setting (a value,
// given as evidence or set by do). Every change redraws the graph's marks; in the
// counterfactual mode with a picture chosen, it also asks for the counterfactual again.
// A continuous variable (the graph says which) is set with a number input and sent as a
// JSON number; its answers are numbers with their error.
"use strict";

const state = {
  graph: null,
  settings: {},        // variable -> {value: "" | name | number, mode: "given" | "do"}
  mode: "sample",
  source: null,        // the counterfactual's picture: {index} or {image, labels}
  galleryOffset: 0,
  cfRequest: 0,        // the latest counterfactual request: older answers are dropped
};

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const UNIT = 72;       // SVG units per inch of the server's layout

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function fmt(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return "undefined";
  if (p > 0 && p < 5e-5) return p.toExponential(1);
  return p.toFixed(4);
}

// A continuous value, read easily: at most `digits` significant digits.
function num(x, digits = 5) {
  if (x === null || x === undefined || Number.isNaN(x)) return "undefined";
  return String(Number(x.toPrecision(digits)));
}

// A value as the API gives it: a discrete value's name, or a number.
const show = (v, digits = 5) => (typeof v === "number" ? num(v, digits) : v);

// A number's stated error: "exact", or its size and kind (quadrature, standard error).
function errorText(e) {
  if (e.error_kind === "exact") return "exact";
  return `± ${e.error === 0 ? "0" : e.error.toExponential(1)} (${e.error_kind})`;
}

const variable = (name) => state.graph.variables.find((v) => v.name === name);
const isSet = (s) => s !== undefined && s.value !== "";

// POST (with a body) or GET an API path; a non-2xx answer throws its "detail" message.
async function api(path, body) {
  const init = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) throw new Error((data && data.detail) || `${response.status} ${response.statusText}`);
  return data;
}

// Disable a form's buttons and show "working…" while a request runs.
async function working(statusId, buttons, errorId, task) {
  const status = $(statusId), error = $(errorId);
  buttons.forEach((b) => { b.disabled = true; });
  status.textContent = "working…";
  error.hidden = true;
  const t0 = performance.now();
  try {
    const result = await task();
    status.textContent = `done in ${((performance.now() - t0) / 1000).toFixed(2)} s`;
    return result;
  } catch (e) {
    status.textContent = "";
    error.textContent = e.message;
    error.hidden = false;
    return null;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function assignments(mode) {
  const out = {};
  for (const [name, s] of Object.entries(state.settings)) if (isSet(s) && s.mode === mode) out[name] = s.value;
  return out;
}

const describe = (a) => Object.entries(a).map(([k, v]) => `${k}=${show(v)}`).join(", ");

// ----------------------------------------------------------------------------- the graph

function drawGraph() {
  const g = state.graph, L = g.layout, svg = $("graph");
  const pad = 6, h = L.box_height * UNIT;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `${-pad} ${-pad} ${L.width * UNIT + 2 * pad} ${L.height * UNIT + 2 * pad}`);
  const defs = el("svg:defs");
  for (const [id, cls] of [["arrow", "edge"], ["arrow-image", "edge to-image"], ["arrow-cut", "edge cut"]]) {
    defs.append(el("svg:marker", {id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"},
      el("svg:path", {d: "M0,0 L10,5 L0,10 z", class: cls + " head"})));
  }
  svg.append(defs);
  const done = assignments("do");
  for (const e of L.edges) {
    const pts = e.points.map(([x, y]) => [x * UNIT, y * UNIT]);
    let d = `M${pts[0][0]},${pts[0][1]}`;
    for (let i = 1; i < pts.length; i++) {            // vertical tangents at every point, as the PNG drawing
      const [x0, y0] = pts[i - 1], [x1, y1] = pts[i], bend = (y1 - y0) / 2;
      d += ` C${x0},${y0 + bend} ${x1},${y1 - bend} ${x1},${y1}`;
    }
    const cut = e.target in done;                     // do() removes the arrows into the intervened variable
    const toImage = e.target === g.image_name;
    const cls = cut ? "edge cut" : toImage ? "edge to-image" : "edge";
    svg.append(el("svg:path", {d, class: cls, "marker-end": `url(#${cut ? "arrow-cut" : toImage ? "arrow-image" : "arrow"})`}));
  }
  for (const n of L.nodes) {
    const s = state.settings[n.name];
    const set = isSet(s) ? s.mode : "";
    const x = n.x * UNIT - n.width * UNIT / 2, y = n.y * UNIT - h / 2;
    const group = el("svg:g", {class: `node ${n.kind} ${set}`, "data-name": n.name});
    if (n.kind === "image") {
      group.append(el("svg:rect", {x: x - 3.6, y: y - 3.6, width: n.width * UNIT + 7.2, height: h + 7.2, rx: 9, class: "rim"}));
    } else {
      group.setAttribute("tabindex", "0");
      group.setAttribute("role", "button");
      group.setAttribute("aria-label", `${n.name}${set ? `, ${set} ${show(s.value)}` : ""}: open its controls`);
      group.addEventListener("click", () => openControls(n.name));
      group.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); openControls(n.name); } });
    }
    group.append(el("svg:rect", {x, y, width: n.width * UNIT, height: h, rx: 6.5, class: "box"}));
    group.append(el("svg:text", {x: n.x * UNIT, y: n.y * UNIT - 3, class: "name", text: n.name}));
    const sub = !set ? n.values : set === "do" ? `do = ${show(s.value)}` : `given = ${show(s.value)}`;
    group.append(el("svg:text", {x: n.x * UNIT, y: n.y * UNIT + 11, class: "values", text: sub}));
    svg.append(group);
  }
}

function openControls(name) {
  document.querySelectorAll("#controls tr.active").forEach((r) => r.classList.remove("active"));
  const row = $(`row-${name}`);
  row.classList.add("active");
  row.scrollIntoView({block: "nearest", behavior: "smooth"});
  $(`value-${name}`).focus();
}

// ----------------------------------------------------------------------------- the controls

// A continuous variable's input: a number within its support, its typical range beside it
// (the marginal's 0.5% and 99.5% quantiles), its median as the placeholder.
function numberInput(v, id, label) {
  const q = v.quantiles || [];
  const attrs = {type: "number", step: "any", id, class: "number", "aria-label": label};
  if (v.support && v.support[0] !== null) attrs.min = v.support[0];
  if (v.support && v.support[1] !== null) attrs.max = v.support[1];
  if (q.length) {
    const median = q.find(([level]) => level === 0.5);
    if (median) attrs.placeholder = num(median[1], 3);
    attrs.title = `typical values (quantiles): ${q.map(([level, x]) => `${level * 100}%: ${num(x, 3)}`).join(", ")}`;
  }
  return el("input", attrs);
}

// The range text shown beside a continuous variable's input.
function rangeText(v) {
  const q = v.quantiles || [];
  return q.length ? `${num(q[0][1], 3)} – ${num(q[q.length - 1][1], 3)}` : "";
}

// An input's value as the API takes it: "" (unset), a number (continuous) or a value's name.
function inputValue(input) {
  if (input.tagName !== "INPUT") return input.value;
  if (input.value === "") return input.validity.badInput ? NaN : "";
  return Number(input.value);
}

function buildControls() {
  const body = document.querySelector("#controls tbody");
  for (const v of state.graph.variables) {
    state.settings[v.name] = {value: "", mode: "given"};
    let value, cell;
    if (v.continuous) {
      value = numberInput(v, `value-${v.name}`, `value of ${v.name}`);
      cell = el("td", {}, value, el("span", {class: "range muted", text: ` ${rangeText(v)}`}));
    } else {
      value = el("select", {id: `value-${v.name}`, "aria-label": `value of ${v.name}`}, el("option", {value: "", text: "—"}));
      for (const x of v.values) value.append(el("option", {value: x, text: x}));
      cell = el("td", {}, value);
    }
    const mode = el("select", {id: `mode-${v.name}`, "aria-label": `how ${v.name} is set`},
      el("option", {value: "given", text: "given"}), el("option", {value: "do", text: "do"}));
    value.addEventListener("change", () => { state.settings[v.name].value = inputValue(value); settingsChanged(); });
    mode.addEventListener("change", () => { state.settings[v.name].mode = mode.value; settingsChanged(); });
    const label = el("th", {scope: "row", title: v.description || ""}, el("label", {for: `value-${v.name}`, text: v.name}));
    if (v.hidden) label.append(el("span", {class: "tag", text: "hidden"}));
    body.append(el("tr", {id: `row-${v.name}`, class: v.hidden ? "hidden-var" : ""}, label, cell, el("td", {}, mode)));
  }
  $("clear-settings").addEventListener("click", () => {
    for (const [name, s] of Object.entries(state.settings)) {
      s.value = ""; s.mode = "given";
      $(`value-${name}`).value = ""; $(`mode-${name}`).value = "given";
    }
    settingsChanged();
  });
}

function settingsChanged() {
  const given = assignments("given"), done = assignments("do");
  const parts = [];
  if (Object.keys(given).length) parts.push(`given ${describe(given)}`);
  if (Object.keys(done).length) parts.push(`do(${describe(done)})`);
  $("settings-summary").textContent = parts.join("; ") || "nothing set";
  $("cf-evidence-note").hidden = Object.keys(given).length === 0;
  drawGraph();
  if (state.mode === "counterfactual" && state.source) runCounterfactual();
}

// ----------------------------------------------------------------------------- tabs

function showMode(mode) {
  state.mode = mode;
  for (const m of ["sample", "counterfactual", "query"]) {
    $(`tab-${m}`).setAttribute("aria-selected", String(m === mode));
    $(`panel-${m}`).hidden = m !== mode;
  }
  if (mode === "counterfactual" && state.galleryOffset === 0 && state.graph.gallery > 0) loadGallery();
}

// ----------------------------------------------------------------------------- sample

function distributionTable(rows, headers) {
  // rows: [{variable, value, cells: [number | null]}]; the first number column gets a bar.
  const table = el("table", {class: "dist"});
  const head = el("tr", {}, el("th", {scope: "col", text: "variable"}), el("th", {scope: "col", text: "value"}));
  headers.forEach((h) => head.append(el("th", {scope: "col", text: h})));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  let last = null;
  for (const r of rows) {
    const tr = el("tr", {class: r.variable !== last ? "first" : ""},
      el("th", {scope: "row", text: r.variable !== last ? r.variable : ""}), el("td", {text: r.value}));
    r.cells.forEach((p, i) => {
      const td = el("td", {class: "num"});
      if (p !== null) {
        td.append(el("span", {class: `bar bar${i}`, style: `width:${Math.round(p * 44)}px`}), el("span", {text: fmt(p)}));
      } else td.textContent = "–";
      tr.append(td);
    });
    body.append(tr);
    last = r.variable;
  }
  table.append(body);
  return table;
}

async function runSample(event) {
  event.preventDefault();
  const body = {evidence: assignments("given"), do: assignments("do"), n: Number($("sample-n").value), seed: Number($("sample-seed").value)};
  const data = await working("sample-status", [$("sample-run")], "sample-error", () => api("/api/sample", body));
  if (!data) return;
  const grid = $("sample-grid");
  grid.replaceChildren();
  const parents = state.graph.image_parents;
  const readable = data.read ? parents.filter((p) => p in data.read) : [];
  data.images.forEach((src, i) => {
    const caption = parents.map((p) => show(data.values[p][i], 3)).join(" ");
    const figure = el("figure", {}, el("img", {src, alt: `picture ${i + 1}: ${caption}`}), el("figcaption", {text: caption}));
    if (readable.length) {                            // the oracle's reading of the continuous parents
      figure.append(el("figcaption", {class: "read", title: `read by the oracle: ${readable.join(", ")}`,
        text: `read ${readable.map((p) => num(data.read[p][i], 3)).join(" ")}`}));
    }
    grid.append(figure);
  });
  const withOracle = data.read_back !== null;  // hidden variables have no read column: "–"
  const headers = ["exact", `drawn (${data.n})`].concat(withOracle ? [`read off the pictures (${data.n})`] : []);
  const rows = [];
  for (const d of data.distributions) {
    d.values.forEach((v, k) => rows.push({variable: d.variable, value: v, cells: [d.exact[k], d.drawn[k]].concat(withOracle ? [d.read === null ? null : d.read[k]] : [])}));
  }
  const box = $("sample-table");
  box.replaceChildren();
  const set = [describe(data.evidence) && `given ${describe(data.evidence)}`, describe(data.do) && `do(${describe(data.do)})`].filter(Boolean).join("; ");
  box.append(el("h3", {text: `The variables left unset${set ? ` (${set})` : ""}`}));
  const continuous = data.continuous || [];
  if (rows.length || !continuous.length) box.append(rows.length ? distributionTable(rows, headers) : el("p", {text: "Every variable is set."}));
  if (continuous.length) box.append(continuousTable(data));
  const oracle = data.read_back !== null || Boolean(data.read);
  if (data.read_back !== null) {
    const which = continuous.length ? "discrete label" : "label";
    box.append(el("p", {class: "muted", text: `The oracle reads back every ${which} the decoder was given in ${(100 * data.read_back).toFixed(1)}% of the pictures.`}));
  }
  if (!oracle) box.append(el("p", {class: "muted", text: "No oracle: start the viewer with --oracle to read the labels off the pictures."}));
}

// The continuous variables of a sample: the value set, or the expectation by the mixed
// engine with its stated error; the mean drawn; the mean the oracle reads off the pictures.
function continuousTable(data) {
  const withOracle = Boolean(data.read);
  const headers = ["variable", "set", "expected value", "its error", `mean drawn (${data.n})`]
    .concat(withOracle ? [`mean read (${data.n})`, "mean |read − drawn|"] : []);
  const table = el("table", {class: "dist continuous"});
  table.append(el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {scope: "col", text: h})))));
  const body = el("tbody");
  for (const c of data.continuous) {
    const e = c.expected;
    const cells = [
      el("td", {text: c.set ? `${c.set}` : "–"}),
      el("td", {class: "num", text: e ? num(e.value) : "–", title: e ? e.method : ""}),
      el("td", {class: "num", text: e ? errorText(e) : "–"}),
      el("td", {class: "num", text: num(c.drawn_mean)}),
    ];
    if (withOracle) cells.push(el("td", {class: "num", text: c.read_mean === null ? "–" : num(c.read_mean)}), el("td", {class: "num", text: c.read_error === null ? "–" : num(c.read_error)}));
    body.append(el("tr", {"data-variable": c.variable}, el("th", {scope: "row", text: c.variable}), ...cells));
  }
  table.append(body);
  const methods = data.continuous.filter((c) => c.expected).map((c) => `${c.variable}: ${c.expected.method}`);
  const box = el("div", {}, el("h3", {text: "Continuous variables"}), table);
  if (methods.length) box.append(el("p", {class: "muted", text: `Expected values by ${methods.join("; ")}.`}));
  return box;
}

// ----------------------------------------------------------------------------- counterfactual

async function loadGallery() {
  const n = 24;
  const data = await working("cf-status", [$("gallery-more")], "cf-error", () => api(`/api/gallery?n=${n}&offset=${state.galleryOffset}`));
  if (!data) return;
  const box = $("gallery");
  for (const item of data.items) {
    const text = Object.entries(item.labels).map(([k, v]) => `${k}=${v === null ? "?" : show(v)}`).join(", ");
    const button = el("button", {type: "button", class: "thumb", id: `gallery-${item.index}`, title: `test picture ${item.index}: ${text}`, "aria-pressed": "false"},
      el("img", {src: item.image, alt: `test picture ${item.index}: ${text}`}));
    button.addEventListener("click", () => {
      document.querySelectorAll(".thumb[aria-pressed=true]").forEach((b) => b.setAttribute("aria-pressed", "false"));
      button.setAttribute("aria-pressed", "true");
      state.source = {index: item.index};
      runCounterfactual();
    });
    box.append(button);
  }
  state.galleryOffset = data.offset + data.items.length;
  $("gallery-info").textContent = `${state.galleryOffset} of ${data.total}`;
  $("gallery-more").disabled = state.galleryOffset >= data.total;
}

function buildUpload() {
  const box = $("upload-labels");
  for (const name of state.graph.label_columns) {
    const v = variable(name);
    if (v.continuous) {                               // needed: the model abducts its noise from it
      box.append(el("label", {}, `${name} `, numberInput(v, `upload-${name}`, `${name} of the uploaded picture`)));
      continue;
    }
    const select = el("select", {id: `upload-${name}`}, el("option", {value: "", text: "unknown"}));
    v.values.forEach((x) => select.append(el("option", {value: x, text: x})));
    box.append(el("label", {}, `${name} `, select));
  }
  $("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) { $("cf-error").textContent = "choose a PNG file first"; $("cf-error").hidden = false; return; }
    const image = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
    const labels = {};
    for (const name of state.graph.label_columns) {
      const value = inputValue($(`upload-${name}`));
      if (value !== "") labels[name] = value;
    }
    document.querySelectorAll(".thumb[aria-pressed=true]").forEach((b) => b.setAttribute("aria-pressed", "false"));
    state.source = {image, labels};
    runCounterfactual();
  });
}

async function runCounterfactual(event) {
  if (event) event.preventDefault();
  if (!state.source) { $("cf-error").textContent = "pick a test picture or upload one first"; $("cf-error").hidden = false; return; }
  const ticket = ++state.cfRequest;
  const body = {...state.source, do: assignments("do"), seed: Number($("cf-seed").value)};
  const data = await working("cf-status", [$("cf-run")], "cf-error", () => api("/api/counterfactual", body));
  if (!data || ticket !== state.cfRequest) return;
  $("cf-result").hidden = false;
  for (const k of ["factual", "reconstruction", "counterfactual", "difference"]) $(`cf-${k}`).src = data[k];
  const done = describe(data.do);
  $("cf-caption").textContent = done ? `counterfactual: do(${done})` : "counterfactual: no intervention";
  $("cf-diff-caption").textContent = `difference (largest: ${data.difference_max.toFixed(0)} of 255)`;
  const table = el("table", {class: "dist cf"});
  table.append(el("thead", {}, el("tr", {},
    ...["variable", "factual", "counterfactual", "exact P(counterfactual value | factual labels)"].map((h) => el("th", {scope: "col", text: h})))));
  const body2 = el("tbody");
  for (const v of data.variables) {
    const probs = el("td", {class: "probs"});
    if (v.exact) {
      v.values.forEach((x, k) => probs.append(el("span", {class: `prob${x === v.counterfactual ? " used" : ""}`},
        el("span", {class: "bar bar0", style: `width:${Math.round(v.exact[k] * 40)}px`}), `${x} ${fmt(v.exact[k])}`)));
    } else if (v.continuous) {
      const how = v.variable in data.do ? "set by do" : "recomputed from its abducted noise";
      probs.append(el("span", {class: "muted", text: how}));
      if (typeof v.read_factual === "number") probs.append(el("span", {class: "read", text: ` · the oracle reads ${num(v.read_factual)} → ${num(v.read_counterfactual)}`}));
    } else probs.append(el("span", {class: "muted", text: "hidden: abducted, not labelled"}));
    const name = el("th", {scope: "row", text: v.variable});
    if (v.hidden) name.append(el("span", {class: "tag", text: "hidden"}));
    body2.append(el("tr", {class: `${v.hidden ? "hidden-var" : ""}${v.factual !== v.counterfactual ? " changed" : ""}`},
      name, el("td", {text: show(v.factual)}), el("td", {text: show(v.counterfactual)}), probs));
  }
  table.append(body2);
  $("cf-table").replaceChildren(table);
}

// ----------------------------------------------------------------------------- query

async function runQuery(event) {
  if (event) event.preventDefault();
  const text = $("query-text").value.trim();
  const data = await working("query-status", [$("query-run")], "query-error", () => api("/api/query", {query: text}));
  const box = $("query-result");
  box.replaceChildren();
  if (!data) return;
  box.append(el("h3", {text: `${data.query}   (graph: ${data.graph})`}));
  if (data.kind === "causation") {
    const table = el("table", {class: "dist"});
    table.append(el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "contrast"}),
      ...["PN", "PS", "PNS"].map((m) => el("th", {scope: "col", text: m + (m === data.measure ? " *" : "")})))));
    const body = el("tbody");
    for (const c of data.contrasts) body.append(el("tr", {}, el("th", {scope: "row", text: c.contrast}), ...[c.PN, c.PS, c.PNS].map((p) => el("td", {class: "num", text: fmt(p)}))));
    table.append(body);
    box.append(table, el("p", {class: "muted", text: `cause ${data.treatment}, effect ${data.outcome}; PN: necessary, PS: sufficient, PNS: both`}));
    return;
  }
  if (data.kind === "estimate") {                    // E, Q, p or P(y > c) of a continuous variable
    const e = data.estimate;
    box.append(el("p", {class: "answer", text: `${e.what} of ${e.label}: ${num(e.value)}   (error: ${errorText(e)})`}),
      el("p", {class: "muted", text: `method: ${e.method}`}));
    return;
  }
  if (data.kind === "summary") {                     // P(y | ...) of a continuous variable
    const table = el("table", {class: "dist summary"});
    table.append(el("thead", {}, el("tr", {}, ...[data.variables[0], "value", "error", "method"].map((h) => el("th", {scope: "col", text: h})))));
    const body = el("tbody");
    for (const e of [data.mean, ...data.quantiles]) {
      body.append(el("tr", {}, el("th", {scope: "row", text: e.level === null ? "mean" : `${e.level * 100}% quantile`}),
        el("td", {class: "num", text: num(e.value)}), el("td", {class: "num", text: errorText(e)}), el("td", {class: "muted", text: e.method})));
    }
    table.append(body);
    box.append(table, el("p", {class: "muted", text: `${data.variables[0]} is continuous: its distribution is summed up by its mean and quantiles (ask E, Q, p or P(${data.variables[0]} > x) for others).`}));
    return;
  }
  // Fields of graphs with continuous variables are absent from the others' answers.
  const withError = Boolean(data.method) && data.error_kind !== "exact";
  const table = el("table", {class: "dist"});
  table.append(el("thead", {}, el("tr", {}, ...data.variables.map((v) => el("th", {scope: "col", text: v})), el("th", {scope: "col", text: "probability"}),
    ...(withError ? [el("th", {scope: "col", text: data.error_kind})] : []))));
  const body = el("tbody");
  for (const r of data.rows) {
    const asked = data.event && r.values.every((v, i) => v === data.event[i]);
    const td = el("td", {class: "num"}, el("span", {class: "bar bar0", style: `width:${Math.round(r.probability * 120)}px`}), el("span", {text: fmt(r.probability)}));
    const err = withError ? [el("td", {class: "num", text: r.error === 0 ? "0" : r.error.toExponential(1)})] : [];
    body.append(el("tr", {class: asked ? "asked" : ""}, ...r.values.map((v) => el("td", {text: v})), td, ...err));
  }
  table.append(body);
  box.append(table);
  if (data.probability !== null) box.append(el("p", {class: "answer", text: `P(${data.event.join(", ")} | …) = ${data.probability.toFixed(6)}`}));
  if (data.method) box.append(el("p", {class: "muted", text: `method: ${data.method}`}));
}

// ----------------------------------------------------------------------------- start

async function start() {
  try {
    state.graph = await api("/api/graph");
  } catch (e) {
    $("run-info").textContent = `cannot load the graph: ${e.message}`;
    return;
  }
  const g = state.graph;
  $("run-info").textContent = `model ${g.run} (graph ${g.name}, ${g.image_size}×${g.image_size} pictures)` +
    (g.oracle ? `; oracle ${g.oracle}` : "; no oracle") + (g.gallery ? `; ${g.gallery} test pictures` : "");
  $("graph").setAttribute("aria-label", `the causal graph '${g.name}': ${g.description}`);
  buildControls();
  buildUpload();
  settingsChanged();
  if (!g.gallery) {
    $("gallery").append(el("p", {class: "muted", text: g.gallery_note || "no test pictures"}));
    $("gallery-more").hidden = true;
    $("upload").open = true;
  }
  for (const m of ["sample", "counterfactual", "query"]) $(`tab-${m}`).addEventListener("click", () => showMode(m));
  $("sample-form").addEventListener("submit", runSample);
  $("cf-form").addEventListener("submit", runCounterfactual);
  $("gallery-more").addEventListener("click", loadGallery);
  $("query-form").addEventListener("submit", runQuery);
  for (const q of g.examples) {
    $("query-examples").append(el("button", {type: "button", class: "example", text: q, onclick: () => { $("query-text").value = q; runQuery(); }}), " ");
  }
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);

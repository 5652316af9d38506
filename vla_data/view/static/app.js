// vla-data view: plain JavaScript, no build step, no network beyond the viewer's own routes.
// Pages: #/ (overview), #/d/K (dataset K), #/d/K/episode/E, #/d/K/sample/I, #/batch/N[/B].
"use strict";

const VLA = (() => {
  // Served: JSON comes from fetch. Static export (opened from disk): from ROUTE.js scripts that
  // call VLA.receive, because browsers refuse fetch() on file:// pages.
  const isStatic = !!window.VLA_STATIC;
  const received = new Map();
  const waiting = new Map();
  function receive(route, data) {
    received.set(route, data);
    const w = waiting.get(route);
    if (w) { waiting.delete(route); w.resolve(data); }
  }
  async function api(route) {
    if (received.has(route)) return received.get(route);
    if (!isStatic) {
      const r = await fetch(route);
      const data = await r.json();
      if (!r.ok) throw new Error(data.error || r.statusText);
      return data;
    }
    return new Promise((resolve, reject) => {
      waiting.set(route, { resolve, reject });
      const s = document.createElement("script");
      s.src = route + ".js";
      s.onerror = () => { waiting.delete(route); reject(new Error(`${route} is not part of this export`)); };
      document.head.appendChild(s);
    });
  }
  return { receive, api, isStatic };
})();

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d", "#31a354",
  "#756bb1", "#636363", "#843c39"];
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}
// append children, skipping null/undefined (DOM append would print them)
function put(node, ...children) {
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}
function clear(node) { node.replaceChildren(); return node; }
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, v);
  for (const c of children.flat()) if (c) node.append(c);
  return node;
}
const fmt = (v) => (v === null || v === undefined ? "–" : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0)
  ? v.toExponential(2) : (+v.toFixed(4)).toString());
const colour = (i) => PALETTE[i % PALETTE.length];
let INDEX = null;

// Each route renders into its own detached view; only the newest one is attached, so a slow
// page that finishes after the user moved on is dropped. A view may carry `crumbs` and `cleanup`.
function crumbs(view, ...links) { view.crumbs = links; }
function exported(kind, k, item) {
  if (!VLA.isStatic) return true;
  const list = kind === "batches" ? INDEX.static.batches : (INDEX.static[kind][k] || []);
  return list.includes(item);
}
function link(href, text, ok = true) { return ok ? el("a", { href, text }) : el("span", { class: "muted", text }); }

// ---------------------------------------------------------------- plots
// A line plot of series[t][d] for the selected dims, with a marker at `marker`; returns {node, setMarker}.
function linePlot({ values, selected, width = 900, height = 200, overlay = null, padded = null, onSeek = null,
  feature = "" }) {
  const T = values.length;
  const pad = { l: 44, r: 8, t: 8, b: 18 };
  let lo = Infinity, hi = -Infinity;
  for (const row of [values, overlay || []]) for (const r of row) for (const d of selected) {
    const v = r[d];
    if (v !== null && v !== undefined) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  if (!isFinite(lo)) { lo = -1; hi = 1; }
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const x = (t) => pad.l + (T <= 1 ? 0 : (t / (T - 1)) * (width - pad.l - pad.r));
  const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (height - pad.t - pad.b);
  const node = svg("svg", { class: "plot", width, height, viewBox: `0 0 ${width} ${height}`, "data-feature": feature });
  put(node, svg("line", { class: "axis", x1: pad.l, x2: pad.l, y1: pad.t, y2: height - pad.b }));
  put(node, svg("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b }));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    const t = svg("text", { x: pad.l - 4, y: y(v) + 3, "text-anchor": "end" });
    t.textContent = fmt(v);
    put(node, t);
  }
  const tEnd = svg("text", { x: width - pad.r, y: height - 4, "text-anchor": "end" });
  tEnd.textContent = String(T - 1);
  put(node, tEnd);
  if (padded) {
    padded.forEach((p, t) => {
      if (p) put(node, svg("rect", { class: "padded", x: x(t - 0.5), width: x(1) - x(0), y: pad.t, height: height - pad.t - pad.b }));
    });
  }
  const line = (rows, d, cls) => svg("polyline", {
    class: cls, "data-dim": d, stroke: colour(d),
    points: rows.map((r, t) => (r[d] === null ? null : `${x(t).toFixed(1)},${y(r[d]).toFixed(1)}`)).filter(Boolean).join(" "),
  });
  for (const d of selected) put(node, line(values, d, "dim"));
  if (overlay) for (const d of selected) put(node, line(overlay, d, "recon"));
  const marker = svg("line", { class: "marker", x1: x(0), x2: x(0), y1: pad.t, y2: height - pad.b });
  put(node, marker);
  if (onSeek) {
    node.style.cursor = "crosshair";
    node.addEventListener("click", (e) => {
      const box = node.getBoundingClientRect();
      const px = ((e.clientX - box.left) / box.width) * width;
      onSeek(Math.max(0, Math.min(T - 1, Math.round(((px - pad.l) / (width - pad.l - pad.r)) * (T - 1)))));
    });
  }
  return { node, setMarker: (t) => { marker.setAttribute("x1", x(t)); marker.setAttribute("x2", x(t)); } };
}

function histogram(counts, width = 120, height = 26) {
  const max = Math.max(1, ...counts);
  const w = width / counts.length;
  return svg("svg", { class: "hist", width, height },
    counts.map((c, i) => svg("rect", { x: i * w, width: Math.max(1, w - 1), y: height - (c / max) * height, height: (c / max) * height })));
}

// A feature's curves with a dim legend (checkboxes); redraws on selection changes.
function seriesPanel(name, series, { overlay = null, onSeek, extra = null }) {
  const names = series.names;
  const selected = new Set(names.map((_, i) => i));
  const holder = el("div");
  const panel = el("section", { class: "card series", "data-feature": name });
  let plot = null;
  let current = 0;
  let showOverlay = !!overlay;
  const draw = () => {
    plot = linePlot({ values: series.values, selected: [...selected], overlay: showOverlay ? overlay : null, onSeek, feature: name });
    plot.setMarker(current);
    put(clear(holder), plot.node);
  };
  const boxes = names.map((n, i) => {
    const box = el("input", { type: "checkbox", checked: true, "data-dim": i,
      onchange: (e) => { e.target.checked ? selected.add(i) : selected.delete(i); draw(); } });
    return el("label", {}, box, el("span", { class: "swatch", style: `background:${colour(i)}` }), n);
  });
  const all = (on) => { boxes.forEach((b, i) => { b.firstChild.checked = on; on ? selected.add(i) : selected.delete(i); }); draw(); };
  put(panel, 
    el("h3", {}, `${name} `, el("span", { class: "muted", text: `${series.kind}, ${names.length} dims` })),
    el("div", { class: "legend" }, el("button", { onclick: () => all(true), text: "all" }),
      el("button", { onclick: () => all(false), text: "none" }), boxes),
    overlay ? el("label", {}, el("input", { type: "checkbox", checked: true, class: "toggle-recon",
      onchange: (e) => { showOverlay = e.target.checked; draw(); } }), " FAST reconstruction (dashed)") : null,
    holder, extra);
  draw();
  return { node: panel, setMarker: (t) => { current = t; plot.setMarker(t); } };
}

// ---------------------------------------------------------------- pages
async function overview(m) {
  crumbs(m);
  put(clear(m), el("h1", { text: "vla-data view" }));
  const rows = INDEX.datasets.map((d) => el("tr", {},
    el("td", {}, link(`#/d/${d.id}`, d.path)), el("td", { text: d.kind }),
    el("td", { class: "num", text: d.episodes }), el("td", { class: "num", text: d.frames })));
  put(m, el("h2", { text: "Datasets" }),
    el("table", {}, el("tr", {}, ["path", "kind", "episodes", "frames"].map((h) => el("th", { text: h }))), rows));
  if (INDEX.loader) {
    const c = INDEX.loader.config;
    put(m, el("h2", { text: "Loader" }), el("p", {},
      `batch size ${c.batch_size}, ${INDEX.loader.batches_per_epoch} batches per epoch, max_tokens ${c.max_tokens}, `
      + `horizon ${c.horizon}, image ${c.image_size.join("x")}, mode ${c.mode}, seed ${c.seed}. `,
      link("#/batch/0", "Open batch 0", exported("batches", null, 0))));
  }
}

async function datasetPage(m, k, page) {
  crumbs(m, [`dataset ${k}`, null]);
  const s = await VLA.api(`api/d/${k}/summary`);
  put(clear(m), el("h1", { text: s.path }),
    el("p", { class: "muted" }, `${s.kind} dataset · ${s.episodes} episodes · ${s.frames} frames · ${s.fps} fps · `
      + `${s.shards.total} shards (${(s.bytes / 1e6).toFixed(1)} MB) · from ${s.source.format || "?"} · ${s.created_by}`));

  put(m, el("h2", { text: "Features" }), el("table", { id: "features" },
    el("tr", {}, ["name", "kind", "dtype", "shape", "details"].map((h) => el("th", { text: h }))),
    Object.entries(s.features).map(([name, f]) => el("tr", {}, el("td", { text: name }), el("td", { text: f.kind }),
      el("td", { text: f.dtype }), el("td", { text: JSON.stringify(f.shape) }),
      el("td", { text: f.kind === "image" ? `${f.encoding} ${f.height}x${f.width}`
        + (f.original_height ? ` (source ${f.original_height}x${f.original_width})` : "")
        : (f.names ? f.names.join(", ") : "") })))));

  put(m, el("h2", { text: `Tasks (${s.tasks.total})` }),
    pagedList(k, "tasks", s.tasks, ["#", "task"], (t, i) => [el("td", { class: "num", text: i }), el("td", { text: t })]));
  if (s.skipped.total) {
    put(m, el("h2", { text: `Skipped episodes (${s.skipped.total})` }),
      pagedList(k, "skipped", s.skipped, ["source", "reason"], (x) => [
        el("td", { class: "muted", text: JSON.stringify(x.source_ref) }), el("td", { text: x.reason })]));
  }
  const episodes = el("div", { id: "episodes" });
  put(m, el("h2", { text: s.kind === "web" ? "Samples" : "Episodes" }), episodes);
  const stats = el("div", { id: "stats" });
  put(m, el("h2", { text: "Statistics" }), stats);
  put(m, el("h2", { text: "Shards" }), pagedList(k, "shards", s.shards, ["file", "rows", "episodes", "MB", "sha256"], (x) => [
    el("td", { text: x.file }), el("td", { class: "num", text: x.rows }), el("td", { class: "num", text: x.episodes }),
    el("td", { class: "num", text: (x.bytes / 1e6).toFixed(2) }), el("td", { class: "muted", text: x.sha256.slice(0, 16) + "…" })]));

  if (s.kind === "web") await samplesGrid(k, page, episodes);
  else await episodeList(k, page, episodes);
  await statsTables(k, s, stats);
}

// A manifest list (tasks, shards, skipped) a page at a time; `first` is page 0 from the summary.
function pagedList(k, name, first, headers, cells) {
  const holder = el("div", { class: "list", "data-list": name });
  const show = (p) => put(clear(holder), pager(p, (q) => VLA.api(`api/d/${k}/list/${name}/${q}`).then(show), true),
    el("table", {}, el("tr", {}, headers.map((h) => el("th", { text: h }))),
      p.items.map((item, i) => el("tr", {}, cells(item, p.start + i)))));
  show(first);
  return holder;
}

async function episodeList(k, page, holder) {
  const p = await VLA.api(`api/d/${k}/episodes/${page}`);
  const only = VLA.isStatic ? INDEX.static.episodes[k] || [] : null;
  put(clear(holder), only ? el("p", {}, "In this export: ", only.map((e) => el("a", { href: `#/d/${k}/episode/${e}`, text: `episode ${e} ` }))) : null,
    pager(p, (q) => `#/d/${k}/p/${q}`), el("table", {},
    el("tr", {}, ["episode", "length", "task", "shard", "source"].map((h) => el("th", { text: h }))),
    p.episodes.map((e) => el("tr", {},
      el("td", {}, link(`#/d/${k}/episode/${e.index}`, `episode ${e.index}`, exported("episodes", k, e.index))),
      el("td", { class: "num", text: e.length }), el("td", { text: e.task }), el("td", { text: e.shard }),
      el("td", { class: "muted", text: JSON.stringify(e.source) })))));
}

async function samplesGrid(k, page, holder) {
  const p = await VLA.api(`api/d/${k}/samples/${page}`);
  put(clear(holder), pager(p, (q) => `#/d/${k}/p/${q}`), el("div", { class: "samples" },
    p.samples.map((x) => el("a", { href: `#/d/${k}/sample/${x.index}` }, el("div", { class: "card" },
      x.images.length ? el("img", { src: x.images[0].url, loading: "lazy" }) : el("p", { class: "muted", text: "(text only)" }),
      el("div", { class: "muted", text: `#${x.index} ${x.kind || ""}` }),
      el("div", { text: (x.turns.find((t) => t.role === "assistant") || { text: "" }).text.slice(0, 80) }))))));
}

// Previous/next page buttons; `target(q)` is a hash to go to, or (inPlace) a function to call.
// A static export holds page 0 of each list only.
function pager(p, target, inPlace = false) {
  if (p.pages <= 1) return el("div", { class: "muted", text: `${p.total} in all` });
  const go = (q) => () => { if (inPlace) target(q); else location.hash = target(q); };
  return el("div", { class: "pager" },
    el("button", { onclick: go(p.page - 1), disabled: p.page === 0 || VLA.isStatic, text: "← previous" }),
    el("span", { text: `page ${p.page + 1} of ${p.pages} (${p.total} in all)` }),
    el("button", { onclick: go(p.page + 1), disabled: p.page + 1 >= p.pages || VLA.isStatic, text: "next →" }));
}

async function statsTables(k, s, holder) {
  const names = Object.keys(s.stats);
  if (!names.length) { put(holder, el("p", { class: "muted", text: "no statistics in the manifest" })); return; }
  const tables = {};
  for (const name of names) {
    const st = s.stats[name];
    const dims = (st.mean || []).length;
    const dimNames = (s.features[name] && s.features[name].dim_names) || [];
    const cols = ["mean", "std", "min", "q01", "q50", "q99", "max"].filter((c) => st[c]);
    const hists = [];
    tables[name] = hists;
    put(holder, el("details", { open: names.indexOf(name) < 2 },
      el("summary", {}, el("b", { text: name }), el("span", { class: "muted", text: ` ${dims} dims, ${st.count} frames` })),
      el("table", { class: "stats", "data-feature": name },
        el("tr", {}, el("th", { text: "dim" }), cols.map((c) => el("th", { text: c })), el("th", { text: "histogram" })),
        Array.from({ length: dims }, (_, d) => {
          const cell = el("td", { class: "hist-cell" });
          hists.push(cell);
          return el("tr", {}, el("td", { text: dimNames[d] ?? d }), cols.map((c) => el("td", { class: "num", text: fmt(st[c][d]) })), cell);
        }))));
  }
  try {
    const h = await VLA.api(`api/d/${k}/histograms`);
    for (const [name, cells] of Object.entries(tables)) {
      const f = h.features[name];
      if (!f) continue;
      cells.forEach((cell, d) => f.dims[d] && cell.replaceChildren(histogram(f.dims[d].counts)));
    }
    put(holder, el("p", { class: "muted", text: `histograms over ${h.episodes_sampled} evenly spaced episodes, ${h.bins} bins from min to max` }));
  } catch (e) { put(holder, el("p", { class: "error", text: String(e.message) })); }
}

// Frames of one camera, fetched on demand around the current frame (bounded).
class CameraStream {
  constructor(k, e, cam) {
    this.ext = cam.encoding === "png" ? "png" : "jpg";
    this.base = `api/d/${k}/frame/${e}/${cam.name}/`;
    this.images = new Map();
    this.canvas = el("canvas", { class: "camera", width: cam.width, height: cam.height, "data-camera": cam.name });
    this.ctx = this.canvas.getContext("2d");
    this.shown = -1;
  }
  image(t) {
    let img = this.images.get(t);
    if (!img) { img = new Image(); img.src = `${this.base}${t}.${this.ext}`; this.images.set(t, img); }
    return img;
  }
  show(t, prefetch) {
    const img = this.image(t);
    const draw = () => { if (this.want === t) { this.ctx.drawImage(img, 0, 0, this.canvas.width, this.canvas.height); this.shown = t; this.canvas.dataset.frame = t; } };
    this.want = t;
    if (img.complete && img.naturalWidth) draw(); else img.onload = draw;
    for (let i = 1; i <= prefetch; i++) this.image(t + i < this.length ? t + i : (t + i) % this.length);
    for (const key of this.images.keys()) if (Math.abs(key - t) > 150) this.images.delete(key);
  }
}

async function episodePage(m, k, e) {
  const [summary, ep] = await Promise.all([VLA.api(`api/d/${k}/summary`), VLA.api(`api/d/${k}/episode/${e}`)]);
  crumbs(m, [`dataset ${k}`, `#/d/${k}/p/${Math.floor(e / summary.episodes_per_page)}`], [`episode ${e}`, null]);
  let fast = null;
  if (INDEX.fast && ep.series.action) {
    try { fast = await VLA.api(`api/d/${k}/fast/${e}`); } catch (err) { fast = { error: err.message }; }
  }
  const T = ep.length;
  const streams = ep.cameras.map((c) => { const s = new CameraStream(k, e, c); s.length = T; return s; });
  const player = el("div", { id: "player", "data-frame": 0, "data-length": T });
  const label = el("span", { id: "frame-label" });
  const scrub = el("input", { type: "range", id: "scrub", min: 0, max: T - 1, value: 0 });
  const play = el("button", { id: "play", text: "▶ play" });
  const speed = el("select", { id: "speed" }, [0.25, 0.5, 1, 2, 4].map((v) => el("option", { value: v, selected: v === 1, text: `${v}x` })));
  let t = 0, playing = false, last = 0, acc = 0, raf = 0;
  const panels = [];
  const seek = (to) => {
    t = Math.max(0, Math.min(T - 1, to));
    player.dataset.frame = t;
    scrub.value = t;
    label.textContent = `frame ${t} / ${T}  ·  t = ${ep.timestamp[t]} s`;
    streams.forEach((s) => s.show(t, playing ? 12 : 2));
    panels.forEach((p) => p.setMarker(t));
  };
  const tick = (now) => {
    if (!playing) return;
    acc += ((now - last) / 1000) * ep.fps * +speed.value;
    last = now;
    if (acc >= 1) { const steps = Math.floor(acc); acc -= steps; seek((t + steps) % T); }
    raf = requestAnimationFrame(tick);
  };
  const toggle = () => {
    playing = !playing;
    play.textContent = playing ? "❚❚ pause" : "▶ play";
    player.dataset.playing = playing ? "1" : "0";
    if (playing) { last = performance.now(); acc = 0; raf = requestAnimationFrame(tick); } else cancelAnimationFrame(raf);
  };
  play.addEventListener("click", toggle);
  scrub.addEventListener("input", () => seek(+scrub.value));
  const keys = (ev) => {
    if (ev.target.tagName === "INPUT" && ev.target.type !== "range") return;
    if (ev.key === " ") { ev.preventDefault(); toggle(); } else if (ev.key === "ArrowRight") seek(t + 1); else if (ev.key === "ArrowLeft") seek(t - 1);
  };
  document.addEventListener("keydown", keys);
  m.cleanup = () => { playing = false; cancelAnimationFrame(raf); document.removeEventListener("keydown", keys); };

  const nav = el("div", { class: "pager" },
    e > 0 ? link(`#/d/${k}/episode/${e - 1}`, "← previous episode", exported("episodes", k, e - 1)) : null,
    e + 1 < summary.episodes ? link(`#/d/${k}/episode/${e + 1}`, "next episode →", exported("episodes", k, e + 1)) : null);
  put(player, 
    el("div", { class: "row" }, streams.map((s) => el("figure", {}, s.canvas, el("figcaption", { text: s.canvas.dataset.camera })))),
    el("div", { class: "controls" }, play, scrub, label, speed));
  put(clear(m), nav, el("h1", {}, `Episode ${e} `, el("span", { class: "muted", text: `· ${ep.task}` })),
    el("p", { class: "muted", text: `${T} frames at ${ep.fps} fps · source ${JSON.stringify(ep.source)}` }),
    ep.cameras.length ? player : el("p", { class: "muted", text: "no cameras" }));
  if (!ep.cameras.length) put(m, el("div", { class: "controls" }, play, scrub, label, speed));

  const order = Object.keys(ep.series).sort((a, b) => (a === "action" ? -1 : b === "action" ? 1 : a === "observation.state" ? -1 : b === "observation.state" ? 1 : a.localeCompare(b)));
  for (const name of order) {
    const isAction = name === "action";
    let extra = null;
    if (isAction && fast && fast.error) extra = el("p", { class: "error", text: fast.error });
    else if (isAction && fast) {
      const tokens = fast.token_starts.map((_, i) => [fast.tokens_per_chunk[i]]);
      const tplot = linePlot({ values: tokens, selected: [0], height: 120, feature: "fast-tokens" });
      extra = el("div", { class: "fast" },
        el("p", { class: "muted", text: `FAST, horizon ${fast.horizon}: ${fast.chunk_starts.length} chunks, `
          + `${fast.chunk_valid.filter((v) => !v).length} invalid; RMSE per dim ${fast.rmse.map(fmt).join(" ")}` }),
        el("h3", {}, "tokens per chunk ", el("span", { class: "muted", text: `(chunk starting at each step; mean ${fmt(fast.tokens_per_chunk.reduce((a, b) => a + b, 0) / fast.tokens_per_chunk.length)})` })),
        tplot.node);
      panels.push({ setMarker: (tt) => tplot.setMarker(Math.min(fast.token_starts.length - 1, Math.floor(tt / Math.max(1, fast.token_starts[1] || 1)))) });
    }
    const panel = seriesPanel(name, ep.series[name], { overlay: isAction && fast && !fast.error ? fast.values : null, onSeek: seek, extra });
    panels.push(panel);
    put(m, panel.node);
  }
  seek(0);
}

async function samplePage(m, k, i) {
  const x = await VLA.api(`api/d/${k}/sample/${i}`);
  crumbs(m, [`dataset ${k}`, `#/d/${k}`], [`sample ${i}`, null]);
  const nav = el("div", { class: "pager" },
    i > 0 ? link(`#/d/${k}/sample/${i - 1}`, "← previous sample", exported("samples", k, i - 1)) : null,
    i + 1 < x.total ? link(`#/d/${k}/sample/${i + 1}`, "next sample →", exported("samples", k, i + 1)) : null);
  const images = x.images.map((img, j) => {
    const scale = Math.max(1, Math.floor(320 / Math.max(img.width, img.height)));
    const overlay = svg("svg", { viewBox: `0 0 ${img.width} ${img.height}`, preserveAspectRatio: "none" });
    for (const b of x.boxes.filter((b) => b.image === j)) {
      const [x0, y0, x1, y1] = b.box;
      overlay.append(svg("rect", { class: "box", x: x0, y: y0, width: x1 - x0, height: y1 - y0 }));
      const t = svg("text", { x: x0 + 1, y: y0 > 14 / scale ? y0 - 2 / scale : y0 + 13 / scale, fill: "#ff2d55", "font-size": 13 / scale });
      t.textContent = b.label;
      overlay.append(t);
    }
    return el("figure", {}, el("div", { class: "boxed" }, el("img", { src: img.url, width: img.width * scale, height: img.height * scale }), overlay),
      el("figcaption", { text: `image ${j}: ${img.width}x${img.height}` }));
  });
  put(clear(m), nav, el("h1", {}, `Sample ${i} `, el("span", { class: "muted", text: `${x.kind || ""} · id ${x.id}` })),
    el("div", { class: "row" }, images.length ? images : el("p", { class: "muted", text: "text only" }),
      el("div", { id: "turns" }, x.turns.length ? null : el("p", { class: "muted", text: "no stored turns: the loader writes the prompt and answer from the boxes" }), x.turns.map((t) => el("div", { class: `turn ${t.role}` }, el("b", { text: t.role }), t.text)),
        x.boxes.length ? el("table", {}, el("tr", {}, el("th", { text: "label" }), el("th", { text: "box (x0, y0, x1, y1 px)" })),
          x.boxes.map((b) => el("tr", {}, el("td", { text: b.label }), el("td", { class: "num", text: b.box.map((v) => v.toFixed(1)).join(", ") })))) : null)),
    el("p", { class: "muted", text: `source ${JSON.stringify(x.source)}` }));
}

async function batchPage(m, n, b) {
  const batch = await VLA.api(`api/batch/${n}`);
  crumbs(m, [`batch ${n}`, null]);
  b = Math.min(b, batch.samples.length - 1);
  const nav = el("div", { class: "pager" },
    el("button", { id: "prev-batch", disabled: n === 0 || !exported("batches", null, n - 1), text: "← previous batch", onclick: () => { location.hash = `#/batch/${n - 1}`; } }),
    el("button", { id: "next-batch", disabled: !exported("batches", null, n + 1), text: "next batch →", onclick: () => { location.hash = `#/batch/${n + 1}`; } }));
  const where = (s) => {
    const text = s.kind === "robot" ? `episode ${s.episode} step ${s.step}` : `sample ${s.sample}`;
    if (s.dataset === null || s.dataset === undefined) return text;
    const href = s.kind === "robot" ? `#/d/${s.dataset}/episode/${s.episode}` : `#/d/${s.dataset}/sample/${s.sample}`;
    return link(href, text, exported(s.kind === "robot" ? "episodes" : "samples", s.dataset, s.kind === "robot" ? s.episode : s.sample));
  };
  const table = el("table", { id: "batch-samples" },
    el("tr", {}, ["#", "source", "path", "where", "tokens", "FAST", "padded steps"].map((h) => el("th", { text: h }))),
    batch.samples.map((s) => el("tr", { class: `clickable ${s.b === b ? "selected" : ""}`, onclick: () => { location.hash = `#/batch/${n}/${s.b}`; } },
      el("td", { text: s.b }), el("td", { text: `${s.source.index} (${s.source.kind})` }), el("td", { class: "muted", text: s.source.path }),
      el("td", {}, where(s.source)), el("td", { class: "num", text: s.tokens.ids.length }),
      el("td", { class: "num", text: s.tokens.fast.reduce((a, v) => a + v, 0) }),
      el("td", { class: "num", text: s.has_actions ? s.actions.is_pad.reduce((a, v) => a + v, 0) : "–" }))));
  put(clear(m), nav, el("h1", {}, `Batch ${n} `, el("span", { class: "muted", text: `epoch ${batch.epoch}, batch ${batch.index} of ${batch.batches_per_epoch}` })),
    el("p", { class: "muted", text: `${batch.batch_size} samples · max_tokens ${batch.max_tokens} · horizon ${batch.horizon} · images ${batch.image_size.join("x")}` }),
    table, sampleDetail(batch, batch.samples[b]));
}

function sampleDetail(batch, s) {
  const role = (i) => (s.tokens.fast[i] ? "fast" : s.tokens.loss[i] ? "loss" : s.tokens.ar[i] ? "postfix" : "prefix");
  const tokens = el("div", { class: "tokens", id: "tokens" }, s.tokens.pieces.map((p, i) => el("span", {
    class: `tok ${role(i)}`, title: `#${i} id ${s.tokens.ids[i]} (${role(i)})`, text: p })));
  const key = (cls, text) => el("span", { class: `key tok ${cls}`, text });
  const L = s.mask.L, H = s.mask.H;
  const maskLegend = Object.entries(batch.mask_colours).map(([r, c]) => el("span", { class: "key", style: `background:${c};color:${r === "blocked" || r === "padding" ? "#333" : "#fff"}`, text: r }));
  const detail = el("div", { id: "sample-detail", "data-b": s.b },
    el("h2", { text: `Sample ${s.b}: ${s.source.kind} · ${s.has_actions ? "has actions" : "no actions"}` }),
    Object.keys(s.counters).length ? el("p", { class: "counters", text: Object.entries(s.counters).map(([key, v]) => `${key} ${v}`).join(" · ") }) : null,
    el("h3", { text: "Images (after resize-with-pad) and masks" }),
    el("div", { class: "row", id: "slots" }, s.images.map((im) => el("figure", {},
      el("img", { class: `slot ${im.mask ? "" : "masked"}`, src: im.url, width: batch.image_size[1], height: batch.image_size[0], "data-slot": im.slot, "data-mask": im.mask ? "1" : "0" }),
      el("figcaption", { text: `${im.slot} · mask ${im.mask}` })))),
    el("h3", {}, `Tokens (${s.tokens.ids.length} of ${L}) `, key("prefix", "prefix"), key("postfix", "postfix, no loss"), key("loss", "loss"), key("fast", "FAST")),
    tokens,
    el("pre", { class: "text", text: `prefix:  ${s.text.prefix}` }), el("pre", { class: "text", text: `postfix: ${s.text.postfix}` }),
    el("h3", { text: `Knowledge-insulation attention mask: ${L} text + ${H} expert positions (rows: queries, columns: keys)` }),
    el("div", { class: "row" }, el("img", { class: "attention", id: "attention", src: s.mask.url, width: Math.min(2 * (L + H), 640), height: Math.min(2 * (L + H), 640) }),
      el("div", {}, maskLegend)));
  if (s.has_actions) {
    const dims = Array.from({ length: s.actions.dims }, (_, d) => d);
    const plot = linePlot({ values: s.actions.values, selected: dims, padded: s.actions.is_pad, height: 180, width: 700, feature: "batch-actions" });
    put(detail, el("h3", { text: `Action chunk (normalized, ${s.actions.dims} real dims; grey = padded steps past the episode end: ${s.actions.is_pad.reduce((a, v) => a + v, 0)})` }),
      plot.node, el("p", { class: "muted", text: `state (normalized): ${s.state.map(fmt).join(" ")}` }));
  }
  return detail;
}

// ---------------------------------------------------------------- router
let SERIAL = 0;
let SHOWN = null;

async function render(view, parts) {
  if (!INDEX) {
    INDEX = await VLA.api("api/index");
    document.getElementById("target").textContent = INDEX.target + (VLA.isStatic ? "  (static export)" : "");
  }
  if (!parts.length) {
    if (INDEX.datasets.length === 1 && !INDEX.loader) { location.replace("#/d/0"); return false; }
    return overview(view);
  }
  if (parts[0] === "d") {
    const k = +parts[1];
    if (parts[2] === "episode") return episodePage(view, k, +parts[3]);
    if (parts[2] === "sample") return samplePage(view, k, +parts[3]);
    return datasetPage(view, k, parts[2] === "p" ? +parts[3] : 0);
  }
  if (parts[0] === "batch") return batchPage(view, +parts[1], parts[2] ? +parts[2] : 0);
  throw new Error(`no such page: ${location.hash}`);
}

async function route() {
  const serial = ++SERIAL;
  const hash = location.hash;
  const view = el("div", { class: "view" });
  let shown = true;
  try {
    shown = (await render(view, hash.replace(/^#\/?/, "").split("/").filter(Boolean))) !== false;
  } catch (e) {
    put(clear(view), el("p", { class: "error", text: String(e.message || e) }));
  }
  if (serial !== SERIAL || !shown) { if (view.cleanup) view.cleanup(); return; }
  if (SHOWN && SHOWN.cleanup) SHOWN.cleanup();
  SHOWN = view;
  document.getElementById("crumbs").replaceChildren(...(view.crumbs || []).map(([text, href]) =>
    (href ? el("a", { href, text }) : el("span", { text }))));
  document.getElementById("main").replaceChildren(view);
  document.body.dataset.ready = hash;
}
window.addEventListener("hashchange", route);
route();

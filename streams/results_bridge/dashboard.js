// The reference dashboard: one EventSource on /events (the token as ?access_token=, since EventSource cannot
// send headers), one table row per study, Grad-CAM thumbnails fetched with the token in a header.
"use strict";
const studies = new Map();   // study_uid -> {row, data}
const scores = [];           // [{t, score, positive}]
const studyFeatures = new Map(); // study_uid -> features computed (latest settings hash)
let source = null;
let token = "";

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
};
const short = (uid) => uid.length > 18 ? uid.slice(0, 8) + "…" + uid.slice(-6) : uid;

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = cls || ""; }

function studyRow(data) {
  let entry = studies.get(data.study_uid);
  if (!entry) {
    const row = el("tr", {"class": "new", "data-study": data.study_uid},
      el("td", {}, "–"), el("td", {}, data.project), el("td", {"class": "uid", title: data.study_uid}, short(data.study_uid)),
      el("td", {}, "–"), el("td", {"class": "predictions"}), el("td", {"class": "features"}));
    $("studies").tBodies[0].prepend(row);
    $("empty").hidden = true;
    entry = {row};
    studies.set(data.study_uid, entry);
  }
  return entry.row;
}

function onStudy(event) {
  const data = event.data;
  const row = studyRow(data);
  row.cells[0].textContent = new Date(event.occurred_at).toLocaleTimeString();
  row.cells[3].textContent = `${data.instance_count} (v${data.study_version})`;
}

async function thumbnail(uri) {
  const answer = await fetch(`/objects/thumbnail?uri=${encodeURIComponent(uri)}`, {headers: {Authorization: `Bearer ${token}`}});
  if (!answer.ok) return null;
  return URL.createObjectURL(await answer.blob());
}

function onPrediction(event) {
  const data = event.data;
  const row = studyRow(data);
  const cell = row.cells[4];
  const key = `${data.model.name}:${data.model.version}`;
  let line = cell.querySelector(`[data-model="${CSS.escape(key)}"]`);
  if (!line) { line = el("div", {"class": "pred", "data-model": key}); cell.append(line); }
  const verdict = data.positive ? "positive" : "negative";
  const img = el("img", {alt: "Grad-CAM"});
  line.replaceChildren(img, el("div", {},
    el("div", {}, el("span", {"class": "tag"}, `${data.model.name} v${data.model.version}`), " ", el("span", {"class": "muted"}, data.model.stage)),
    el("div", {}, el("span", {"class": `score ${verdict}`}, data.malignancy_score.toFixed(3)),
      el("span", {"class": "muted"}, ` ${verdict} · ${data.candidates.length} finding(s) · ${Math.round(data.latency_ms)} ms`))));
  const cam = data.candidates.find((c) => c.gradcam_uri);
  if (cam) thumbnail(cam.gradcam_uri).then((url) => { if (url) img.src = url; else img.remove(); });
  else img.remove();
  scores.push({t: Date.parse(event.occurred_at), score: data.malignancy_score, positive: data.positive});
  drawScores();
}

function onFeatures(event) {
  const data = event.data;
  const row = studyRow(data);
  const computed = data.rois.filter((r) => r.status === "computed");
  row.cells[5].textContent = `${computed.length}/${data.rois.length} ROIs · ${computed.reduce((n, r) => n + r.feature_count, 0)} features`;
  studyFeatures.delete(data.study_uid);  // re-inserted: the newest last
  studyFeatures.set(data.study_uid, computed.reduce((n, r) => n + r.feature_count, 0));
  drawFeatures();
}

function drawScores() {
  const svg = $("scores"), w = 260, h = 140, pad = 22;
  const points = scores.slice(-200);
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text) n.textContent = text; svg.append(n); };
  add("line", {x1: pad, y1: h - pad, x2: w - 4, y2: h - pad, stroke: "#d0d5dd"});
  add("line", {x1: pad, y1: 4, x2: pad, y2: h - pad, stroke: "#d0d5dd"});
  add("text", {x: 2, y: 12}, "1.0"); add("text", {x: 2, y: h - pad}, "0.0");
  if (!points.length) return;
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
  for (const p of points) {
    const x = pad + (w - pad - 8) * (p.t - t0) / (t1 - t0), y = (h - pad) - (h - pad - 6) * p.score;
    add("circle", {cx: x.toFixed(1), cy: y.toFixed(1), r: 3, fill: p.positive ? "#b42318" : "#027a48", opacity: 0.8});
  }
  add("text", {x: pad, y: h - 6}, `${points.length} prediction(s)`);
}

function drawFeatures() {
  const svg = $("features"), w = 260, h = 140, pad = 22;
  const rois = [...studyFeatures.entries()].slice(-8);
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text) n.textContent = text; svg.append(n); };
  if (!rois.length) return;
  const top = Math.max(...rois.map(([, n]) => n), 1), bar = (w - pad) / rois.length;
  rois.forEach(([roi, n], i) => {
    const height = (h - pad - 12) * n / top;
    add("rect", {x: pad + i * bar + 2, y: h - pad - height, width: bar - 4, height, fill: "#3e4784", rx: 2});
    add("text", {x: pad + i * bar + 2, y: h - pad + 11}, "…" + roi.slice(-4));
    add("text", {x: pad + i * bar + 2, y: h - pad - height - 2}, String(n));
  });
}

const handlers = {"study.completed": onStudy, "study.updated": onStudy, "prediction.created": onPrediction, "features.computed": onFeatures};

function connect() {
  if (source) source.close();
  const since = new URLSearchParams(location.search).get("since");
  const url = `/events?access_token=${encodeURIComponent(token)}` + (since ? `&since=${encodeURIComponent(since)}` : "");
  source = new EventSource(url);
  setStatus("connecting…");
  source.onopen = () => setStatus("live", "live");
  source.onerror = () => setStatus("reconnecting…", "down");
  for (const [type, handle] of Object.entries(handlers)) {
    source.addEventListener(type, (message) => handle(JSON.parse(message.data)));
  }
  // the bridge ends a stream when the token expires: stop here rather than retry with the same token
  source.addEventListener("token-expired", () => { source.close(); setStatus("token expired: paste a new one", "down"); });
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    $("who").textContent = claims.preferred_username || "";
  } catch (e) { $("who").textContent = ""; }
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("radlake-token", token);
  connect();
});

// a token handed over in the fragment (never sent to the server) or kept for this tab
const fromFragment = new URLSearchParams(location.hash.slice(1)).get("access_token");
if (fromFragment) history.replaceState(null, "", location.pathname + location.search);
token = fromFragment || sessionStorage.getItem("radlake-token") || "";
if (token) { $("token").value = token; sessionStorage.setItem("radlake-token", token); connect(); }

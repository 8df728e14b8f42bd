// inspector live dashboard: one EventSource, plain DOM and canvas (no libraries, no build step).
"use strict";
const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
const $ = (id) => document.getElementById(id);
const shownDefects = new Map();  // event_id → element (built once, reused)
const frameVersions = {};

// anomaly value v in [0, 1] → RGBA of a jet-like colour map; alpha grows with v so good areas stay visible
function heatColour(v) {
  const r = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * v - 1)));
  return [255 * r, 255 * g, 255 * b, v < 0.2 ? 0 : 210 * Math.min(1, (v - 0.2) * 1.6)];
}

function loadImage(url) {
  return new Promise((resolve, reject) => { const img = new Image(); img.onload = () => resolve(img); img.onerror = reject; img.src = url; });
}

async function drawDefect(canvas, d) {
  const ctx = canvas.getContext("2d");
  const base = `defect/${encodeURIComponent(d.event_id)}/`;
  let w = d.frame.width || 320, h = d.frame.height || 240;
  const scale = 240 / w;
  canvas.width = 240; canvas.height = Math.round(h * scale);
  if (d.payloads.includes("thumbnail")) {
    const thumb = await loadImage(withToken(base + "thumbnail"));
    ctx.drawImage(thumb, 0, 0, canvas.width, canvas.height);
  }
  if (d.payloads.includes("anomaly_map")) {  // 8-bit PNG map → colour overlay, stretched over the frame
    const heat = await loadImage(withToken(base + "anomaly_map"));
    const off = document.createElement("canvas");
    off.width = heat.width; off.height = heat.height;
    const octx = off.getContext("2d");
    octx.drawImage(heat, 0, 0);
    const px = octx.getImageData(0, 0, off.width, off.height);
    for (let i = 0; i < px.data.length; i += 4) {
      const c = heatColour(px.data[i] / 255);
      px.data[i] = c[0]; px.data[i + 1] = c[1]; px.data[i + 2] = c[2]; px.data[i + 3] = c[3];
    }
    octx.putImageData(px, 0, 0);
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
  }
  ctx.strokeStyle = "#00ff88"; ctx.lineWidth = 2;
  for (const r of d.regions) {
    const [x, y, rw, rh] = r.bbox;
    ctx.strokeRect(x * scale, y * scale, rw * scale, rh * scale);
  }
  canvas.dataset.drawn = "1";
}

function renderDefects(defects) {
  const box = $("defects");
  const keep = new Set(defects.map((d) => d.event_id));
  for (const [id, el] of shownDefects) if (!keep.has(id)) { el.remove(); shownDefects.delete(id); }
  defects.forEach((d, i) => {
    let el = shownDefects.get(d.event_id);
    if (!el) {
      el = document.createElement("div");
      el.className = "defect";
      el.dataset.event = d.event_id;
      const canvas = document.createElement("canvas");
      const head = document.createElement("div");
      head.append(textElement("b", d.camera), ` #${d.seq} `, decisionElement(d.decision));
      el.appendChild(head);
      el.appendChild(canvas);
      const meta = document.createElement("div");
      meta.className = "meta";
      // shown as the server wrote them (state.py): digits enough to compare as the daemon decided
      meta.textContent = `score ${d.shown.score} (thr ${d.shown.threshold}) · ${d.regions.length} region(s) · ${d.utc}`;
      el.appendChild(meta);
      drawDefect(canvas, d).catch(() => {});
      shownDefects.set(d.event_id, el);
    }
    if (box.children[i] !== el) box.insertBefore(el, box.children[i] || null);
  });
}

// Text from the daemon goes in as text, never as HTML: a status reason quotes file names, paths and the
// messages of sources and libraries (OWASP XSS prevention: textContent, not innerHTML, for untrusted data)
function textElement(tag, text, className = "") {
  const el = document.createElement(tag);
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

function decisionElement(decision) {
  return textElement("span", decision, `dec-${String(decision).replace(/[^A-Za-z_-]/g, "")}`);
}

function renderCameras(cameras) {
  const box = $("cameras");
  for (const [name, c] of Object.entries(cameras)) {
    let el = box.querySelector(`[data-camera="${CSS.escape(name)}"]`);
    if (!el) {
      el = document.createElement("div");
      el.className = "camera"; el.dataset.camera = name;
      el.innerHTML = `<div><b></b><span class="state"></span></div><img alt=""><div class="meta"></div>`;
      el.querySelector("b").textContent = name;
      box.appendChild(el);
    }
    const st = el.querySelector(".state");
    st.textContent = c.state; st.className = "state " + c.state;
    el.dataset.state = c.state;
    const score = c.score === null || c.score === undefined ? "" : ` score ${Number(c.score).toPrecision(4)}`;
    const meta = el.querySelector(".meta");
    if (c.frame_id === null || c.frame_id === undefined) meta.textContent = c.reason || "";
    else meta.replaceChildren(`frame ${c.frame_id} `, decisionElement(c.decision), score);
    if (c.frame_version && frameVersions[name] !== c.frame_version) {
      frameVersions[name] = c.frame_version;
      el.querySelector("img").src = withToken(`frame/${encodeURIComponent(name)}.jpg?v=${c.frame_version}`);
    }
  }
}

function renderHealth(stats) {
  const body = $("health").querySelector("tbody");
  const drift = stats.drift || {};
  body.innerHTML = "";
  for (const [name, c] of Object.entries(stats.cameras || {})) {
    const dropped = Object.entries(c).filter(([k, v]) => typeof v === "number" &&
      (k.startsWith("dropped") || k.startsWith("rejected") || k === "corrupt" || k === "buffers_lost")).reduce((a, [, v]) => a + v, 0);
    const d = drift[name];
    const tr = document.createElement("tr");
    tr.innerHTML = `<td></td><td>${c.captured ?? 0}</td><td>${c.processed ?? 0}</td><td>${c.NG ?? 0}</td>` +
      `<td>${dropped}</td><td>${c.reconnects ?? 0}</td>` +
      `<td class="${d && d.flagged ? "flagged" : ""}">${d ? d.shift_std.toFixed(2) : "–"}</td>`;
    tr.firstChild.textContent = name;
    body.appendChild(tr);
  }
}

// a line chart on a canvas: series = [{key, colour}], y from 0 to the max seen
function lineChart(canvas, points, series) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 30;
  ctx.clearRect(0, 0, W, H);
  const values = points.flatMap((p) => series.map((s) => p[s.key])).filter((v) => typeof v === "number");
  const ymax = Math.max(1e-9, ...values) * 1.1;
  ctx.strokeStyle = "#3a4350"; ctx.fillStyle = "#9aa4b1"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = H - pad / 2 - (H - pad) * i / 4;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(W - 4, y); ctx.stroke();
    ctx.fillText((ymax * i / 4).toPrecision(3), 2, y - 2);
  }
  const n = points.length;
  for (const s of series) {
    ctx.strokeStyle = s.colour; ctx.lineWidth = 2; ctx.beginPath();
    let started = false;
    points.forEach((p, i) => {
      const v = p[s.key];
      if (typeof v !== "number") return;
      const x = pad + (W - pad - 4) * (n > 1 ? i / (n - 1) : 1);
      const y = H - pad / 2 - (H - pad) * v / ymax;
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    });
    ctx.stroke();
  }
  canvas.dataset.points = String(n);
}

function render(s) {
  $("model").textContent = s.model && s.model.name ? `· ${s.model.name} ${s.model.version || ""} (${s.model.backend}, ${s.model.precision})` : "";
  renderCameras(s.cameras);
  renderDefects(s.defects);
  if (s.stats) renderHealth(s.stats);
  const pts = s.series.map((p, i) => ({ ...p, dropsRate: i ? Math.max(0, p.drops - s.series[i - 1].drops) : 0 }));
  lineChart($("latency"), pts, [{ key: "p50", colour: "#4ea1ff" }, { key: "p99", colour: "#ff9f43" }]);
  lineChart($("throughput"), pts, [{ key: "fps", colour: "#6bdc8b" }, { key: "dropsRate", colour: "#ff6b6b" }]);
  document.body.dataset.version = String(s.version);
}

function connect() {
  const es = new EventSource(withToken("events"));
  es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn on"; };
  es.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn off"; };
  es.onmessage = (msg) => render(JSON.parse(msg.data));
}
connect();

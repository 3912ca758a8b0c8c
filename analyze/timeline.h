/* timeline.h - the page `race report --html` writes (html.c): its style and script, in
 * two halves around the embedded data (a JSON object in a <script type=application/json>).
 * The script draws each trace's lanes on a canvas (culled to the view, at most one mark
 * per pixel, kind and lane, so 100,000 events redraw in milliseconds), zooms and pans,
 * and on a click shows the stacks embedded in the data. #selftest in the URL clicks the
 * first finding through the page's own mouse handlers and writes what it saw into the
 * page (tests/t_html.sh reads it); #finding=T.N opens the page on a finding. Must never: fetch anything (the CSP forbids it), or
 * put data into the page as HTML (textContent only). Needs GCC's raw strings (gnu11). */
#ifndef RACE_TIMELINE_H
#define RACE_TIMELINE_H

static const char timeline_head[] = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>race timeline</title>
<style>
:root { --fg: #1d232b; --muted: #5f6b7a; --line: #d8dde3; --bg: #ffffff; --lane: #f4f6f8; --red: #d0021b; }
* { box-sizing: border-box; }
body { margin: 0; padding: 12px 18px 24px; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 18px; margin: 0 0 2px; }
h2 { font-size: 14px; margin: 18px 0 2px; font-family: ui-monospace, monospace; word-break: break-all; }
header p, .meta { color: var(--muted); margin: 0 0 6px; }
.findings { list-style: none; padding: 0; margin: 4px 0 8px; }
.finding { cursor: pointer; padding: 3px 6px; border-left: 4px solid var(--red); margin: 2px 0; background: #fff4f4; font-family: ui-monospace, monospace; font-size: 12px; }
.finding.selected { background: #ffd9d9; }
.finding .kind { color: var(--red); font-weight: 600; }
.crash { cursor: pointer; padding: 3px 6px; border-left: 4px solid #111; margin: 2px 0; background: #f1f1f1; font-family: ui-monospace, monospace; font-size: 12px; }
.crash.selected { background: #dcdcdc; }
.crash .kind { font-weight: 600; }
.toolbar { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin: 4px 0; }
.toolbar button { font: inherit; padding: 1px 9px; border: 1px solid var(--line); background: #fff; border-radius: 4px; cursor: pointer; }
.toolbar .range { color: var(--muted); margin-right: 10px; font-family: ui-monospace, monospace; }
.legend { display: inline-flex; gap: 10px; flex-wrap: wrap; color: var(--muted); }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 3px; vertical-align: -1px; border-radius: 2px; }
.chart { display: flex; border: 1px solid var(--line); border-radius: 4px; overflow: hidden; }
.labels { flex: 0 0 210px; border-right: 1px solid var(--line); }
.labels .axis { height: 24px; border-bottom: 1px solid var(--line); color: var(--muted); padding: 4px 6px; font-size: 11px; }
.lane { height: 30px; padding: 0 6px; display: flex; align-items: center; white-space: nowrap; overflow: hidden; font-size: 12px; }
.lane:nth-child(odd) { background: var(--lane); }
canvas { flex: 1 1 auto; min-width: 0; display: block; cursor: crosshair; }
.details { margin: 8px 0 0; padding: 8px; background: #f7f8fa; border: 1px solid var(--line); border-radius: 4px; font: 12px/1.45 ui-monospace, monospace; white-space: pre-wrap; max-height: 340px; overflow: auto; }
.note { color: #8a5a00; }
#selftest { border: 1px dashed var(--muted); padding: 6px; }
</style>
</head>
<body>
<header><h1>race timeline</h1><p id="summary"></p></header>
<main id="traces"></main>
<pre id="selftest" hidden></pre>
<script type="application/json" id="race-data">)HTML";

static const char timeline_tail[] = R"HTML(</script>
<script>
"use strict";
(function () {
  const T0 = performance.now();
  const errors = [];
  window.addEventListener("error", (e) => errors.push(String(e.message)));
  const KINDS = [
    { name: "free", color: "#8d96a3", h: 0.34 },
    { name: "guarded free", color: "#e08a00", h: 0.7 },
    { name: "quarantined free", color: "#8e44ad", h: 0.5 },
    { name: "guarded allocation", color: "#2e9d4a", h: 0.7 },
    { name: "probe enter", color: "#7fb2e5", h: 0.22 },
    { name: "probe exit", color: "#b8d4f0", h: 0.22 },
    { name: "probe hit", color: "#1565c0", h: 0.5 },
  ];
  const LANE_H = 30, AXIS_H = 24, HIT_PX = 6;
  const data = JSON.parse(document.getElementById("race-data").textContent);
  const T_PARSED = performance.now();

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function ms(ns, digits) { return (ns / 1e6).toFixed(digits === undefined ? 3 : digits) + " ms"; }
  function who(tid, ractor) { return "thread " + tid + (ractor ? " (Ractor " + ractor + ")" : ""); }

  class Timeline {
    constructor(tr, index) {
      this.tr = tr;
      this.index = index;
      const ev = tr.ev;
      this.n = ev.t.length;
      this.t = Float64Array.from(ev.t);
      this.nl = tr.lanes.length;
      /* per lane, its events' indexes in time order (the data is sorted by time) */
      const counts = new Int32Array(this.nl);
      for (let i = 0; i < this.n; i++) counts[ev.l[i]]++;
      this.byLane = [];
      for (let l = 0; l < this.nl; l++) this.byLane.push(new Int32Array(counts[l]));
      const fill = new Int32Array(this.nl);
      for (let i = 0; i < this.n; i++) { const l = ev.l[i]; this.byLane[l][fill[l]++] = i; }
      this.span = Math.max(tr.span, 1000);
      this.reset();
      this.selected = null;
      this.pending = false;
      this.draws = [];
      this.build();
    }

    /* the whole window, with a margin so the marks at its ends show whole */
    reset() {
      this.v0 = -this.span * 0.01;
      this.v1 = this.span * 1.03;
    }

    laneLabel(l) {
      const lane = this.tr.lanes[l];
      const tids = this.tr.lanes.filter((x) => x.ractor === lane.ractor).length;
      if (!lane.ractor) return "thread " + lane.tid + (this.tr.ruby ? " (no Ractor id)" : "");
      return tids > 1 ? "Ractor " + lane.ractor + " \u00b7 thread " + lane.tid
                      : "Ractor " + lane.ractor + " (thread " + lane.tid + ")";
    }

    build() {
      const tr = this.tr;
      const sec = el("section", "trace");
      sec.id = "trace-" + this.index;
      sec.appendChild(el("h2", null, tr.path));
      let meta = tr.exe + ", pid " + tr.pid + (tr.ruby ? ", Ruby " + tr.ruby : "") + ": " +
        tr.events_window.toLocaleString("en") + " events in the " + ms(tr.span, 1) +
        " shown (of " + tr.events_total.toLocaleString("en") + " in the trace), from " +
        (tr.from_ms).toFixed(3) + " ms";
      sec.appendChild(el("p", "meta", meta));
      if (tr.events_left_out || tr.stacks_left_out)
        sec.appendChild(el("p", "meta note", (tr.events_left_out ? "the oldest " +
          tr.events_left_out.toLocaleString("en") + " events of the window are left out; " : "") +
          (tr.stacks_left_out ? tr.stacks_left_out + " stacks are not embedded" : "")));
      const ul = el("ul", "findings");
      tr.findings.forEach((f, i) => {
        const li = el("li", "finding");
        li.dataset.finding = String(i);
        li.appendChild(el("span", "kind", f.kind));
        li.appendChild(document.createTextNode(" " + f.title.slice(f.kind.length) + " \u2014 " +
          f.access + " by " + who(f.use.tid, f.use.ractor) +
          (f.free ? ", freed by " + who(f.free.tid, f.free.ractor) + " " + ms(f.use.t - f.free.t) + " before" : "") +
          (f.count > 1 ? " (group of " + f.count + ")" : "")));
        li.addEventListener("click", () => { this.focus(f); this.showFinding(i); });
        ul.appendChild(li);
      });
      tr.crashes.forEach((c, i) => {
        const li = el("li", "crash");
        li.dataset.crash = String(i);
        li.appendChild(el("span", "kind", "crash"));
        li.appendChild(document.createTextNode(" " + this.crashWhat(c) + " by " + who(c.at.tid, c.at.ractor) +
          " at " + (tr.from_ms + c.at.t / 1e6).toFixed(3) + " ms" + (c.first >= 0 ? " (while crash " + c.first + " was handled)" : "")));
        li.addEventListener("click", () => { this.focus({ use: c.at, free: null }); this.showCrash(i); });
        ul.appendChild(li);
      });
      this.items = ul;
      sec.appendChild(ul);
      const bar = el("div", "toolbar");
      for (const [label, what] of [["+", "in"], ["\u2212", "out"], ["reset", "reset"]]) {
        const b = el("button", null, label);
        b.dataset.zoom = what;
        b.addEventListener("click", () => {
          if (what === "reset") this.reset();
          else this.zoom(what === "in" ? 0.5 : 2, (this.v0 + this.v1) / 2);
          this.request();
        });
        bar.appendChild(b);
      }
      this.range = el("span", "range");
      bar.appendChild(this.range);
      const legend = el("span", "legend");
      for (const k of KINDS.concat([{ name: "finding: use", color: "#d0021b" }, { name: "its free", color: "#7a0010" },
                                    { name: "crash", color: "#111" }])) {
        const s = el("span");
        const sw = el("i");
        sw.style.background = k.color;
        s.appendChild(sw);
        s.appendChild(document.createTextNode(k.name));
        legend.appendChild(s);
      }
      bar.appendChild(legend);
      sec.appendChild(bar);
      const chart = el("div", "chart");
      const labels = el("div", "labels");
      labels.appendChild(el("div", "axis", "lane \u2193  time \u2192"));
      for (let l = 0; l < this.nl; l++) {
        const d = el("div", "lane", this.laneLabel(l));
        d.dataset.lane = String(l);
        labels.appendChild(d);
      }
      chart.appendChild(labels);
      this.canvas = el("canvas");
      this.canvas.style.height = (AXIS_H + this.nl * LANE_H) + "px";
      chart.appendChild(this.canvas);
      sec.appendChild(chart);
      this.details = el("pre", "details", "Click an event or a finding for its stacks. Wheel or +/\u2212 to zoom, drag to pan.");
      sec.appendChild(this.details);
      document.getElementById("traces").appendChild(sec);
      this.listen();
    }

    listen() {
      const c = this.canvas;
      c.addEventListener("wheel", (e) => {
        e.preventDefault();
        const f = Math.exp(e.deltaY * 0.0015);
        this.zoom(f, this.timeAt(e.offsetX));
        this.request();
      }, { passive: false });
      let down = null;
      c.addEventListener("mousedown", (e) => {
        if (e.button !== 0) return;
        down = { x: e.clientX, y: e.clientY, v0: this.v0, v1: this.v1, moved: false };
        e.preventDefault();
      });
      window.addEventListener("mousemove", (e) => {
        if (!down) return;
        const dx = e.clientX - down.x;
        if (Math.abs(dx) > 3) down.moved = true;
        if (!down.moved) return;
        const dt = dx / c.clientWidth * (down.v1 - down.v0);
        this.v0 = down.v0 - dt;
        this.v1 = down.v1 - dt;
        this.request();
      });
      window.addEventListener("mouseup", (e) => {
        if (!down) return;
        const d = down;
        down = null;
        if (d.moved) return;
        const r = c.getBoundingClientRect();
        this.click(e.clientX - r.left, e.clientY - r.top);
      });
    }

    zoom(f, at) {
      const w = Math.min(Math.max((this.v1 - this.v0) * f, 200), this.span * 4);
      const a = (at - this.v0) / (this.v1 - this.v0);
      this.v0 = at - a * w;
      this.v1 = this.v0 + w;
    }

    focus(f) {
      const a = f.free ? Math.min(f.free.t, f.use.t) : f.use.t, b = f.use.t;
      const pad = Math.max((b - a) * 0.25, 20000);
      this.v0 = a - pad;
      this.v1 = b + pad;
      this.draw();
    }

    timeAt(x) { return this.v0 + x / this.canvas.clientWidth * (this.v1 - this.v0); }
    xAt(t) { return (t - this.v0) / (this.v1 - this.v0) * this.canvas.clientWidth; }
    laneY(l) { return AXIS_H + l * LANE_H + LANE_H / 2; }

    request() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { if (this.pending) this.draw(); });
    }

    flush() { if (this.pending) this.draw(); }

    /* first index in lane l with time >= t */
    lower(l, t) {
      const idx = this.byLane[l], times = this.t;
      let lo = 0, hi = idx.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (times[idx[mid]] < t) lo = mid + 1; else hi = mid; }
      return lo;
    }

    draw() {
      const start = performance.now();
      this.pending = false;
      const c = this.canvas, dpr = window.devicePixelRatio || 1;
      const W = Math.max(c.clientWidth, 100), H = AXIS_H + this.nl * LANE_H;
      if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
        c.width = Math.round(W * dpr);
        c.height = Math.round(H * dpr);
      }
      const g = c.getContext("2d");
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, W, H);
      for (let l = 0; l < this.nl; l++) {
        if (l % 2 === 0) { g.fillStyle = "#f4f6f8"; g.fillRect(0, AXIS_H + l * LANE_H, W, LANE_H); }
      }
      this.axis(g, W, H);
      const kinds = this.tr.ev.k, scale = W / (this.v1 - this.v0);
      const last = new Float64Array(KINDS.length);
      for (let l = 0; l < this.nl; l++) {
        const idx = this.byLane[l], y = this.laneY(l);
        last.fill(-1);
        for (let j = this.lower(l, this.v0); j < idx.length; j++) {
          const i = idx[j], t = this.t[i];
          if (t > this.v1) break;
          const k = kinds[i], x = Math.floor((t - this.v0) * scale);
          if (last[k] === x) continue; /* one mark per pixel, kind and lane */
          last[k] = x;
          const kind = KINDS[k], h = kind.h * LANE_H;
          g.fillStyle = kind.color;
          const top = k >= 4 ? AXIS_H + l * LANE_H + 2 : y - h / 2;
          g.fillRect(x, top, k >= 4 ? 2 : 1.5, h);
        }
      }
      this.drawFindings(g);
      this.drawCrashes(g);
      if (this.selected !== null && this.selected.event !== undefined) {
        const i = this.selected.event, x = this.xAt(this.t[i]), y = this.laneY(this.tr.ev.l[i]);
        g.strokeStyle = "#000";
        g.lineWidth = 1.5;
        g.strokeRect(x - 4, y - LANE_H / 2 + 2, 8, LANE_H - 4);
      }
      const base = this.tr.from_ms * 1e6;
      this.range.textContent = ms(base + this.v0, 3) + " \u2013 " + ms(base + this.v1, 3) + " (" + ms(this.v1 - this.v0, 3) + " wide)";
      const took = performance.now() - start;
      this.draws.push(took);
      return took;
    }

    axis(g, W, H) {
      const span = this.v1 - this.v0, target = span / Math.max(W / 110, 1);
      const p = Math.pow(10, Math.floor(Math.log10(target)));
      const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= target) || p * 10;
      g.fillStyle = "#5f6b7a";
      g.font = "11px system-ui, sans-serif";
      g.strokeStyle = "#e3e7ec";
      g.lineWidth = 1;
      const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step / 1e6))));
      for (let t = Math.ceil(this.v0 / step) * step; t <= this.v1; t += step) {
        const x = Math.round(this.xAt(t)) + 0.5;
        g.beginPath(); g.moveTo(x, AXIS_H - 5); g.lineTo(x, H); g.stroke();
        g.fillText(((this.tr.from_ms * 1e6 + t) / 1e6).toFixed(digits) + " ms", x + 3, 14);
      }
      g.strokeStyle = "#d8dde3";
      g.beginPath(); g.moveTo(0, AXIS_H - 0.5); g.lineTo(W, AXIS_H - 0.5); g.stroke();
    }

    drawFindings(g) {
      this.tr.findings.forEach((f, i) => {
        const sel = this.selected && this.selected.finding === i;
        const u = [this.xAt(f.use.t), this.laneY(f.use.lane)];
        if (f.free && f.free.lane >= 0) {
          const fr = [this.xAt(f.free.t), this.laneY(f.free.lane)];
          g.strokeStyle = "#d0021b";
          g.lineWidth = sel ? 2.5 : 1.5;
          g.setLineDash([5, 3]);
          g.beginPath(); g.moveTo(fr[0], fr[1]); g.lineTo(u[0], u[1]); g.stroke();
          g.setLineDash([]);
          g.fillStyle = "#7a0010";
          g.beginPath(); g.arc(fr[0], fr[1], 5, 0, 2 * Math.PI); g.fill();
        }
        if (f.alloc && f.alloc.lane >= 0) {
          g.strokeStyle = "#2e9d4a";
          g.lineWidth = 2;
          g.beginPath(); g.arc(this.xAt(f.alloc.t), this.laneY(f.alloc.lane), 5, 0, 2 * Math.PI); g.stroke();
        }
        g.fillStyle = "#d0021b";
        g.beginPath();
        g.moveTo(u[0], u[1] - 8); g.lineTo(u[0] + 7, u[1]); g.lineTo(u[0], u[1] + 8); g.lineTo(u[0] - 7, u[1]);
        g.closePath(); g.fill();
        if (sel) { g.strokeStyle = "#000"; g.lineWidth = 1.5; g.stroke(); }
      });
    }

    crashWhat(c) {
      return c.signal + (c.code ? "/" + c.code : "") + (c.sent ? " (sent)" : "") +
        (c.sent ? "" : " at address " + c.addr) + (c.pc ? ", pc " + c.pc : "");
    }

    drawCrashes(g) {
      this.tr.crashes.forEach((c, i) => {
        if (c.at.lane < 0) return;
        const x = this.xAt(c.at.t), y = this.laneY(c.at.lane), r = 6;
        const sel = this.selected && this.selected.crash === i;
        g.fillStyle = "#fff";
        g.beginPath(); g.arc(x, y, r + 3, 0, 2 * Math.PI); g.fill();
        g.strokeStyle = sel ? "#d0021b" : "#111";
        g.lineWidth = 2.5;
        g.beginPath(); g.moveTo(x - r, y - r); g.lineTo(x + r, y + r); g.moveTo(x + r, y - r); g.lineTo(x - r, y + r); g.stroke();
      });
    }

    showCrash(i) {
      const c = this.tr.crashes[i];
      const lines = ["crash: " + this.crashWhat(c), "by " + who(c.at.tid, c.at.ractor) + " at " +
        (this.tr.from_ms + c.at.t / 1e6).toFixed(3) + " ms" + (c.first >= 0 ? ", raised while crash " + c.first + " was handled" : "") + ":"];
      lines.push(this.stackLines(c.stack, "(no stack recorded)"));
      if (c.regs.length) lines.push("", "registers:", c.regs.map((r) => "    " + r).join("\n"));
      this.selected = { crash: i };
      this.details.textContent = lines.join("\n");
      this.markCrash(i);
      this.draw();
    }

    markCrash(i) {
      for (const li of this.items.children)
        li.classList.toggle("selected", li.dataset.crash !== undefined && li.dataset.crash === String(i));
    }

    click(x, y) {
      /* a crash's or a finding's marks first, then the nearest event of the lane */
      let best = null;
      this.tr.crashes.forEach((c, i) => {
        if (c.at.lane < 0) return;
        const d = Math.hypot(this.xAt(c.at.t) - x, this.laneY(c.at.lane) - y);
        if (d <= 9 && (!best || d < best.d)) best = { d, crash: i };
      });
      this.tr.findings.forEach((f, i) => {
        for (const p of [f.use, f.free, f.alloc]) {
          if (!p || p.lane < 0) continue;
          const d = Math.hypot(this.xAt(p.t) - x, this.laneY(p.lane) - y);
          if (d <= 9 && (!best || d < best.d)) best = { d, finding: i };
        }
      });
      if (best && best.crash !== undefined) { this.showCrash(best.crash); return; }
      if (best) { this.showFinding(best.finding); return; }
      const l = Math.floor((y - AXIS_H) / LANE_H);
      if (l < 0 || l >= this.nl) return;
      const t = this.timeAt(x), idx = this.byLane[l], j = this.lower(l, t);
      let pick = -1, bd = HIT_PX + 1;
      for (const k of [j - 1, j]) {
        if (k < 0 || k >= idx.length) continue;
        const d = Math.abs(this.xAt(this.t[idx[k]]) - x);
        if (d < bd) { bd = d; pick = idx[k]; }
      }
      if (pick >= 0) this.showEvent(pick);
    }

    stackLines(frames, none) {
      return frames && frames.length ? frames.map((s) => "    " + s).join("\n") : "    " + none;
    }

    showEvent(i) {
      const ev = this.tr.ev, lane = this.tr.lanes[ev.l[i]], k = ev.k[i];
      const at = this.tr.from_ms + this.t[i] / 1e6;
      let head = KINDS[k].name + " at " + at.toFixed(3) + " ms by " + who(lane.tid, lane.ractor);
      if (k >= 4) {
        const probe = ev.p[i] >= 0 ? this.tr.probes[ev.p[i]] : null;
        head += "\n" + (probe || "a watched function") + " (probe at 0x" + ev.a[i] + "), value 0x" + ev.z[i].toString(16);
      } else {
        head += "\nblock 0x" + ev.a[i] + ", " + ev.z[i] + " bytes";
      }
      const id = ev.s[i];
      let body;
      if (!id) body = "    no stack recorded (1 free in " + this.tr.stack_sample + " per thread gets one: RACE_STACK_SAMPLE)";
      else if (this.tr.stacks[id]) body = this.stackLines(this.tr.stacks[id], "(stack " + id + " unreadable)");
      else body = "    stack " + id + " is not embedded (more distinct stacks than the page holds)";
      this.selected = { event: i };
      this.details.textContent = head + "\n" + (id ? "stack " + id + ":\n" : "") + body;
      this.mark(null);
      this.draw();
    }

    showFinding(i) {
      const f = this.tr.findings[i], from = this.tr.from_ms;
      const lines = ["ERROR: race: " + f.title];
      lines.push(f.access + (f.size ? " of size " + f.size : "") + " at " + f.addr + " by " +
        who(f.use.tid, f.use.ractor) + " at " + (from + f.use.t / 1e6).toFixed(3) + " ms:");
      lines.push(this.stackLines(f.use_stack, "(no stack recorded)"));
      if (f.block) lines.push("", "block " + f.block.addr + ", " + f.block.size + " bytes");
      if (f.free) {
        lines.push("", "freed by " + who(f.free.tid, f.free.ractor) + " via " + f.entry + " at " +
          (from + f.free.t / 1e6).toFixed(3) + " ms (" + ms(f.use.t - f.free.t) + " before):");
        lines.push(this.stackLines(f.free_stack, "(no stack recorded)"));
      }
      if (f.alloc) {
        lines.push("", "previously allocated by " + who(f.alloc.tid, f.alloc.ractor) + " at " +
          (from + f.alloc.t / 1e6).toFixed(3) + " ms:");
        lines.push(this.stackLines(f.alloc_stack, "(no stack recorded)"));
      }
      if (f.detail) lines.push("", "detail: " + f.detail);
      if (f.count > 1) lines.push("", "(one of a group of " + f.count + " findings with the same use and free stacks)");
      this.selected = { finding: i };
      this.details.textContent = lines.join("\n");
      this.mark(i);
      this.draw();
    }

    mark(i) {
      for (const li of this.items.children)
        li.classList.toggle("selected", li.dataset.finding !== undefined && li.dataset.finding === String(i));
    }
  }

  const timelines = [];
  let nev = 0;
  for (const tr of data.traces) {
    const tl = new Timeline(tr, timelines.length);
    timelines.push(tl);
    nev += tl.n;
  }
  for (const tl of timelines) tl.draw();
  const first = performance.now() - T0;
  const nf = data.traces.reduce((a, t) => a + t.findings.length, 0);
  const nc = data.traces.reduce((a, t) => a + t.crashes.length, 0);
  document.getElementById("summary").textContent = data.traces.length ?
    nf + " finding" + (nf === 1 ? "" : "s") + (nc ? " and " + nc + " crash record" + (nc === 1 ? "" : "s") : "") + " in " + data.traces.length + " of " + data.traces_read +
    " trace" + (data.traces_read === 1 ? "" : "s") + "; each timeline shows the last " + data.window_ms +
    " ms of its trace (reaching back to each finding's free). race " + data.version :
    "No trace with findings or crashes among the " + data.traces_read + " read.";
  window.addEventListener("resize", () => timelines.forEach((t) => t.request()));
  console.log("race timeline: " + nev + " events in " + timelines.length + " timelines; parse " +
    (T_PARSED - T0).toFixed(1) + " ms, first render " + first.toFixed(1) + " ms");

  /* #selftest: what a person would do, through the page's own handlers: click the first
   * finding's use marker on the canvas, then the newest event that has a stack, then zoom
   * with the wheel 20 times, and write down what the page showed. */
  function selftest() {
    const out = [];
    /* a press and release at (x, y) of tl's canvas: what a click there sends */
    const click = (tl, x, y) => {
      const r = tl.canvas.getBoundingClientRect();
      for (const type of ["mousedown", "mouseup"])
        tl.canvas.dispatchEvent(new MouseEvent(type, { clientX: r.left + x, clientY: r.top + y, bubbles: true, button: 0 }));
    };
    out.push("traces " + timelines.length);
    out.push("lanes " + document.querySelectorAll(".lane").length);
    out.push("findings " + document.querySelectorAll(".finding").length);
    out.push("crashes " + document.querySelectorAll(".crash").length);
    out.push("events " + nev);
    const tl = timelines.find((t) => t.tr.findings.length);
    if (tl) {
      const f = tl.tr.findings[0];
      tl.focus(f);
      click(tl, tl.xAt(f.use.t), tl.laneY(f.use.lane));
      const shown = tl.details.textContent;
      const top = (f.use_stack[0] || "").replace(/^#0 0x[0-9a-f]+ in /, "");
      out.push("click-finding " + (shown.startsWith("ERROR: race: " + f.title) ? "shown" : "not-shown"));
      out.push("click-finding-stack " + (top && shown.includes(top) ? top : "missing"));
      out.push("finding-selected " + tl.items.querySelectorAll(".finding.selected").length);
      /* the newest event with an embedded stack */
      const ev = tl.tr.ev;
      let pick = -1;
      for (let i = tl.n - 1; i >= 0 && pick < 0; i--) if (ev.s[i] && tl.tr.stacks[ev.s[i]]) pick = i;
      if (pick >= 0) {
        tl.v0 = tl.t[pick] - 2000;
        tl.v1 = tl.t[pick] + 2000;
        tl.draw();
        click(tl, tl.xAt(tl.t[pick]), tl.laneY(ev.l[pick]));
        const frame0 = tl.tr.stacks[ev.s[pick]][0] || "";
        out.push("click-event " + (tl.details.textContent.includes(frame0) ? "stack-shown" : "not-shown"));
      } else {
        out.push("click-event none-with-stack");
      }
      tl.reset();
      tl.draw();
      const zooms = [], r = tl.canvas.getBoundingClientRect();
      for (let i = 0; i < 20; i++) {
        tl.canvas.dispatchEvent(new WheelEvent("wheel", { deltaY: i < 10 ? -300 : 300, clientX: r.left + r.width / 2,
          clientY: r.top + 40, bubbles: true, cancelable: true }));
        const t0 = performance.now();
        tl.flush();
        zooms.push(performance.now() - t0);
      }
      out.push("zoom-redraw-max-ms " + Math.max(...zooms).toFixed(1));
      tl.focus(f);
      tl.showFinding(0);
    }
    const tc = timelines.find((t) => t.tr.crashes.some((c) => c.at.lane >= 0));
    if (tc) {
      const i = tc.tr.crashes.findIndex((c) => c.at.lane >= 0), c = tc.tr.crashes[i];
      tc.focus({ use: c.at, free: null });
      click(tc, tc.xAt(c.at.t), tc.laneY(c.at.lane));
      const top = (c.stack[0] || "").replace(/^#0 0x[0-9a-f]+ in /, "");
      out.push("click-crash " + (tc.details.textContent.startsWith("crash: " + c.signal) ? "shown" : "not-shown"));
      out.push("click-crash-stack " + (top && tc.details.textContent.includes(top) ? top : "missing"));
      if (tl) { tl.focus(tl.tr.findings[0]); tl.showFinding(0); }
    }
    out.push("first-render-ms " + first.toFixed(1));
    out.push("errors " + errors.length + (errors.length ? ": " + errors.join("; ") : ""));
    const pre = document.getElementById("selftest");
    pre.textContent = out.join("\n");
    pre.hidden = false;
    console.log("race timeline selftest: " + out.join(", "));
  }
  /* #finding=T.N or #crash=T.N: open on finding (crash record) N of the T-th timeline */
  function open(hash) {
    const m = /^#(finding|crash)=(\d+)\.(\d+)$/.exec(hash);
    const tl = m && timelines[Number(m[2])];
    if (!tl) return;
    const n = Number(m[3]);
    if (m[1] === "finding" && tl.tr.findings[n]) { tl.focus(tl.tr.findings[n]); tl.showFinding(n); }
    if (m[1] === "crash" && tl.tr.crashes[n]) { tl.focus({ use: tl.tr.crashes[n].at, free: null }); tl.showCrash(n); }
  }
  if (location.hash === "#selftest") selftest();
  else open(location.hash);
  window.addEventListener("hashchange", () => open(location.hash));
})();
</script>
</body>
</html>
)HTML";

#endif

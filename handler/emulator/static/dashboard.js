// podfleet emulator dashboard: renders each snapshot the server sends over server-sent events.
// Plain DOM, no framework, no build step; every value goes in with textContent (no HTML injection).
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function secs(value) {
  if (value === null || value === undefined) return "";
  if (value < 60) return value.toFixed(value < 10 ? 2 : 1) + " s";
  const m = Math.floor(value / 60);
  return m + " min " + Math.round(value - 60 * m) + " s";
}

function shortId(id) { return id && id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-4) : id; }

function progressCell(p) {
  if (p === null || p === undefined) return "";
  if (typeof p !== "object") return String(p).slice(0, 60);
  let done = p.items_done, total = p.items_total, label = "";
  if (p.stage !== undefined && p.stages_total) {
    done = p.stages_done; total = p.stages_total;
    label = " stage " + p.stage;
  }
  if (typeof done === "number" && typeof total === "number" && total > 0) {
    const bar = el("span", { class: "bar" }, el("i", { style: "width:" + Math.round(100 * done / total) + "%" }));
    const extra = p.siblings_in_flight !== undefined ? " · " + p.siblings_in_flight + " siblings" : "";
    const failed = p.items_failed ? " · " + p.items_failed + " failed" : "";
    return el("span", {}, bar, done + "/" + total + label + extra + failed);
  }
  return JSON.stringify(p).slice(0, 60);
}

function card(label, value, testid) {
  return el("div", { class: "card", "data-testid": testid }, el("b", {}, value), el("span", {}, label));
}

function jobRow(job, sibling) {
  return el("tr", {
      class: sibling ? "sibling" : "", "data-job-id": job.id, "data-status": job.status,
      "data-parent-id": job.parent_id || null,
    },
    el("td", { title: job.id }, (sibling ? "└ chunk " + job.chunk + " · " : "") + shortId(job.id)),
    el("td", {}, el("span", { class: "badge " + job.status }, job.status)),
    el("td", {}, progressCell(job.progress)),
    el("td", {}, job.worker_id || ""),
    el("td", {}, secs(job.delay_s)),
    el("td", {}, secs(job.execution_s)),
    el("td", {}, sibling ? "" : secs(job.billed_s)),
    el("td", { class: "err" }, job.error || ""));
}

function requestRate(requests) {
  // every operation (client API and worker protocol), mean over the last 10 s
  let total = 0;
  for (const op of Object.values(requests || {})) total += op.per_s_10s || 0;
  return total.toFixed(1);
}

function render(s) {
  document.getElementById("endpoint").textContent = s.endpoint_id + " · release " + s.version;
  const b = s.billing;
  document.getElementById("cards").replaceChildren(
    card("queue depth", s.queue.depth, "queue-depth"),
    card("in progress", s.queue.in_progress, "in-progress"),
    card("completed", s.counts.completed, "completed"),
    card("failed", s.counts.failed, "failed"),
    card("workers", s.summary.total, "worker-total"),
    card("billed worker-s", b.workerSeconds.toFixed(1), "billed"),
    card("running / idle s", b.runningSeconds.toFixed(1) + " / " + b.idleSeconds.toFixed(1), "running-idle"),
    card("requests/s (10 s)", requestRate(s.requests), "request-rate"));
  const sc = s.scaling;
  const scale = sc.workers_min === sc.workers_max ? sc.workers_max + " always on"
    : "min " + sc.workers_min + " · max " + sc.workers_max + " · idle timeout " + sc.idle_timeout_s + " s";
  const byState = ["running", "idle", "initializing", "throttled", "unhealthy"]
    .filter((k) => s.summary[k]).map((k) => s.summary[k] + " " + k).join(" · ");
  document.getElementById("scaling").textContent = (byState ? byState + " — " : "") + scale +
    (sc.cap !== null ? " · capped at " + sc.cap : "");

  document.querySelector("#workers tbody").replaceChildren(...s.workers.map((w) =>
    el("tr", { "data-worker-id": w.id, "data-state": w.state },
      el("td", {}, w.id),
      el("td", {}, el("span", { class: "badge " + w.state }, w.state),
        w.stale ? el("span", { class: "stale" }, "stale") : null),
      el("td", { title: w.jobs.join(", ") }, w.jobs.map(shortId).join(", ")),
      el("td", {}, w.jobs_done),
      el("td", {}, w.restarts),
      el("td", {}, w.last_exit || ""),
      el("td", {}, secs(w.uptime_s)),
      el("td", {}, secs(w.billed_s)))));

  const rows = [];
  for (const job of s.jobs) {
    rows.push(jobRow(job, false));
    for (const kid of job.siblings || []) rows.push(jobRow(kid, true));
  }
  document.querySelector("#jobs tbody").replaceChildren(...rows);

  document.getElementById("errors").replaceChildren(...s.errors.map((e) =>
    el("li", {}, el("span", { class: "t" }, new Date(e.t * 1000).toLocaleTimeString()),
      "[" + e.kind + "] " + (e.worker_id ? e.worker_id + " " : "") + (e.job_id ? shortId(e.job_id) + ": " : "") + e.message)));
  window.__podfleetSnapshots = (window.__podfleetSnapshots || 0) + 1;
}

function connect() {
  const conn = document.getElementById("conn");
  const source = new EventSource("/dashboard/events");
  source.addEventListener("open", () => { conn.textContent = "live"; conn.className = "conn on"; });
  source.addEventListener("error", () => { conn.textContent = "reconnecting"; conn.className = "conn off"; });
  source.addEventListener("snapshot", (event) => render(JSON.parse(event.data)));
}

document.addEventListener("DOMContentLoaded", connect);

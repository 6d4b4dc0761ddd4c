// The park web page: plain JavaScript, no build step, no third-party code.
//
// The live job table follows GET /v1/jobs/stream (a `snapshot`, then one `change` per job
// change). Without a token it uses the browser's EventSource, which resumes by itself
// with Last-Event-ID; with a token it reads the same stream with fetch() so it can send
// `Authorization: Bearer`, and resumes with Last-Event-ID the same way.
"use strict";

(() => {
  const TOKEN_KEY = "park.token";
  const FINAL = new Set(["complete", "failed", "cancelled"]);
  const ACTIVE = new Set(["pending", "running"]);
  const PRIORITY_RANK = { free: 0, low: 1, normal: 2, high: 3, urgent: 4 };
  const FINISHED_KEPT = 200; // finished jobs the table remembers (newest first)
  const RECENT_FINISHED = 20; // finished jobs the default view shows beside the active ones
  const SPEC_LIST_SHOWN = 12; // values of a list a job's spec shows (its data, its inputs)
  const FINISHED_PAGE = 100; // finished jobs asked for at a time (in memory or archived)
  const JOB_POLL_MS = 1000;
  const WORKERS_POLL_MS = 2000;

  const $ = (selector) => document.querySelector(selector);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key in node && key !== "list") node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // -- formatting ---------------------------------------------------------------------

  function fmtNumber(value, digits = 6) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value) && Math.abs(value) < 1e9) return String(value);
    return Number(value.toPrecision(digits)).toString();
  }

  function fmtDuration(seconds) {
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  // A spec as JSON for people: a list of plain values on one line, long ones shortened
  // (a fit's data would otherwise take a line per number).
  function specText(value, indent = "") {
    const inner = `${indent}  `;
    if (Array.isArray(value)) {
      if (value.every((v) => v === null || typeof v !== "object")) {
        const shown = value.slice(0, SPEC_LIST_SHOWN).map((v) => JSON.stringify(v));
        if (value.length > SPEC_LIST_SHOWN) shown.push(`… ${value.length - SPEC_LIST_SHOWN} more`);
        return `[${shown.join(", ")}]`;
      }
      return `[\n${value.map((v) => inner + specText(v, inner)).join(",\n")}\n${indent}]`;
    }
    if (value !== null && typeof value === "object") {
      const entries = Object.entries(value);
      if (!entries.length) return "{}";
      const lines = entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${specText(v, inner)}`);
      return `{\n${lines.join(",\n")}\n${indent}}`;
    }
    return JSON.stringify(value);
  }

  function fmtTime(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const date = new Date(seconds * 1000);
    const today = new Date();
    const time = date.toLocaleTimeString([], { hour12: false });
    return date.toDateString() === today.toDateString()
      ? time
      : `${date.toLocaleDateString()} ${time}`;
  }

  function progressOf(job) {
    const p = job.progress || {};
    let done = p.done || 0;
    let total = p.total || 0;
    let unit = "units";
    if (typeof p.items_total === "number" && p.items_total > 0) {
      done = p.items_done || 0;
      total = p.items_total;
      unit = "items";
    } else if (typeof p.starts_total === "number" && p.starts_total > 0) {
      done = p.starts_done || 0;
      total = p.starts_total;
      unit = "starts";
    }
    let fraction = total > 0 ? Math.min(1, done / total) : 0;
    if (job.status === "complete") fraction = 1;
    let text = total > 0 ? `${done}/${total} ${unit}` : "not planned yet";
    if (job.status === "complete") text = total > 0 ? `${done}/${total} ${unit}` : "done";
    const extra = [];
    if (p.stage) extra.push(p.stage);
    if (typeof p.generation === "number" && p.generation >= 0) extra.push(`generation ${p.generation}`);
    if (p.best_chisq !== null && p.best_chisq !== undefined) {
      extra.push(`best χ² ${fmtNumber(p.best_chisq)}`);
    }
    return { fraction, text, extra: extra.join(" · ") };
  }

  // -- the token and the API ----------------------------------------------------------

  function getToken() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch (_) {
      return "";
    }
  }

  function setToken(token) {
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      /* storage refused: the token lasts as long as the page */
    }
    showTokenState();
  }

  function showTokenState(message) {
    const stateText = $("#token-state");
    if (message) {
      stateText.textContent = message;
      stateText.classList.add("error-text");
      $("#token-input").focus();
    } else {
      stateText.textContent = getToken() ? "token in use" : "";
      stateText.classList.remove("error-text");
    }
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function errorMessage(response) {
    let text = "";
    try {
      text = await response.text();
      const body = JSON.parse(text);
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) {
      /* not the JSON error shape */
    }
    const head = `${response.status} ${response.statusText}`.trim();
    return text ? `${head}: ${text.slice(0, 200)}` : head;
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra || {});
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  async function request(path, options = {}) {
    const headers = authHeaders(options.accept ? { Accept: options.accept } : {});
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body,
      cache: "no-store",
    });
    if (!response.ok) {
      const message = await errorMessage(response);
      if (response.status === 401) showTokenState(`this server needs a token: ${message}`);
      throw new ApiError(response.status, message);
    }
    return response;
  }

  async function getJSON(path) {
    return (await request(path, { accept: "application/json" })).json();
  }

  function showError(message) {
    $("#error-text").textContent = message;
    $("#error").hidden = false;
  }

  function hideError() {
    $("#error").hidden = true;
    $("#error-text").textContent = "";
  }

  // -- the job stream -----------------------------------------------------------------

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Parse a text/event-stream body; call dispatch(type, data) per event and setId(id)
  // per `id:` field.
  async function readEventStream(body, dispatch, setId) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let type = "";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const end = /\r\n|\r|\n/.exec(buffer);
        if (!end) break;
        if (end[0] === "\r" && end.index === buffer.length - 1) break; // "\r\n" split in two
        const line = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        if (line === "") {
          if (data.length) dispatch(type || "message", data.join("\n"));
          type = "";
          data = [];
          continue;
        }
        if (line[0] === ":") continue; // a heartbeat comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text[0] === " ") text = text.slice(1);
        if (field === "event") type = text;
        else if (field === "data") data.push(text);
        else if (field === "id" && !text.includes("\0")) setId(text);
      }
    }
  }

  function fetchStream(url, onEvent, onState) {
    let stopped = false;
    let controller = null;
    let lastId = null;
    (async () => {
      while (!stopped) {
        controller = new AbortController();
        onState(lastId === null ? "connecting" : "reconnecting");
        try {
          const headers = authHeaders({ Accept: "text/event-stream" });
          if (lastId !== null) headers["Last-Event-ID"] = lastId;
          const response = await fetch(url, {
            headers,
            signal: controller.signal,
            cache: "no-store",
          });
          if (!response.ok) {
            const message = await errorMessage(response);
            if (response.status === 401) showTokenState(`this server needs a token: ${message}`);
            onState("error", message);
            await sleep(3000);
            continue;
          }
          onState("live");
          await readEventStream(response.body, onEvent, (id) => {
            lastId = id;
          });
        } catch (_) {
          if (stopped) return;
        }
        if (!stopped) {
          onState("reconnecting");
          await sleep(1000);
        }
      }
    })();
    return {
      close() {
        stopped = true;
        if (controller) controller.abort();
      },
    };
  }

  function eventSourceStream(url, onEvent, onState) {
    let source = null;
    let retry = null;
    let stopped = false;
    const open = () => {
      onState("connecting");
      source = new EventSource(url);
      source.onopen = () => onState("live");
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) {
          // Refused outright (not a dropped connection): start again in a while.
          onState("error", "the job stream was refused");
          if (!stopped) retry = setTimeout(open, 3000);
        } else {
          onState("reconnecting");
        }
      };
      for (const name of ["snapshot", "change"]) {
        source.addEventListener(name, (event) => onEvent(name, event.data));
      }
    };
    open();
    return {
      close() {
        stopped = true;
        clearTimeout(retry);
        if (source) source.close();
      },
    };
  }

  // -- the table's state ----------------------------------------------------------------

  const table = {
    active: new Map(), // id -> job, as the stream shows it
    finished: new Map(), // id -> job, ended (seen ending here, or listed at start)
    offset: null,
    sort: { key: "submitted_at", dir: -1 },
    rows: new Map(), // id -> { tr, cells } on screen
    users: "",
    finishedKept: FINISHED_KEPT, // grows with each "Older jobs" page
    finishedNext: null, // the listing's cursor for the next older page (null: no more)
    finishedQuery: "", // the filters the finished jobs were listed with
  };
  let stream = null;
  let renderQueued = false;

  function setConnection(state, message) {
    const conn = $("#conn");
    conn.dataset.state = state;
    const labels = {
      connecting: "connecting…",
      live: "live",
      reconnecting: "reconnecting…",
      error: "stream error",
    };
    conn.textContent = labels[state] || state;
    conn.title = message || "the live job stream";
  }

  function connectStream() {
    if (stream) stream.close();
    const url = "/v1/jobs/stream";
    stream =
      getToken() || !window.EventSource
        ? fetchStream(url, onStreamEvent, setConnection)
        : eventSourceStream(url, onStreamEvent, setConnection);
  }

  function remember(job) {
    table.finished.delete(job.id);
    table.finished.set(job.id, job);
    while (table.finished.size > table.finishedKept) {
      table.finished.delete(table.finished.keys().next().value);
    }
  }

  function onStreamEvent(name, raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch (_) {
      return;
    }
    if (name === "snapshot") {
      table.active = new Map(message.jobs.map((job) => [job.id, job]));
    } else if (name === "change") {
      const job = message.job;
      if (message.op === "upsert") {
        table.active.set(job.id, job);
      } else {
        table.active.delete(job.id);
        remember(job);
      }
      jobChanged(job, message.op);
    }
    table.offset = message.offset;
    $("#conn").dataset.offset = String(message.offset);
    scheduleRender();
  }

  // Finished jobs come from GET /v1/jobs, which answers from memory and the archive
  // alike, filtered by the toolbar's user and tag; "Older jobs" pages on with the cursor.
  function finishedQuery() {
    const { user, tag, status } = filters();
    const params = new URLSearchParams();
    const statuses = FINAL.has(status) ? [status] : [...FINAL];
    for (const s of statuses) params.append("status", s);
    if (user) params.set("user", user);
    if (tag) params.append("tag", tag);
    params.set("limit", String(FINISHED_PAGE));
    return params;
  }

  async function loadFinished(older = false) {
    const params = finishedQuery();
    const query = params.toString();
    if (older && table.finishedNext !== null) params.set("before", String(table.finishedNext));
    try {
      const listed = await getJSON(`/v1/jobs?${params}`);
      if (!older || query !== table.finishedQuery) {
        table.finished = new Map();
        table.finishedKept = FINISHED_KEPT;
      }
      table.finishedQuery = query;
      table.finishedNext = listed.next ?? null;
      if (older) {
        table.finishedKept += FINISHED_PAGE;
        for (const job of listed.jobs) if (!table.finished.has(job.id)) table.finished.set(job.id, job);
      } else {
        for (const job of listed.jobs.slice().reverse()) if (!table.finished.has(job.id)) remember(job);
      }
      scheduleRender();
    } catch (err) {
      if (err.status !== 401) showError(`Could not list finished jobs: ${err.message}`);
    }
  }

  let reloadTimer = null;
  function filtersChanged() {
    scheduleRender();
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      if (finishedQuery().toString() !== table.finishedQuery) loadFinished();
    }, 300);
  }

  function tagMatches(job, tag) {
    if (!tag) return true;
    const [key, ...rest] = tag.split("=");
    const tags = job.tags || {};
    if (!(key in tags)) return false;
    return rest.length === 0 || tags[key] === rest.join("=");
  }

  // -- the jobs view ------------------------------------------------------------------

  function filters() {
    return {
      user: $("#filter-user").value.trim(),
      tag: $("#filter-tag").value.trim(),
      status: $("#filter-status").value,
    };
  }

  function visibleJobs() {
    const { user, tag, status } = filters();
    let jobs;
    if (status === "active") jobs = [...table.active.values()];
    else if (status === "recent") {
      // The active jobs and the newest finished ones: work that just ended stays in view.
      jobs = [...table.active.values()];
      const done = [...table.finished.values()].filter((j) => !table.active.has(j.id));
      done.sort((a, b) => (b.finished_at ?? 0) - (a.finished_at ?? 0));
      jobs.push(...done.slice(0, RECENT_FINISHED));
    }
    else if (ACTIVE.has(status)) jobs = [...table.active.values()].filter((j) => j.status === status);
    else if (status === "finished") jobs = [...table.finished.values()];
    else if (FINAL.has(status)) jobs = [...table.finished.values()].filter((j) => j.status === status);
    else {
      jobs = [...table.active.values()];
      for (const job of table.finished.values()) if (!table.active.has(job.id)) jobs.push(job);
    }
    if (user) jobs = jobs.filter((job) => job.user === user);
    if (tag) jobs = jobs.filter((job) => tagMatches(job, tag));
    const { key, dir } = table.sort;
    const value = (job) => {
      if (key === "progress") return progressOf(job).fraction;
      if (key === "priority") return PRIORITY_RANK[job.priority] ?? -1;
      return job[key];
    };
    jobs.sort((a, b) => {
      const x = value(a);
      const y = value(b);
      if (x === y) return a.id < b.id ? -dir : a.id > b.id ? dir : 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    return jobs;
  }

  function makeRow(job) {
    const link = el("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, el("code", { text: job.id }));
    const cells = {
      id: el("td", {}, link),
      user: el("td"),
      kind: el("td"),
      status: el("td", {}, el("span", { class: "status" })),
      priority: el("td"),
      progress: el("td", { class: "progress" }, el("progress", { max: 1, value: 0 }), " ", el("span")),
      submitted: el("td"),
      actions: el("td"),
    };
    const tr = el("tr", { "data-job-id": job.id }, ...Object.values(cells));
    return { tr, cells, shown: null };
  }

  function updateRow(row, job) {
    if (row.shown === job) return;
    row.shown = job;
    const { cells } = row;
    row.tr.dataset.status = job.status;
    cells.user.textContent = job.user;
    cells.kind.textContent = job.kind;
    const badge = cells.status.firstChild;
    badge.textContent = job.status;
    badge.className = `status ${job.status}`;
    cells.priority.textContent = job.priority;
    const progress = progressOf(job);
    const bar = cells.progress.querySelector("progress");
    bar.value = progress.fraction;
    cells.progress.querySelector("span").textContent = progress.text;
    cells.progress.title = progress.extra;
    cells.submitted.textContent = fmtTime(job.submitted_at);
    const cancellable = ACTIVE.has(job.status);
    const button = cells.actions.querySelector("button.cancel");
    if (cancellable && !button) {
      cells.actions.append(el("button", { type: "button", class: "cancel", text: "Cancel" }));
    } else if (!cancellable && button) {
      button.remove();
    }
  }

  function renderJobs() {
    const jobs = visibleJobs();
    const tbody = $("#jobs tbody");
    const keep = new Set(jobs.map((job) => job.id));
    for (const [id, row] of table.rows) {
      if (!keep.has(id)) {
        row.tr.remove();
        table.rows.delete(id);
      }
    }
    let previous = null;
    for (const job of jobs) {
      let row = table.rows.get(job.id);
      if (!row) {
        row = makeRow(job);
        table.rows.set(job.id, row);
      }
      updateRow(row, job);
      const wanted = previous ? previous.nextSibling : tbody.firstChild;
      if (wanted !== row.tr) tbody.insertBefore(row.tr, wanted);
      previous = row.tr;
    }
    $("#jobs-empty").hidden = jobs.length > 0;
    const { status } = filters();
    $("#jobs-more").hidden =
      status === "active" || status === "recent" || ACTIVE.has(status) || table.finishedNext === null;
    $("#job-count").textContent =
      `${jobs.length} job(s) shown · ${table.active.size} active` +
      (table.offset === null ? "" : ` · log offset ${table.offset}`);
    for (const th of document.querySelectorAll("#jobs th[data-sort]")) {
      if (th.dataset.sort === table.sort.key) {
        th.setAttribute("aria-sort", table.sort.dir > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
    const users = [...new Set([...table.active.values(), ...table.finished.values()].map((j) => j.user))]
      .sort()
      .join("\n");
    if (users !== table.users) {
      table.users = users;
      $("#users").replaceChildren(...(users ? users.split("\n") : []).map((u) => el("option", { value: u })));
    }
    document.body.dataset.filter = status;
  }

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderJobs();
    });
  }

  async function cancelJob(id, button) {
    if (button) button.disabled = true;
    try {
      await request(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      hideError();
      if (page.job && page.job.id === id) refreshJobSoon();
    } catch (err) {
      showError(`Could not cancel job ${id}: ${err.message}`);
      if (button) button.disabled = false;
    }
  }

  // -- a job's page ---------------------------------------------------------------------

  const page = { job: null, id: null, timer: null, generation: 0, ended: false, specShown: false };

  function closeJobPage() {
    clearTimeout(page.timer);
    page.timer = null;
    page.id = null;
    page.job = null;
    page.generation += 1;
  }

  function openJobPage(id) {
    closeJobPage();
    page.id = id;
    page.ended = false;
    page.specShown = false;
    $("#job-spec").textContent = "";
    $("#job-spec-box").hidden = true;
    $("#job-spec-box").open = false;
    $("#job-id").textContent = id;
    $("#job-status").textContent = "";
    $("#job-status").className = "status";
    $("#job-missing").hidden = true;
    $("#job-body").hidden = false;
    $("#job-facts").replaceChildren();
    $("#job-cancel").hidden = true;
    $("#job-progress").value = 0;
    $("#job-progress-text").textContent = "";
    $("#job-progress-extra").textContent = "";
    $("#job-error").hidden = true;
    $("#job-notify").hidden = true;
    $("#job-reasons").replaceChildren();
    $("#job-explain-facts").textContent = "";
    $("#job-result").replaceChildren();
    const img = $("#job-plot-img");
    img.hidden = true;
    img.removeAttribute("src");
    delete img.dataset.loaded;
    $("#job-plot-note").hidden = false;
    $("#job-plot-note").textContent = "The plot appears when the job is finished.";
    $("#units tbody").replaceChildren();
    $("#units-counts").textContent = "";
    $("#units-note").hidden = true;
    const known = table.active.get(id) || table.finished.get(id);
    if (known) showJob(known);
    refreshJob();
  }

  function refreshJobSoon() {
    clearTimeout(page.timer);
    page.timer = setTimeout(refreshJob, 50);
  }

  function jobChanged(job, op) {
    if (page.id !== job.id) return;
    // The stream's view lacks the private fields: keep those we already have.
    showJob(Object.assign({}, page.job || {}, job));
    if (op === "remove") refreshJobSoon();
  }

  function showJob(job) {
    page.job = job;
    const badge = $("#job-status");
    badge.textContent = job.status;
    badge.className = `status ${job.status}`;
    const facts = [
      ...(job.name ? [["name", job.name]] : []),
      ["user", job.user],
      ["kind", job.kind],
      ["priority", job.priority],
      ["submitted", fmtTime(job.submitted_at)],
      ["started", fmtTime(job.started_at)],
      ["finished", fmtTime(job.finished_at)],
    ];
    if (job.started_at) {
      const end = job.finished_at || Date.now() / 1000;
      facts.push([job.finished_at ? "duration" : "running for", fmtDuration(end - job.started_at)]);
    }
    const tags = Object.entries(job.tags || {})
      .filter(([k]) => k !== "user")
      .map(([k, v]) => `${k}=${v}`);
    if (tags.length) facts.push(["tags", tags.join(", ")]);
    $("#job-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    if (job.spec && !page.specShown) { // (a spec never changes: drawn once per page)
      $("#job-spec").textContent = specText(job.spec);
      page.specShown = true;
    }
    $("#job-spec-box").hidden = !page.specShown;
    // A finished job waits for nothing: no "Why it waits"; a running one tells its progress.
    $("#job-why").hidden = FINAL.has(job.status);
    $("#job-why-title").textContent = job.status === "running" ? "How far it is" : "Why it waits";
    const progress = progressOf(job);
    $("#job-progress").value = progress.fraction;
    $("#job-progress-text").textContent = progress.text;
    $("#job-progress-extra").textContent = progress.extra;
    $("#job-cancel").hidden = !ACTIVE.has(job.status);
    $("#job-cancel").disabled = false;
    if (job.error) {
      $("#job-error").textContent = job.error;
      $("#job-error").hidden = false;
    }
  }

  // What the submitter asked to hear about the job's end, and what became of it.
  function showNotify(answer) {
    const asked = answer.notify;
    if (!asked) return;
    const when = { digest: "daily digest", each: "a message when it ends", never: "never" }[asked.when];
    const to = [asked.email, asked.webhook && `webhook ${asked.webhook}`].filter(Boolean).join(" and ");
    const parts = [`Notify ${to}: ${when}.`];
    if (answer.mail_note) parts.push(`Note: ${answer.mail_note}.`);
    for (const n of answer.notifications) {
      let state = n.status;
      if (n.status === "sent") state = `sent ${fmtTime(n.sent_at)}`;
      else if (n.status === "waiting") state = "waiting for the next digest";
      else if (n.status === "retrying") state = `retrying (${n.attempts} attempts; next ${fmtTime(n.retry_at)}; ${n.last_error})`;
      parts.push(`${n.channel} to ${n.target}: ${state}.`);
    }
    $("#job-notify").textContent = parts.join(" ");
    $("#job-notify").hidden = false;
  }

  // A straggler's backup attempt runs on a second worker: both are shown.
  function unitWorkers(u) {
    const cell = [u.worker ? el("code", { text: u.worker }) : "–"];
    if (u.backup_worker) cell.push(" + backup on ", el("code", { text: u.backup_worker }));
    else if (u.backups) cell.push(` (${u.backups} backup${u.backups > 1 ? "s" : ""} so far)`);
    return cell;
  }

  function showUnits(answer) {
    const rows = answer.units.map((u) =>
      el("tr", { "data-unit-id": u.id },
        el("td", {}, el("code", { text: u.id })),
        el("td", { text: u.status }),
        el("td", { class: "num", text: u.attempts }),
        el("td", {}, ...unitWorkers(u))),
    );
    $("#units tbody").replaceChildren(...rows);
    $("#units").hidden = rows.length === 0;
    const counts = Object.entries(answer.counts).map(([k, v]) => `${v} ${k}`);
    $("#units-counts").textContent = counts.length ? `(${counts.join(", ")})` : "";
    const note = $("#units-note");
    if (answer.total > answer.units.length) {
      note.textContent = `Showing ${answer.units.length} of ${answer.total} units.`;
      note.hidden = false;
    } else if (!answer.units.length && FINAL.has(answer.status)) {
      const sum = answer.summary;
      note.textContent = sum
        ? `${sum.done} of ${sum.count} units done in ${sum.attempts} attempt(s) on ` +
          `${Object.keys(sum.workers).length} worker(s), ${fmtNumber(sum.cpu_seconds, 4)} CPU seconds ` +
          "(a finished job's units themselves are not kept)."
        : "A finished job's units are not kept.";
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  }

  function showExplain(answer) {
    $("#job-reasons").replaceChildren(...answer.reasons.map((r) => el("li", { text: r })));
    const facts = [];
    if (answer.rank !== null) facts.push(`rank ${answer.rank} of ${answer.runnable_jobs} runnable`);
    if (answer.weight !== null) facts.push(`weight ${fmtNumber(answer.weight, 4)}`);
    if (answer.current_share !== null) facts.push(`current share ${fmtNumber(answer.current_share, 3)}`);
    if (answer.target_share !== null) facts.push(`target share ${fmtNumber(answer.target_share, 3)}`);
    if (answer.estimated_start !== null) facts.push(`estimated start ${fmtTime(answer.estimated_start)}`);
    if (answer.expected_finish) facts.push(`expected finish ${fmtTime(answer.expected_finish)}`);
    $("#job-explain-facts").textContent = facts.join(" · ");
  }

  async function refreshJob() {
    const id = page.id;
    const generation = page.generation;
    if (id === null) return;
    const current = () => page.generation === generation;
    const base = `/v1/jobs/${encodeURIComponent(id)}`;
    try {
      const job = await getJSON(base);
      if (!current()) return;
      showJob(job);
      const [units, why] = await Promise.allSettled([getJSON(`${base}/units`), getJSON(`${base}/explain`)]);
      if (!current()) return;
      if (units.status === "fulfilled") showUnits(units.value);
      else {
        $("#units tbody").replaceChildren();
        $("#units-note").textContent = `Work units: ${units.reason.message}`;
        $("#units-note").hidden = false;
      }
      if (why.status === "fulfilled") showExplain(why.value);
      if (job.notify) {
        try {
          const notices = await getJSON(`${base}/notifications`);
          if (current()) showNotify(notices);
        } catch (err) {
          /* the rest of the page stands without it */
        }
      }
      if (FINAL.has(job.status)) {
        if (!page.ended) {
          page.ended = true;
          await showOutcome(job, generation);
        }
        return; // nothing changes any more: stop polling
      }
    } catch (err) {
      if (!current()) return;
      if (err.status === 404) {
        $("#job-missing").textContent = err.message;
        $("#job-missing").hidden = false;
        $("#job-body").hidden = true;
        return;
      }
      showError(`Job ${id}: ${err.message}`);
    }
    if (current()) page.timer = setTimeout(refreshJob, JOB_POLL_MS);
  }

  async function loadPlot(url, img, note) {
    try {
      const response = await request(url, { accept: "image/svg+xml" });
      const blob = await response.blob();
      if (img.dataset.objectUrl) URL.revokeObjectURL(img.dataset.objectUrl);
      const objectUrl = URL.createObjectURL(blob);
      img.dataset.objectUrl = objectUrl;
      delete img.dataset.loaded;
      img.onload = () => {
        img.dataset.loaded = "true";
      };
      img.src = objectUrl;
      img.hidden = false;
      if (note) note.hidden = true;
    } catch (err) {
      img.hidden = true;
      if (note) {
        note.textContent = `No plot: ${err.message}`;
        note.hidden = false;
      }
    }
  }

  function fitSummary(result) {
    const rows = Object.entries(result.parameters).map(([name, p]) =>
      el("tr", {},
        el("td", {}, el("code", { text: name })),
        el("td", { class: "num", text: fmtNumber(p.value, 8) }),
        el("td", { class: "num", text: p.fixed ? "fixed" : fmtNumber(p.stderr, 4) })),
    );
    let stats = `χ² ${fmtNumber(result.chisq)} · reduced χ² ${fmtNumber(result.redchi)} · ` +
      `${result.dof} dof · ${result.ndata} points · ${result.nfev} evaluations`;
    if (result.aic !== undefined && result.aic !== null) {
      stats += ` · AIC ${fmtNumber(result.aic, 6)} · BIC ${fmtNumber(result.bic, 6)}`;
    }
    if (result.rsquared !== undefined && result.rsquared !== null) stats += ` · R² ${fmtNumber(result.rsquared, 6)}`;
    return [
      el("p", { text: stats }),
      el("table", { class: "grid params" },
        el("thead", {}, el("tr", {}, el("th", { text: "Parameter" }), el("th", { text: "Value" }),
          el("th", { text: "Std. error" }))),
        el("tbody", {}, ...rows)),
      result.covariance_scaling ? el("p", { class: "muted", text: `Standard errors: ${result.covariance_scaling}.` }) : null,
      correlationTable(result.correlation),
      result.warning ? el("p", { class: "error-text", text: result.warning }) : null,
    ];
  }

  // Pairs of parameters correlated above 0.1 in size, strongest first (as lmfit reports).
  function correlationTable(correlation) {
    if (!correlation) return null;
    const { names, matrix } = correlation;
    const pairs = [];
    for (let i = 0; i < names.length; i++) {
      for (let j = i + 1; j < names.length; j++) {
        if (Math.abs(matrix[i][j]) > 0.1) pairs.push([names[i], names[j], matrix[i][j]]);
      }
    }
    pairs.sort((a, b) => Math.abs(b[2]) - Math.abs(a[2]));
    if (!pairs.length) return el("p", { class: "muted", text: "No correlation above 0.1 in size." });
    return el("table", { class: "grid correlations" },
      el("thead", {}, el("tr", {}, el("th", { text: "Parameters" }), el("th", { text: "Correlation" }))),
      el("tbody", {}, ...pairs.map(([a, b, c]) =>
        el("tr", {}, el("td", { text: `${a}, ${b}` }), el("td", { class: "num", text: c.toFixed(4) })))));
  }

  async function showOutcome(job, generation) {
    const box = $("#job-result");
    const note = $("#job-plot-note");
    if (job.status !== "complete") {
      note.textContent = `The job is ${job.status}: there is no result to plot.`;
      return;
    }
    const base = `/v1/jobs/${encodeURIComponent(job.id)}`;
    try {
      const answer = await getJSON(`${base}/result`);
      if (page.generation !== generation) return;
      const result = answer.result;
      if (job.kind === "fit" && result && result.parameters) {
        box.replaceChildren(...fitSummary(result).filter((node) => node !== null));
      } else {
        const text = JSON.stringify(result);
        box.replaceChildren(el("pre", { text: text.length > 2000 ? `${text.slice(0, 2000)}…` : text }));
      }
    } catch (err) {
      box.replaceChildren(el("p", { class: "muted", text: `Result: ${err.message}` }));
    }
    if (page.generation !== generation) return;
    note.textContent = "Drawing the plot…"; // (the server's first plot takes seconds)
    await loadPlot(`${base}/plot.svg`, $("#job-plot-img"), note);
  }

  // -- the ledger and the workers -----------------------------------------------------

  async function showLedger() {
    loadPlot("/v1/ledger/plot.svg", $("#ledger-plot"), null);
    loadPlot("/v1/ledger/days.svg", $("#ledger-days"), null);
    try {
      const ledger = await getJSON("/v1/ledger");
      const rows = Object.entries(ledger.users).map(([user, e]) =>
        el("tr", { "data-user": user },
          el("td", { text: user }),
          el("td", { class: "num", text: fmtNumber(e.charged, 4) }),
          el("td", { class: "num", text: fmtNumber(e.usage, 4) }),
          el("td", { class: "num", text: fmtNumber(e.reserved, 4) }),
          el("td", { class: "num", text: fmtNumber(e.refunded, 4) }),
          el("td", { class: "num", text: fmtNumber(e.core_seconds, 4) }),
          el("td", { class: "num", text: e.units }),
          el("td", { class: "num", text: e.budget_left === null ? "no budget" : fmtNumber(e.budget_left, 4) })),
      );
      $("#ledger tbody").replaceChildren(...rows);
    } catch (err) {
      showError(`Ledger: ${err.message}`);
    }
  }

  let workersTimer = null;

  // The jobs whose units a worker holds, each a link to its page; "idle" when none.
  function currentJobs(ids) {
    if (!ids.length) return [el("span", { class: "muted", text: "idle" })];
    return ids.flatMap((id, i) => [
      i ? ", " : null,
      el("a", { href: `#/jobs/${encodeURIComponent(id)}` }, el("code", { text: id })),
    ]);
  }

  async function showWorkers() {
    clearTimeout(workersTimer);
    try {
      const answer = await getJSON("/v1/workers");
      const rows = answer.workers.map((w) =>
        el("tr", { "data-worker-id": w.id },
          el("td", { text: w.name }),
          el("td", {}, el("code", { text: w.id })),
          el("td", { class: "num", text: w.cpus }),
          el("td", { text: w.owner || "–" }),
          el("td", { text: w.job ? `${w.policy} (${w.job})` : w.policy }),
          el("td", { class: "current-job" }, ...currentJobs(w.current_jobs || [])),
          el("td", { class: "num", text: w.units_leased }),
          el("td", { class: "num", text: w.units_done }),
          el("td", { class: "num units-per-minute", text: fmtNumber(w.units_per_minute ?? 0, 3) }),
          el("td", { text: fmtTime(w.last_seen) }),
          el("td", {}, w.pilot ? el("code", { text: w.pilot }) : "–")),
      );
      $("#workers tbody").replaceChildren(...rows);
      $("#worker-count").textContent =
        `(${answer.workers.length} worker(s), ${answer.workers.reduce((n, w) => n + w.cpus, 0)} CPUs)`;
      await showPilots();
    } catch (err) {
      showError(`Workers: ${err.message}`);
    }
    if (currentView === "workers") workersTimer = setTimeout(showWorkers, WORKERS_POLL_MS);
  }

  // Batch pilots: the live ones and the last 20 that ended (GET /v1/pilots).
  async function showPilots() {
    const answer = await getJSON("/v1/pilots");
    const pilots = answer.pilots.slice().sort((a, b) => b.submitted_at - a.submitted_at);
    const shown = pilots.filter((p) => p.state === "queued" || p.state === "running")
      .concat(pilots.filter((p) => p.state !== "queued" && p.state !== "running").slice(0, 20));
    const rows = shown.map((p) =>
      el("tr", { "data-pilot-id": p.id, "data-state": p.state },
        el("td", {}, el("code", { text: p.id })),
        el("td", { text: p.scheduler }),
        el("td", { text: p.batch_id || "–" }),
        el("td", { text: p.state }),
        el("td", { text: p.reason || "" }),
        el("td", { text: p.queue || "–" }),
        el("td", { class: "num", text: `${p.request.nodes} × ${p.request.cpus_per_node}` }),
        el("td", { text: p.job ? `job ${p.job}` : (p.pool ? "the pool" : "any job") }),
        el("td", { class: "num", text: p.workers.length }),
        el("td", { text: fmtTime(p.submitted_at) })),
    );
    $("#pilots tbody").replaceChildren(...rows);
    const live = pilots.filter((p) => p.state === "queued" || p.state === "running").length;
    $("#pilot-count").textContent = `(${live} live)`;
  }

  // -- routing ----------------------------------------------------------------------

  let currentView = null;

  function showView(name) {
    currentView = name;
    for (const section of document.querySelectorAll("main > section.view")) {
      section.hidden = section.id !== `view-${name}`;
    }
    for (const link of document.querySelectorAll("nav a")) {
      link.classList.toggle("current", link.dataset.nav === (name === "job" ? "jobs" : name));
    }
  }

  function route() {
    const hash = location.hash || "#/";
    const match = /^#\/jobs\/([^/]+)$/.exec(hash);
    if (match) {
      let id = match[1];
      try {
        id = decodeURIComponent(id);
      } catch (_) {
        /* not percent-encoded after all: take it as it is */
      }
      showView("job");
      openJobPage(id);
      document.title = `park · job ${id}`;
      return;
    }
    closeJobPage();
    clearTimeout(workersTimer);
    if (hash === "#/ledger") {
      showView("ledger");
      document.title = "park · ledger";
      showLedger();
    } else if (hash === "#/workers") {
      showView("workers");
      document.title = "park · workers";
      showWorkers();
    } else {
      showView("jobs");
      document.title = "park · jobs";
      scheduleRender();
    }
  }

  // -- wiring -------------------------------------------------------------------------

  function start() {
    $("#jobs thead").addEventListener("click", (event) => {
      const th = event.target.closest("th[data-sort]");
      if (!th) return;
      const key = th.dataset.sort;
      table.sort = { key, dir: table.sort.key === key ? -table.sort.dir : 1 };
      scheduleRender();
    });
    $("#jobs tbody").addEventListener("click", (event) => {
      const button = event.target.closest("button.cancel");
      if (!button) return;
      cancelJob(button.closest("tr").dataset.jobId, button);
    });
    $("#filter-user").addEventListener("input", filtersChanged);
    $("#filter-tag").addEventListener("input", filtersChanged);
    $("#filter-status").addEventListener("change", filtersChanged);
    $("#jobs-more").addEventListener("click", () => loadFinished(true));
    $("#job-cancel").addEventListener("click", (event) => {
      if (page.id !== null) cancelJob(page.id, event.currentTarget);
    });
    $("#ledger-refresh").addEventListener("click", showLedger);
    $("#error-close").addEventListener("click", hideError);
    $("#token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("#token-input");
      setToken(input.value.trim());
      input.value = "";
      hideError();
      connectStream();
      loadFinished();
      route();
    });
    $("#token-forget").addEventListener("click", () => {
      setToken("");
      connectStream();
    });
    window.addEventListener("hashchange", route);
    showTokenState();
    connectStream();
    loadFinished();
    route();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

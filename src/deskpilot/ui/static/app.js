// deskpilot ui: the main page. Everything the model or a tool wrote is shown with
// textContent (never parsed as HTML); the page's CSP allows only this origin's scripts.
// API: docs/ui.md. Events arrive by SSE (GET /api/runs/{id}/events), never by polling.
import { LiveView } from "/static/liveview.js";

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!response.ok) throw new Error((data && (data.error || data.message)) || response.statusText);
  return data;
}

// ------------------------------------------------------------------ state
const state = {
  runId: null,
  source: null,
  run: null,          // GET /api/runs/{id}
  startedAt: null,    // ms since epoch
  endedAt: null,
  pending: null,      // the approval request shown
  takeover: "ended",  // "requested" | "held" | "ended"
  ended: true,
};
const live = new LiveView($("screen"), (text) => { $("live-status").textContent = text; });

// ------------------------------------------------------------------ helpers
function fileUrl(rel) {
  if (!rel || !state.runId) return null;
  return `/runs/${encodeURIComponent(state.runId)}/` + rel.split("/").map(encodeURIComponent).join("/");
}

function coordinateOf(input) {
  const c = input && input.coordinate;
  if (Array.isArray(c) && c.length === 2 && c.every((v) => typeof v === "number" && isFinite(v))) return c;
  return null;
}

// A screenshot with the click drawn on it. `size` is the pixel space of `coordinate`
// ([w, h]); without it, the image's own size (a recorded screenshot is in model space).
function shot(src, coordinate, cls, size) {
  const wrap = el("span", { class: "shot " + (cls || "") });
  const img = el("img", { alt: "screenshot", loading: "lazy" });
  wrap.append(img);
  const place = (w, h) => {
    if (!coordinate || !w || !h) return;
    const [x, y] = coordinate;
    if (x < 0 || y < 0 || x > w || y > h) return;
    const mark = el("span", { class: "mark", "data-x": String(x), "data-y": String(y) });
    mark.style.left = (100 * x / w) + "%";
    mark.style.top = (100 * y / h) + "%";
    wrap.append(mark);
  };
  if (size) place(size[0], size[1]);
  else img.addEventListener("load", () => place(img.naturalWidth, img.naturalHeight), { once: true });
  img.src = src;
  return wrap;
}

function actionLabel(name, input) {
  const action = input && typeof input.action === "string" ? input.action : null;
  return action ? `${name}: ${action}` : name;
}

function money(v) { return "$" + (Number(v) || 0).toFixed(4); }
function tokens(u) {
  if (!u) return 0;
  return (u.input_tokens || 0) + (u.output_tokens || 0) + (u.cache_read_tokens || 0) + (u.cache_write_tokens || 0);
}

function addEvent(node) {
  const list = $("events");
  const atEnd = list.parentElement.scrollTop + list.parentElement.clientHeight >= list.parentElement.scrollHeight - 40;
  list.append(node);
  if (atEnd) node.scrollIntoView({ block: "end" });
}

// ------------------------------------------------------------------ rendering records
function renderStep(rec) {
  const item = el("li", { class: "ev-step", "data-step": String(rec.index) });
  item.append(el("div", { class: "who", text: `Claude · step ${rec.index}` }));
  const response = rec.response || {};
  if (response.is_error) item.append(el("div", { class: "text error", text: response.error_message || "The model call failed." }));
  for (const block of response.content || []) {
    if (block.type === "text") item.append(el("div", { class: "text model-text", text: String(block.text || "") }));
    else if (block.type === "thinking") item.append(el("details", {}, el("summary", { text: "thinking" }), el("div", { class: "text", text: String(block.thinking || "") })));
  }
  for (const action of rec.actions || []) {
    const box = el("div", { class: "action" + (action.approved === false ? " declined" : ""), "data-call": action.tool_use_id });
    box.append(el("div", { class: "name", text: actionLabel(action.name, action.input) }));
    box.append(el("pre", { class: "input", text: JSON.stringify(action.input || {}) }));
    if (action.text) box.append(el("pre", { class: "result" + (action.is_error ? " error" : ""), text: action.text }));
    if (action.screenshot) box.append(shot(fileUrl(action.screenshot), coordinateOf(action.input), "thumb"));
    item.append(box);
  }
  addEvent(item);
  const cumulative = rec.cumulative || {};
  $("run-steps").textContent = String(rec.index);
  $("run-tokens").textContent = String(tokens(cumulative.usage));
  $("run-cost").textContent = money(cumulative.cost);
}

function renderTakeover(data) {
  let text = "Taking over after the action in flight…";
  if (data.state === "held") text = "You took over: the agent is paused and the view is yours.";
  else if (data.state === "ended") {
    const held = typeof data.duration_s === "number" ? ` after ${data.duration_s.toFixed(1)} s` : "";
    text = `You handed back${held}: the agent continues from a fresh screenshot.`;
    if (data.message) text += ` You wrote: ${data.message}`;
  }
  addEvent(el("li", { class: "ev-takeover" }, el("div", { class: "who", text: "you" }), el("div", { class: "text", text })));
}

function renderEnd(summary) {
  state.ended = true;
  state.endedAt = Date.now();
  if (summary.elapsed_s !== undefined) state.startedAt = state.endedAt - 1000 * summary.elapsed_s;
  showSummary(summary);
  const reason = summary.stop_reason || summary.status || "done";
  const text = summary.error ? `Run ended (${reason}): ${summary.error}` : `Run ended: ${reason}` + (summary.final_text ? ` — ${summary.final_text}` : "");
  addEvent(el("li", { class: "ev-end" }, el("div", { class: "who", text: "end" }), el("div", { class: "text", text })));
  if (state.source) { state.source.close(); state.source = null; }
  hideApproval();
  setTakeover("ended");
  live.disconnect();
  $("live-status").textContent = "The run has ended.";
  loadRuns();
}

// ------------------------------------------------------------------ approvals
function showApproval(req) {
  state.pending = req;
  const input = req.input || {};
  $("approval-action").textContent = actionLabel(req.name || "tool", input) + " " + JSON.stringify(input);
  const picture = shot(`/api/runs/${encodeURIComponent(state.runId)}/screenshot?t=${Date.now()}`, coordinateOf(input), "", req.model_size);
  picture.querySelector("img").id = "approval-image";
  $("approval-shot").replaceChildren(picture);
  $("decline-reason").value = "";
  $("approval").hidden = false;
}

function hideApproval(callId) {
  if (callId && state.pending && state.pending.call_id !== callId) return;
  state.pending = null;
  $("approval").hidden = true;
}

async function answerApproval(approve) {
  const req = state.pending;
  if (!req) return;
  const callId = req.call_id;
  const body = { approve };
  const reason = $("decline-reason").value.trim();
  if (!approve && reason) body.reason = reason;
  hideApproval();
  await api("POST", `/api/runs/${encodeURIComponent(state.runId)}/approvals/${encodeURIComponent(callId)}`, body);
}

// ------------------------------------------------------------------ takeover
function setTakeover(value) {
  if (value === "none") value = "ended";
  state.takeover = value;
  live.setControl(value === "held");
  $("screen").classList.toggle("control", value === "held");
  updateButtons();
}

function updateButtons() {
  const running = !!state.runId && !state.ended;
  $("takeover").disabled = !running || state.takeover !== "ended";
  $("handback").disabled = !running || state.takeover === "ended";
  $("handback-message").disabled = $("handback").disabled;
  $("stop").disabled = !running;
}

// ------------------------------------------------------------------ events (SSE)
function onEvent(kind, data) {
  switch (kind) {
    case "status":
      $("run-status").textContent = data.status;
      if (data.status === "running" && !state.ended) live.connect(state.runId);
      break;
    case "step": renderStep(data.record || {}); break;
    case "approval": showApproval(data); break;
    case "approval_done": hideApproval(data.call_id); break;
    case "takeover":
      renderTakeover(data);
      setTakeover(data.state);
      break;
    case "end": renderEnd(data.summary || {}); break;
    default: break;
  }
}

function openEvents(runId) {
  if (state.source) state.source.close();
  const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
  const handler = (event) => {
    if (state.source !== source) return;
    let data;
    try { data = JSON.parse(event.data); } catch { return; }
    if (data && typeof data === "object" && data.run === runId) onEvent(event.type, data);
  };
  for (const name of ["status", "step", "approval", "approval_done", "takeover", "end"]) source.addEventListener(name, handler);
  state.source = source;
}

// ------------------------------------------------------------------ runs
function showSummary(run) {
  const report = $("run-report");
  if (run.report_url) { report.href = run.report_url; report.hidden = false; } else report.hidden = true;
  if (run.status) $("run-status").textContent = run.status;
  if (run.task !== undefined) $("run-task").textContent = run.task;
  if (run.steps !== undefined) $("run-steps").textContent = String(run.steps);
  if (run.usage) $("run-tokens").textContent = String(tokens(run.usage));
  if (run.cost !== undefined) $("run-cost").textContent = money(run.cost);
}

async function refreshRun() {
  if (!state.runId) return;
  const id = state.runId;
  const run = await api("GET", `/api/runs/${encodeURIComponent(id)}`);
  if (state.runId !== id) return;
  state.run = run;
  showSummary(run);
}

async function selectRun(id) {
  if (state.source) state.source.close();
  Object.assign(state, { runId: id, source: null, run: null, startedAt: Date.now(), endedAt: null, pending: null, ended: false });
  history.replaceState(null, "", "/#run=" + encodeURIComponent(id));
  $("events").replaceChildren();
  $("run-head").hidden = false;
  for (const id2 of ["run-steps", "run-tokens"]) $(id2).textContent = "0";
  $("run-cost").textContent = money(0);
  hideApproval();
  for (const li of $("run-list").children) li.classList.toggle("selected", li.dataset.id === id);
  await refreshRun();
  const run = state.run || {};
  state.ended = ["done", "failed"].includes(run.status);
  state.startedAt = Date.now() - 1000 * (run.elapsed_s || 0);
  state.takeover = "ended";
  setTakeover((run.takeover && run.takeover.state) || "none");
  live.disconnect();
  if (["running", "stopping"].includes(run.status)) live.connect(id);
  else $("live-status").textContent = state.ended ? "The run has ended." : "Waiting for the run's desktop…";
  // The events replay the whole run (steps, approvals, takeovers), then continue live.
  openEvents(id);
}

async function loadRuns() {
  const data = await api("GET", "/api/runs");
  const runs = data.runs || [];
  const list = $("run-list");
  list.replaceChildren();
  for (const run of runs) {
    const li = el("li", { "data-id": run.id },
      el("span", { class: "run-title", text: run.task || run.id }),
      el("span", { class: "run-meta", text: `${run.status || ""} · ${run.steps || 0} steps · ${money(run.cost)}` }));
    if (run.report_url) {
      const a = el("a", { href: run.report_url, target: "_blank", rel: "noopener", text: " report" });
      li.querySelector(".run-meta").append(a);
    }
    li.classList.toggle("selected", run.id === state.runId);
    li.addEventListener("click", (event) => { if (event.target.tagName !== "A") selectRun(run.id); });
    list.append(li);
  }
  return runs;
}

function tick() {
  if (!state.runId || !state.startedAt) return;
  const end = state.ended ? (state.endedAt || Date.now()) : Date.now();
  $("run-elapsed").textContent = Math.max(0, Math.round((end - state.startedAt) / 1000)) + " s";
}

// ------------------------------------------------------------------ wiring
$("task-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const task = $("task").value.trim();
  if (!task) return;
  $("run-button").disabled = true;
  try {
    const { id } = await api("POST", "/api/runs", { task, approve: $("approve").checked });
    $("task").value = "";
    await loadRuns();
    await selectRun(id);
  } catch (err) {
    alert("The run did not start: " + err.message);
  } finally {
    $("run-button").disabled = false;
  }
});
$("approve-button").addEventListener("click", () => answerApproval(true));
$("decline-button").addEventListener("click", () => answerApproval(false));
$("takeover").addEventListener("click", async () => {
  $("takeover").disabled = true;
  try {
    const res = await api("POST", `/api/runs/${encodeURIComponent(state.runId)}/takeover`);
    setTakeover((res && res.state) || "held");
  } catch (err) { updateButtons(); $("live-status").textContent = "Take over failed: " + err.message; }
});
$("handback").addEventListener("click", async () => {
  const message = $("handback-message").value;
  $("handback").disabled = true;
  try {
    await api("POST", `/api/runs/${encodeURIComponent(state.runId)}/handback`, message ? { message } : {});
    $("handback-message").value = "";
    setTakeover("ended");
  } catch (err) { updateButtons(); $("live-status").textContent = "Hand back failed: " + err.message; }
});
$("stop").addEventListener("click", async () => {
  $("stop").disabled = true;
  try { await api("POST", `/api/runs/${encodeURIComponent(state.runId)}/stop`); } catch (err) { updateButtons(); }
});

// The token came in the URL (?token=...); the server has set its cookie, so drop it from the
// address bar and history.
if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", "/" + location.hash);
setInterval(tick, 500);
loadRuns().then((runs) => {
  const wanted = decodeURIComponent((location.hash.match(/run=([^&]+)/) || [])[1] || "");
  const pick = runs.find((r) => r.id === wanted) || [...runs].reverse().find((r) => r.status === "running");
  if (pick) selectRun(pick.id);
});

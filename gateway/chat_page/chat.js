// threadhost chat: the caller's threads, a conversation followed as it happens (the
// thread's own stream: every run of it, whichever tab or service starts it), what a
// waiting run needs, cancel, forks from a message, and a stream that picks up where it
// broke (Last-Event-ID). Plain JavaScript against the public API (/v1); no build step,
// nothing from a CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["completed", "failed", "cancelled", "incomplete"]);
const state = {
  token: sessionStorage.getItem("threadhost-token") || "",
  thread: null, run: null, waiting: [],
  // The thread's stream: the last event shown (`<run>.<seq>`) and each run's last seq.
  lastEventId: null, seen: {},
  // The stream being read: a dropped connection ends it; so does dropConnection().
  reading: null,
  // Which opening of a thread the stream belongs to (another thread opened ends it).
  watch: 0,
};

// What a network failure does to a stream, on purpose (the browser test uses it).
window.dropConnection = () => { if (state.reading) state.reading.abort(); };
// How many times the thread's stream was opened (a reconnection opens it again).
window.threadStreams = 0;

function headers(extra = {}) {
  const h = { "content-type": "application/json", ...extra };
  if (state.token) h.authorization = `Bearer ${state.token}`;
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(await problem(response));
  return response.status === 204 ? null : response.json();
}

async function problem(response) {
  try {
    const p = await response.json();
    return p.detail || p.title || (p.error && p.error.message) || response.statusText;
  } catch { return `${response.status} ${response.statusText}`; }
}

function showError(error) { $("error").textContent = error ? String(error.message || error) : ""; }
function setStatus(text) { $("status").textContent = text; }

// --- the conversation: one element per key, so nothing is shown twice ------------------

function entry(key, kind, who) {
  let li = document.querySelector(`#log li[data-key="${CSS.escape(key)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.key = key;
    li.className = kind;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    const text = document.createElement("span");
    text.className = "text";
    li.append(name, text);
    $("log").append(li);
  }
  return li.querySelector("span.text");
}

function drop(key) {
  const li = document.querySelector(`#log li[data-key="${CSS.escape(key)}"]`);
  if (li) li.remove();
}

function showMessage(index, m) {
  if (m.kind === "user_text") {
    const span = entry(`m:${index}`, "user", "You");
    span.textContent = m.text;
    forkButton(span.parentElement, index, m.text);
  } else if (m.kind === "assistant_text") {
    entry(`m:${index}`, "assistant", m.agent || "Assistant").textContent = m.text;
  } else if (m.kind === "tool_call") {
    entry(`m:${index}`, "tool", "Tool call").textContent = `${m.name}(${m.arguments})`;
  } else if (m.kind === "tool_result") {
    const li = entry(`m:${index}`, "tool", m.is_error ? "Tool error" : "Tool result");
    li.textContent = `${m.name}: ${m.content}`;
  }
}

// "Try that again from here": a new thread with the history before this message, and
// the message in the composer to send again, changed or not.
function forkButton(li, index, text) {
  if (li.querySelector("button.fork")) return;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "fork";
  button.textContent = "Fork here";
  button.title = "A new thread with the conversation before this message";
  button.addEventListener("click", () => {
    api("POST", `/v1/threads/${state.thread}/fork`, { message_index: index })
      .then((fork) => openThread(fork.id))
      .then(() => { $("message").value = text; $("message").focus(); })
      .catch(showError);
  });
  li.append(button);
}

// The API's history views carry role/content; the run's events carry the stored kinds.
function fromView(v) {
  if (v.kind === "user_text") return { kind: v.kind, text: v.content };
  if (v.kind === "assistant_text") return { kind: v.kind, text: v.content, agent: v.agent };
  if (v.kind === "tool_call") return { kind: v.kind, name: v.tool_name, arguments: v.content };
  return { kind: v.kind, name: v.tool_name, content: v.content, is_error: v.is_error };
}

async function loadHistory() {
  $("log").replaceChildren();
  let offset = 0;
  for (;;) {
    const page = await api("GET", `/v1/threads/${state.thread}/messages?offset=${offset}&limit=100`);
    page.messages.forEach((v) => showMessage(v.index, fromView(v)));
    if (page.next_offset === null) break;
    offset = page.next_offset;
  }
}

// --- threads ----------------------------------------------------------------------------

async function loadThreads() {
  const list = await api("GET", "/v1/threads?limit=50");
  $("threads").replaceChildren(...list.threads.map((t) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `${t.agent} · ${new Date(t.created_at).toLocaleString()}`;
    button.setAttribute("aria-current", String(t.id === state.thread));
    button.addEventListener("click", () => openThread(t.id).catch(showError));
    li.append(button);
    return li;
  }));
}

async function loadAgents() {
  const models = await api("GET", "/v1/models");
  $("agent").replaceChildren(...models.data.map((m) => new Option(m.id, m.id)));
}

async function openThread(id) {
  showError(null);
  const watch = ++state.watch;
  if (state.reading) state.reading.abort();
  state.thread = id;
  state.seen = {};
  location.hash = id;
  const thread = await api("GET", `/v1/threads/${id}`);
  $("title").textContent = thread.forked_from
    ? `Thread with ${thread.agent} (a fork)` : `Thread with ${thread.agent}`;
  // Where the stream starts: now (the run going on, from its start), read before the
  // history so nothing falls between the two; what both have is shown once.
  state.lastEventId = (await api("GET", `/v1/threads/${id}/events`)).cursor;
  await loadHistory();
  showWaiting([]);
  setStatus("");
  if (thread.active_run) {
    await afterRun(await api("GET", `/v1/threads/${id}/runs/${thread.active_run}`));
  }
  await loadThreads();
  watchThread(id, watch);
}

// --- the thread, as it happens --------------------------------------------------------

async function watchThread(id, watch) {
  // Every run of the thread, from the last event shown; again from there if it breaks,
  // until another thread is opened or this one is deleted.
  while (state.watch === watch) {
    try {
      const extra = state.lastEventId !== null ? { "last-event-id": state.lastEventId } : {};
      if (await stream(`/v1/threads/${id}/events`, extra, watch) === "gone") return;
    } catch (error) {
      if (state.watch !== watch) return;
      setStatus("Connection lost; reconnecting…");
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function stream(path, extra, watch) {
  state.reading = new AbortController();
  window.threadStreams += 1;
  const response = await fetch(path, {
    headers: headers({ accept: "text/event-stream", ...extra }),
    signal: state.reading.signal,
  });
  if (!response.ok) throw new Error(await problem(response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done || state.watch !== watch) return "ended";
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      if (await onFrame(buffer.slice(0, end)) === "gone") return "gone";
      buffer = buffer.slice(end + 2);
    }
  }
}

async function onFrame(frame) {
  let event = "message", data = "", id = null;
  for (const line of frame.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
    else if (line.startsWith("id: ")) id = line.slice(4);
  }
  if (!data) return null;
  if (event === "thread.gone") {
    setStatus("This thread was deleted.");
    return "gone";
  }
  if (id !== null) {
    const dot = id.lastIndexOf(".");
    const run = id.slice(0, dot), seq = Number(id.slice(dot + 1));
    if (seq <= (state.seen[run] ?? -1)) return null; // seen before the stream broke
    state.seen[run] = seq;
    state.lastEventId = id;
  }
  await onEvent(event, JSON.parse(data));
  return null;
}

async function onEvent(event, e) {
  if (e.run_id) state.run = e.run_id;
  const d = e.data || {};
  if (event === "token.delta") {
    const span = entry(`d:${e.run_id}:${e.step}`, "assistant", "Assistant (typing)");
    if (span.dataset.attempt && Number(span.dataset.attempt) !== e.attempt) span.textContent = "";
    span.dataset.attempt = e.attempt;
    span.textContent += e.text;
  } else if (event === "token.discard") {
    drop(`d:${e.run_id}:${e.step}`);
  } else if (d.messages) { // step.completed, actions.submitted, approval.expired, ...
    if (d.step) drop(`d:${e.run_id}:${d.step}`);
    d.messages.forEach((m, n) => showMessage(d.first_index + n, m));
  }
  if (event !== "run.status") return;
  setStatus(`Run ${d.status}${d.reason ? `: ${d.reason}` : ""}`);
  $("cancel").disabled = TERMINAL.has(d.status) || d.status === "requires_action";
  if (d.status === "running" && d.first_message !== undefined) {
    // The run's message (sent from here, another tab or the agent's follow-up).
    const page = await api("GET",
      `/v1/threads/${state.thread}/messages?offset=${d.first_message}&limit=1`);
    document.querySelectorAll("#log li[data-key^='pending:']").forEach((li) => li.remove());
    page.messages.forEach((v) => showMessage(v.index, fromView(v)));
  }
  if (d.status === "requires_action" || TERMINAL.has(d.status)) {
    await afterRun(await api("GET", `/v1/threads/${state.thread}/runs/${e.run_id}`));
  }
}

async function send(path, body) {
  // The run starts at once (202); the thread's stream shows it as it goes.
  $("cancel").disabled = false;
  const answer = await api("POST", path, { ...body, mode: "background" });
  state.run = answer.run.run_id;
}

async function afterRun(run) {
  state.run = run.run_id;
  const tokens = (run.usage.input_tokens || 0) + (run.usage.output_tokens || 0);
  setStatus(`Run ${run.status}${run.reason ? `: ${run.reason}` : ""} · ${run.steps} steps · `
            + `${tokens} tokens · $${run.cost_usd.toFixed(6)}`);
  $("cancel").disabled = TERMINAL.has(run.status) || run.status === "requires_action";
  showWaiting(run.status === "requires_action" ? run.required_action : []);
  if (TERMINAL.has(run.status) || run.status === "requires_action") await loadHistory();
}

// --- what a waiting run needs ------------------------------------------------------------

function showWaiting(actions) {
  state.waiting = actions;
  const box = $("actions");
  box.replaceChildren(...actions.map((a, n) => {
    const set = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = `${a.tool} ${a.arguments}`;
    set.append(legend);
    const field = (tag, label, name) => {
      const id = `action-${n}-${name}`;
      const l = document.createElement("label");
      l.htmlFor = id;
      l.textContent = label;
      const input = document.createElement(tag);
      input.id = id;
      input.dataset.action = n;
      input.dataset.name = name;
      set.append(l, input);
      return input;
    };
    if (a.type === "approval") {
      for (const [value, text] of [["yes", "Approve"], ["no", "Deny"]]) {
        const id = `action-${n}-${value}`;
        const radio = document.createElement("input");
        radio.type = "radio";
        radio.name = `decision-${n}`;
        radio.id = id;
        radio.value = value;
        radio.dataset.action = n;
        const l = document.createElement("label");
        l.htmlFor = id;
        l.textContent = text;
        const choice = document.createElement("span");
        choice.className = "choice";
        choice.append(radio, l);
        set.append(choice);
      }
      field("input", "Reason (for a denial)", "reason");
    } else if (a.type === "input") {
      field("textarea", a.question || "Answer", "answer");
    } else if (a.type === "tool_result") {
      field("textarea", `Result of ${a.tool}`, "output");
    } else {
      const p = document.createElement("p");
      p.textContent = `Waiting for the agent ${a.agent}…`;
      set.append(p);
    }
    return set;
  }));
  $("waiting").hidden = actions.length === 0;
  $("submit-actions").hidden = !actions.some((a) => a.type !== "agent_run");
}

function answers() {
  // One answer for each action the caller gives (another agent's answer comes by itself).
  return state.waiting.flatMap((a, n) => {
    if (a.type === "agent_run") return [];
    const value = (name) => {
      const el = document.querySelector(`[data-action="${n}"][data-name="${name}"]`);
      return el ? el.value : "";
    };
    if (a.type === "approval") {
      const chosen = document.querySelector(`input[name="decision-${n}"]:checked`);
      if (!chosen) throw new Error(`Approve or deny ${a.tool} first`);
      const reason = value("reason").trim();
      return [{ type: "approval", call_id: a.call_id, approved: chosen.value === "yes",
                ...(chosen.value === "no" && reason ? { reason } : {}) }];
    }
    if (a.type === "input") return [{ type: "input", call_id: a.call_id, answer: value("answer") }];
    return [{ type: "tool_result", call_id: a.call_id, output: value("output") }];
  });
}

// --- wiring -------------------------------------------------------------------------------

async function refresh() {
  try {
    await loadAgents();
    await loadThreads();
    const id = location.hash.slice(1);
    if (id) await openThread(id);
  } catch (error) { showError(error); }
}

function wire() {
  $("token").value = state.token;
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("threadhost-token", state.token);
    showError(null);
    refresh();
  });
  $("new-thread").addEventListener("submit", (event) => {
    event.preventDefault();
    api("POST", "/v1/threads", { agent: $("agent").value })
      .then((t) => openThread(t.id)).catch(showError);
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("message").value;
    if (!text.trim() || !state.thread) return;
    showError(null);
    $("message").value = "";
    entry(`pending:${Date.now()}`, "user", "You").textContent = text;
    send(`/v1/threads/${state.thread}/messages`, { content: text }).catch(showError);
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("cancel").addEventListener("click", () => {
    if (state.run) api("POST", `/v1/threads/${state.thread}/runs/${state.run}/cancel`)
      .catch(showError);
  });
  $("submit-actions").addEventListener("click", () => {
    try {
      const actions = answers();
      showError(null);
      showWaiting([]);
      send(`/v1/threads/${state.thread}/runs/${state.run}/resume`, { actions })
        .catch(showError);
    } catch (error) { showError(error); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wire();
  refresh();
});

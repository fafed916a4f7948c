// The try page (kdutils.serving.page). Plain browser JavaScript, no library, no build step.
// It uses the API as any client does: GET /healthz until ready, GET /page/info for the examples
// and the served models, then POST /predict/{model} for each model, one after the other (calls
// side by side would share the cores, and each card's time would no longer be its model's own).
"use strict";

const POLL_MS = 500;
const $ = (id) => document.getElementById(id);
const form = $("ask"), textBox = $("text"), sendButton = $("send"), statusLine = $("status"), cardsBox = $("cards");
let models = [];      // /page/info's models, in the page's order
let ready = false;
let generation = 0;   // a newer sentence makes the answers still arriving for an older one stale

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const fmtMs = (ms) => (ms < 1 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms).toString()) + " ms";
const fmtPct = (p) => (100 * p).toFixed(1) + "%";

// The server's own words for a failed call: FastAPI's {"detail": "..."} or the list of
// validation errors {"detail": [{"msg": ...}]}; the status line when the body is not JSON (a proxy's page).
async function errorMessage(response) {
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  const detail = body && body.detail;
  let text = "";
  if (typeof detail === "string") text = detail;
  else if (Array.isArray(detail)) text = detail.map((d) => (d && d.msg) || JSON.stringify(d)).join("; ");
  else if (detail) text = JSON.stringify(detail);
  const head = `HTTP ${response.status}${response.statusText ? " " + response.statusText : ""}`;
  return text ? `${head}: ${text}` : head;
}

async function getInfo() {
  const response = await fetch("/page/info", { cache: "no-store" });
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.json();
}

function showExamples(info) {
  const box = $("examples");
  box.querySelectorAll("button").forEach((b) => b.remove());
  if (!info.examples.length) {
    $("examples-title").textContent = info.examples_note || "No example sentences in this run.";
    return;
  }
  for (const ex of info.examples) {
    const button = el("button", { type: "button", class: "example", title: `test split label: ${ex.label}` }, ex.text);
    button.addEventListener("click", () => {
      textBox.value = ex.text;
      textBox.focus();
      if (ready) form.requestSubmit();
    });
    box.appendChild(button);
  }
}

function cardFor(name) {
  return cardsBox.querySelector(`.card[data-model="${CSS.escape(name)}"]`);
}

function showCards() {
  cardsBox.replaceChildren();
  models.forEach((m, i) => {
    const card = el("article", { class: "card", "data-model": m.name, "aria-labelledby": `card-${i}` });
    card.style.setProperty("--accent", m.color);
    card.appendChild(el("h2", { id: `card-${i}` }, m.label));
    const runtime = el("p", { class: "runtime" }, `${m.runtime} · `);
    runtime.appendChild(el("span", { class: "served" }, m.name));
    card.appendChild(runtime);
    card.appendChild(el("p", { class: "label waiting" }, "waiting for a sentence"));
    card.appendChild(el("ul", { class: "probs", "aria-label": "probability of each class" }));
    card.appendChild(el("p", { class: "timing" }));
    cardsBox.appendChild(card);
  });
}

function resetCard(card, note) {
  const label = card.querySelector(".label");
  label.className = "label waiting";
  label.textContent = note;
  label.removeAttribute("data-label");
  card.querySelector(".probs").replaceChildren();
  card.querySelector(".timing").textContent = "";
  card.querySelector(".error")?.remove();
}

function showPrediction(card, model, body, roundTripMs) {
  const pred = body.predictions[0];
  const label = card.querySelector(".label");
  label.className = "label";
  label.textContent = pred.label;
  label.setAttribute("data-label", pred.label);
  const list = card.querySelector(".probs");
  for (const name of model.label_names) {
    const p = pred.probabilities[name];
    const row = el("li", { class: name === pred.label ? "prob top" : "prob", "data-class": name,
                           "data-probability": String(p) });
    row.appendChild(el("span", { class: "name" }, name));
    const track = el("span", { class: "track", "aria-hidden": "true" });
    const fill = el("span", { class: "fill" });
    fill.style.width = `${(100 * p).toFixed(2)}%`;
    fill.style.background = model.color;
    track.appendChild(fill);
    row.appendChild(track);
    row.appendChild(el("span", { class: "pct" }, fmtPct(p)));
    list.appendChild(row);
  }
  card.querySelector(".timing").textContent =
    `model ${fmtMs(body.model_ms)} · in the server ${fmtMs(body.latency_ms)} · round trip ${fmtMs(roundTripMs)}`;
}

function showError(card, message, roundTripMs) {
  resetCard(card, "no prediction");
  card.insertBefore(el("p", { class: "error" }, message), card.querySelector(".timing"));
  if (roundTripMs !== null) card.querySelector(".timing").textContent = `round trip ${fmtMs(roundTripMs)}`;
}

async function predictAll(text) {
  const gen = ++generation;
  cardsBox.setAttribute("aria-busy", "true");
  models.forEach((m) => resetCard(cardFor(m.name), "asking…"));
  setStatus(`Asking ${models.length} models…`);
  let answered = 0;
  for (const model of models) {
    const card = cardFor(model.name);
    const t0 = performance.now();
    try {
      const response = await fetch(`/predict/${encodeURIComponent(model.name)}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ texts: [text] }),
      });
      const roundTrip = performance.now() - t0;
      if (gen !== generation) return;
      if (response.ok) {
        showPrediction(card, model, await response.json(), roundTrip);
        answered += 1;
      } else {
        showError(card, await errorMessage(response), roundTrip);
      }
    } catch (err) {
      if (gen !== generation) return;
      showError(card, `no answer from the server (${err.message})`, null);
    }
  }
  cardsBox.setAttribute("aria-busy", "false");
  setStatus(answered === models.length
    ? `All ${models.length} models answered.`
    : `${answered} of ${models.length} models answered; ${answered ? "the other cards say" : "each card says"} why.`,
    answered === 0);
}

async function waitUntilReady() {
  for (;;) {
    try {
      const response = await fetch("/healthz", { cache: "no-store" });
      const health = await response.json();
      if (response.ok && health.status === "ok") return true;
      if (health.status === "error") {
        setStatus(`The models failed to load: ${health.detail || "see the server's log"}`, true);
        return false;
      }
      const n = (health.models || []).length;
      setStatus(`Loading the models (${n} loaded so far)… this page fills in when they are ready.`);
    } catch (err) {
      setStatus("The server does not answer yet; trying again…");
    }
    await sleep(POLL_MS);
  }
}

async function start() {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (ready) predictAll(textBox.value);
  });
  textBox.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  try {
    showExamples(await getInfo());  // the examples come from the run's files: shown while models load
  } catch (err) {
    $("examples-title").textContent = `No examples: ${err.message}`;
  }
  if (!(await waitUntilReady())) return;
  try {
    models = (await getInfo()).models;
  } catch (err) {
    setStatus(`Could not list the models: ${err.message}`, true);
    return;
  }
  showCards();
  cardsBox.setAttribute("aria-busy", "false");
  ready = true;
  sendButton.disabled = false;
  setStatus(`Ready: ${models.length} models. Type a sentence or pick an example.`);
}

start();

// tfserve model pages: /ui lists the models, /ui/{model} shows a model card and a playground.
// Plain JavaScript, no build step. Everything the page shows comes from the server's JSON
// (GET /models, GET /models/{model}/card); predictions go through the public routes.
"use strict";

const KEY_STORAGE = "tfserve-api-key"; // sessionStorage: this tab only, gone when it closes
const main = document.getElementById("main");

// --- small helpers ------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { "X-API-Key": key } : {};
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options, headers: { ...authHeaders(), ...(options.headers || {}) },
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    if (response.status === 401) message = "This server needs an API key: enter it above.";
    throw new ApiError(response.status, message);
  }
  return response;
}

async function postJSON(path, body) {
  const response = await api(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  return response.json();
}

function percent(value) { return `${(100 * value).toFixed(1)}%`; }

// Bars for [{name, value}] in 0..1; the highest one is marked.
function bars(entries, label) {
  const best = Math.max(...entries.map((e) => e.value));
  return el("ul", { class: "bars", "aria-label": label },
    entries.map((e) => el("li", { class: e.value === best ? "top" : null },
      el("span", { class: "name", title: e.name, text: e.name }),
      el("span", { class: "track", "aria-hidden": "true" },
        el("span", { class: "fill", style: `width: ${Math.max(0, Math.min(1, e.value)) * 100}%` })),
      el("span", { class: "value", text: percent(e.value) }))));
}

// What a trainer beside the server says of a model it is still building (GET /models).
function trainerText(trainer) {
  if (trainer.state === "failed") return `training failed: ${trainer.error || "see the trainer's log"}`;
  if (trainer.state === "queued") return "queued for training";
  return trainer.epochs ? `training: epoch ${trainer.epoch || 0} of ${trainer.epochs}` : "training";
}

const REFRESH_WHILE_TRAINING_MS = 3000;
let refreshTimer = null;

function refreshWhileTraining(training) {
  clearTimeout(refreshTimer);
  if (training) refreshTimer = setTimeout(route, REFRESH_WHILE_TRAINING_MS);
}

function showError(where, error) {
  where.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
}

function warningBox(text) {
  return el("div", { class: "warning", role: "alert", "data-testid": "warning" },
    `Warning: ${text}. Its answers are not to be trusted.`);
}

// --- the API key ----------------------------------------------------------------------------

const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("api-key");
keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (keyInput.value) sessionStorage.setItem(KEY_STORAGE, keyInput.value);
  else sessionStorage.removeItem(KEY_STORAGE);
  route();
});

// --- /ui: the list ------------------------------------------------------------------------------

async function listModels() {
  document.title = "tfserve models";
  const { models } = await (await api("/models")).json();
  const names = Object.keys(models);
  main.replaceChildren(
    el("h1", { text: "Models" }),
    el("p", { class: "muted" },
      "Every model this server serves. Open one for its model card and a playground; the ",
      el("a", { href: "/docs", text: "API documentation" }), " has every route."),
    names.length === 0 ? el("p", { text: "No model is served yet." }) :
      el("ul", { class: "models" }, names.map((name) => {
        const model = models[name];
        const newest = model.versions[0] || {};
        const card = newest.card || {};
        return el("li", {},
          el("a", { href: `/ui/${encodeURIComponent(name)}`, text: name }),
          el("div", { class: "muted" },
            model.default_version ? `version ${model.default_version}` :
              (model.trainer ? "not served yet" : "not loaded"),
            newest.signatures ? ` · ${Object.keys(newest.signatures).length} signatures` : ""),
          card.task ? el("p", { text: card.task }) : null,
          model.trainer ? el("p", { class: "training", "data-testid": "training",
            text: trainerText(model.trainer) }) : null,
          newest.warning ? el("p", { class: "error", text: `Warning: ${newest.warning}` }) : null,
          model.failed_versions.length ?
            el("p", { class: "error", text: `${model.failed_versions.length} version(s) failed to load` }) : null);
      })));
  refreshWhileTraining(names.some((name) => models[name].trainer));
}

// --- /ui/{model}: the model card ------------------------------------------------------------------

const TRAINING_FIELDS = [
  ["profile", "profile"], ["epochs", "epochs run"], ["epochs_planned", "epochs planned"],
  ["best_epoch", "best epoch"], ["batch_size", "batch size"], ["wall_time_s", "training time (s)"],
  ["val_accuracy", "validation accuracy"], ["test_accuracy", "test accuracy"],
  ["val_loss", "validation loss"], ["weights", "weights"], ["parameters", "parameters"],
];
const DATA_FIELDS = [["train_size", "training examples"], ["val_size", "validation examples"],
  ["test_size", "test examples"]];

function rows(pairs) {
  return el("table", {}, el("tbody", {},
    pairs.map(([name, value]) => el("tr", {}, el("th", { scope: "row", text: name }),
      el("td", {}, value)))));
}

function tensorList(tensors) {
  return el("ul", {}, tensors.map((t) => el("li", {},
    el("code", { text: t.name }), ` ${t.dtype} [${t.shape.join(", ")}]`,
    t.note ? el("div", { class: "muted", text: t.note }) : null)));
}

async function historyImage(path, model) {
  const response = await api(path);
  const url = URL.createObjectURL(await response.blob());
  return el("img", { class: "history", src: url, alt: `${model}: loss and accuracy per epoch`,
    width: 640, height: 480 });
}

function modelCard(card) {
  const training = card.training || {};
  const data = { ...card.data };
  for (const [key, label] of DATA_FIELDS) if (training[key] !== undefined) data[label] = training[key];
  const labels = card.labels || [];
  const section = el("section", { class: "panel", "aria-labelledby": "card-title" },
    el("h2", { id: "card-title", text: "Model card" }),
    rows([
      ["task", card.task || "not described by the export"],
      ["labels", labels.length ? el("details", {},
        el("summary", { text: `${labels.length} labels: ${labels.slice(0, 5).join(", ")}${labels.length > 5 ? ", ..." : ""}` }),
        el("p", { text: labels.join(", ") })) : "none"],
      ["versions", card.versions.map((v) => `${v.version} (${v.state})`).join(", ")],
    ]),
    el("h3", { text: "Data" }),
    rows(Object.entries(data).map(([k, v]) => [k, String(v)])),
    el("h3", { text: "Training" }),
    rows(TRAINING_FIELDS.filter(([key]) => training[key] !== undefined)
      .map(([key, label]) => [label, String(training[key])])
      .concat(training.trained === false ? [["trained", "no: exported as it is"]] : [])),
  );
  if (card.training_history) {
    const holder = el("div", {}, el("p", { class: "muted", text: "Loading the training plot..." }));
    section.append(el("h3", { text: "Training history" }), holder);
    historyImage(card.training_history, card.model)
      .then((image) => holder.replaceChildren(image))
      .catch((error) => showError(holder, error));
  }
  section.append(el("h3", { text: "Signatures" }),
    ...Object.entries(card.signatures).map(([name, signature]) => el("div", {},
      el("h4", {}, el("code", { text: name }), " ",
        el("span", { class: "muted", text: `POST /models/${card.model}/${name}/predict` })),
      el("div", {}, el("strong", { text: "inputs" }), tensorList(signature.inputs)),
      el("div", {}, el("strong", { text: "outputs" }), tensorList(signature.outputs)))));
  return section;
}

// A model a trainer is still building has no card yet: say so and look again shortly.
async function showTraining(model, error) {
  if (![404, 503].includes(error.status)) throw error;
  const { models } = await (await api("/models")).json();
  const trainer = models[model] && models[model].trainer;
  if (!trainer) throw error;
  main.replaceChildren(
    el("p", {}, el("a", { href: "/ui", text: "All models" })),
    el("h1", { text: model }),
    el("p", { class: "training", "data-testid": "training", text: trainerText(trainer) }),
    el("p", { class: "muted", text: "This page shows the model as soon as the server has loaded it." }));
  refreshWhileTraining(trainer.state !== "failed");
}

async function showModel(model) {
  document.title = `${model} · tfserve`;
  let card;
  try {
    card = await (await api(`/models/${encodeURIComponent(model)}/card`)).json();
  } catch (error) {
    return showTraining(model, error);
  }
  refreshWhileTraining(false);
  const playground = el("section", { class: "panel", "aria-labelledby": "play-title" },
    el("h2", { id: "play-title", text: "Try it" }));
  for (const spec of card.playgrounds) playground.append(PLAYGROUNDS[spec.kind](card, spec));
  main.replaceChildren(...[
    el("p", {}, el("a", { href: "/ui", text: "All models" })),
    el("h1", {}, `${model} `, el("span", { class: "muted", text: `version ${card.version}` })),
    card.warning ? warningBox(`${model} version ${card.version} has ${card.warning}`) : null,
    card.task ? el("p", { text: card.task }) : null,
    playground,
    monitoringPanel(model),
    modelCard(card)].filter(Boolean));
}

// --- monitoring -----------------------------------------------------------------------------

const MONITORING_REFRESH_MS = 5000;
let monitoringTimer = null;

// What the model saw and answered lately against its training data (GET
// /models/{model}/monitoring), redrawn every few seconds while the page is open.
function monitoringPanel(model) {
  const body = el("div", { "data-testid": "monitoring" }, el("p", { class: "muted", text: "Loading..." }));
  const panel = el("section", { class: "panel", "aria-labelledby": "monitoring-title" },
    el("h2", { id: "monitoring-title", text: "Monitoring" }), body);
  const refresh = async () => {
    try {
      const report = await (await api(`/models/${encodeURIComponent(model)}/monitoring`)).json();
      body.replaceChildren(...monitoringReport(report));
    } catch (error) {
      body.replaceChildren(el("p", { class: "muted", text: `Monitoring unavailable: ${error.message}` }));
    }
  };
  clearInterval(monitoringTimer);
  refresh();
  monitoringTimer = setInterval(refresh, MONITORING_REFRESH_MS);
  return panel;
}

function stateBadge(state) {
  return el("span", { class: `state state-${state.replaceAll(" ", "-")}`, text: state });
}

function monitoringReport(report) {
  const parts = [el("p", { class: "muted", text:
    `Window: the latest ${report.window.rows.toLocaleString()} rows` +
    (report.window.seconds ? ` of the last ${report.window.seconds / 60} minutes` : "") +
    `; PSI from ${report.thresholds.watch} is "watch", from ${report.thresholds.drift} "drift". ` +
    `Refreshed every ${MONITORING_REFRESH_MS / 1000} s.` })];
  for (const version of report.versions) {
    for (const [name, signature] of Object.entries(version.signatures)) {
      if (!signature.rows_seen) continue;
      parts.push(signaturePanel(version.version, name, signature));
    }
  }
  if (parts.length === 1) parts.push(el("p", { class: "muted", text: "No predictions yet." }));
  return parts;
}

function signaturePanel(version, name, signature) {
  const reference = signature.baseline.source === "training profile" ? "training" : "baseline";
  const charts = signature.summaries
    .filter((s) => s.kind === "class" || s.kind === "confidence")
    .map((s) => el("div", {}, el("h4", { text: s.kind === "class" ? `Predicted class (${s.tensor})` : `Confidence (${s.tensor})` }),
      comparison(s, reference)));
  return el("div", { class: "signature", "data-signature": name, "data-version": version },
    el("h3", {}, `version ${version} · ${name} `, stateBadge(signature.state)),
    el("p", { class: "muted", text:
      `${signature.rows_in_window.toLocaleString()} rows in the window, ${signature.rows_seen.toLocaleString()} seen; ` +
      `compared with the ${reference === "training" ? `training profile (${signature.baseline.data})` : "first window"}` +
      (signature.reason ? `. ${signature.reason}` : "") +
      `. Bars: grey ${reference}, blue live; figures: live / ${reference}.` }),
    el("div", { class: "charts" }, charts),
    el("table", { class: "scores" },
      el("tr", {}, el("th", { text: "summary" }), el("th", { text: "PSI" }), el("th", { text: "state" })),
      signature.summaries.map((s) => el("tr", {},
        el("td", { text: s.name }),
        el("td", { text: s.psi === null ? "-" : s.psi.toFixed(3) }),
        el("td", {}, stateBadge(s.state))))));
}

const MOST_BINS = 20; // a 1,000-class model shows its 20 largest classes

// Live shares beside the reference's, bin by bin.
function comparison(summary, reference) {
  const scale = Math.max(...summary.live, ...(summary[reference] || [0]), 1e-9);
  let shown = summary.bins.map((_, i) => i);
  if (shown.length > MOST_BINS) {
    const share = (i) => Math.max(summary.live[i], summary[reference] ? summary[reference][i] : 0);
    shown = shown.sort((a, b) => share(b) - share(a)).slice(0, MOST_BINS);
  }
  const bar = (value, kind) => el("span", { class: "track", "aria-hidden": "true" },
    el("span", { class: `fill ${kind}`, style: `width: ${(value / scale) * 100}%` }));
  return el("ul", { class: "compare", "aria-label": `${summary.name}: live and ${reference}` },
    shown.map((i) => [summary.bins[i], i]).map(([bin, i]) => el("li", {},
      el("span", { class: "name", title: bin, text: bin }),
      el("span", { class: "pair" }, bar(summary[reference] ? summary[reference][i] : 0, "reference"), bar(summary.live[i], "live")),
      el("span", { class: "value", text: `${percent(summary.live[i])} / ${summary[reference] ? percent(summary[reference][i]) : "-"}` }))));
}

// --- playgrounds ----------------------------------------------------------------------------------

// Draw a digit: white on black like MNIST; the drawing is cropped to its ink, scaled to fit
// 20x20 and centred in 28x28 by its centre of mass (MNIST's own preparation: a dense net
// knows digits only where MNIST put them), sent as grey values in 0..1.
function digitPlayground(card, spec) {
  const canvas = el("canvas", { class: "digit", width: 280, height: 280, tabindex: 0,
    "aria-label": "drawing area: draw a digit with the mouse, a pen or a finger" });
  const context = canvas.getContext("2d");
  const result = el("div", { "aria-live": "polite", "data-testid": "digit-result" },
    el("p", { class: "muted", text: "Draw a digit (0-9); the answer updates as you draw." }));
  const clear = () => {
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    result.replaceChildren(el("p", { class: "muted", text: "Draw a digit (0-9)." }));
  };
  clear();
  let drawing = false;
  let last = null;
  let pending = null;
  const point = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
      (event.clientY - box.top) * canvas.height / box.height];
  };
  const predictSoon = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; predictDigit(); }, 120);
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    last = point(event);
    canvas.setPointerCapture(event.pointerId);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const next = point(event);
    stroke(last, next);
    last = next;
    predictSoon();
  });
  const stop = () => { if (drawing) { drawing = false; predictDigit(); } };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  function stroke(from, to) {
    context.strokeStyle = "#fff";
    context.lineWidth = 22;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.moveTo(...from);
    context.lineTo(...to);
    context.stroke();
  }
  async function predictDigit() {
    const values = digitValues(canvas);
    if (values === null) return;
    try {
      const answer = await postJSON(`/models/${card.model}/${spec.signature}/predict`,
        { instances: [{ [spec.input]: shaped(values, spec.shape) }] });
      const probabilities = answer.predictions[0][spec.output];
      const entries = probabilities.map((value, i) => ({ name: card.labels[i] ?? String(i), value }));
      const best = entries.reduce((a, b) => (b.value > a.value ? b : a));
      result.replaceChildren(el("p", { class: "verdict", text: `Looks like ${best.name}` }),
        bars(entries, "probability of each digit"));
    } catch (error) {
      showError(result, error);
    }
  }
  async function loadExample() {
    try {
      const example = await (await api(`/models/${card.model}/${spec.signature}/example`)).json();
      const first = example.instances[0];
      const flat = (Array.isArray(first) ? first : first[spec.input]).flat(3);
      const image = context.createImageData(28, 28);
      flat.forEach((v, i) => {
        const grey = Math.round(255 * v);
        image.data.set([grey, grey, grey, 255], 4 * i);
      });
      const small = el("canvas", { width: 28, height: 28 });
      small.getContext("2d").putImageData(image, 0, 0);
      context.imageSmoothingEnabled = true;
      context.drawImage(small, 0, 0, canvas.width, canvas.height);
      predictDigit();
    } catch (error) {
      showError(result, error);
    }
  }
  return el("div", { class: "playground", "data-playground": "digit" },
    el("div", {}, el("h3", { text: "Draw a digit" }), canvas,
      el("div", { class: "buttons" },
        el("button", { type: "button", onclick: clear, text: "Clear" }),
        el("button", { type: "button", onclick: loadExample, text: "Use the example digit" })),
      el("p", { class: "muted" },
        `Sent to `, el("code", { text: `/models/${card.model}/${spec.signature}/predict` }),
        ` as 784 grey values scaled to 0..1 (pixel / 255).`)),
    result);
}

function digitValues(canvas) {
  const size = canvas.width;
  const pixels = canvas.getContext("2d").getImageData(0, 0, size, size).data;
  let top = size; let left = size; let bottom = -1; let right = -1;
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      if (pixels[4 * (y * size + x)] > 20) {
        top = Math.min(top, y); bottom = Math.max(bottom, y);
        left = Math.min(left, x); right = Math.max(right, x);
      }
    }
  }
  if (bottom < 0) return null; // nothing drawn
  const width = right - left + 1;
  const height = bottom - top + 1;
  const scale = 20 / Math.max(width, height);
  const small = document.createElement("canvas");
  small.width = 28; small.height = 28;
  const context = small.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, 28, 28);
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(canvas, left, top, width, height,
    (28 - width * scale) / 2, (28 - height * scale) / 2, width * scale, height * scale);
  // then shift it so that its centre of mass is the image's centre, as MNIST's digits are
  const boxed = context.getImageData(0, 0, 28, 28).data;
  let mass = 0; let sumX = 0; let sumY = 0;
  for (let i = 0; i < 784; i += 1) {
    mass += boxed[4 * i]; sumX += (i % 28) * boxed[4 * i]; sumY += Math.floor(i / 28) * boxed[4 * i];
  }
  const centred = document.createElement("canvas");
  centred.width = 28; centred.height = 28;
  const target = centred.getContext("2d");
  target.fillStyle = "#000";
  target.fillRect(0, 0, 28, 28);
  target.drawImage(small, Math.round(13.5 - sumX / mass), Math.round(13.5 - sumY / mass));
  const grey = target.getImageData(0, 0, 28, 28).data;
  return Array.from({ length: 784 }, (_, i) => Math.round(grey[4 * i] / 255 * 1e4) / 1e4);
}

// 784 values in the input's row shape: [784], [28, 28] or [28, 28, 1].
function shaped(values, shape) {
  const row = shape.slice(1);
  if (row.length === 1) return values;
  const image = [];
  for (let y = 0; y < 28; y += 1) {
    const line = values.slice(28 * y, 28 * y + 28);
    image.push(row.length === 3 ? line.map((v) => [v]) : line);
  }
  return image;
}

// Drop or pick a photo: the upload route, top labels with bars.
function photoPlayground(card, spec) {
  const result = el("div", { "aria-live": "polite", "data-testid": "photo-result" });
  const preview = el("div");
  const input = el("input", { type: "file", accept: "image/*", id: `photo-${card.model}`,
    onchange: () => input.files[0] && send(input.files[0]) });
  const zone = el("div", { class: "drop" },
    el("label", { for: input.id }, "Drop a photo here, or pick one: "), input, preview);
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files[0]) send(event.dataTransfer.files[0]);
  });
  async function send(file) {
    preview.replaceChildren(el("img", { src: URL.createObjectURL(file), alt: `the photo: ${file.name}` }));
    result.replaceChildren(el("p", { class: "muted", text: "Classifying..." }));
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const answer = await (await api(spec.route, { method: "POST", body: form })).json();
      const row = answer.predictions[0];
      if (row.error) throw new Error(row.error);
      const entries = row.classes.map((name, i) => ({ name, value: row.scores[i] }));
      result.replaceChildren(
        el("p", { class: "verdict", text: entries[0].name }),
        bars(entries, "top labels and their scores"),
        card.warning ? el("p", { class: "error", text: `(${card.warning}: these labels mean nothing)` }) : null);
    } catch (error) {
      showError(result, error);
    }
  }
  return el("div", { class: "playground", "data-playground": "photo" },
    el("div", {}, el("h3", { text: "Classify a photo" }), zone,
      el("p", { class: "muted" }, "Sent as it is to ", el("code", { text: spec.route }),
        " (JPEG, PNG, GIF, BMP or WebP).")),
    result);
}

// Type a review: the text route, debounced as you type.
function textPlayground(card, spec) {
  const result = el("div", { "aria-live": "polite", "data-testid": "text-result" },
    el("p", { class: "muted", text: "Type a few words; the answer updates as you type." }));
  const id = `text-${card.model}`;
  let timer = null;
  let sequence = 0;
  const area = el("textarea", { id, placeholder: "A wonderful, moving film with a great cast.",
    oninput: () => { clearTimeout(timer); timer = setTimeout(send, 300); } });
  async function send() {
    const text = area.value.trim();
    if (!text) return;
    const mine = ++sequence;
    try {
      const answer = await postJSON(spec.route, { texts: [text] });
      if (mine !== sequence) return; // a newer text is on its way
      const row = answer.predictions[0];
      const entries = Object.entries(row).filter(([k, v]) => k !== "text" && typeof v === "number");
      result.replaceChildren(
        row.label !== undefined ? el("p", { class: "verdict", text: String(row.label) }) : null,
        bars(entries.map(([name, value]) => ({ name, value })), "scores"));
    } catch (error) {
      showError(result, error);
    }
  }
  return el("div", { class: "playground", "data-playground": "text" },
    el("div", {}, el("h3", {}, el("label", { for: id, text: "Type a review" })), area,
      el("p", { class: "muted" }, "Sent to ", el("code", { text: spec.route }), ".")),
    result);
}

// Anything else: the example request in an editor.
function jsonPlayground(card, spec) {
  const id = `json-${card.model}`;
  const area = el("textarea", { id, spellcheck: "false" });
  const result = el("pre", { "aria-live": "polite", "data-testid": "json-result" });
  api(spec.example).then((r) => r.text()).then((text) => {
    area.value = JSON.stringify(JSON.parse(text), null, 1);
  }).catch((error) => { result.textContent = error.message; });
  async function send() {
    try {
      result.textContent = JSON.stringify(await postJSON(spec.route, JSON.parse(area.value)), null, 1);
    } catch (error) {
      result.textContent = error.message;
    }
  }
  return el("div", { class: "playground json", "data-playground": "json" },
    el("div", {}, el("h3", {}, el("label", { for: id, text: `Request to ${spec.route}` })), area,
      el("div", { class: "buttons" }, el("button", { type: "button", onclick: send, text: "Send" }))),
    result);
}

const PLAYGROUNDS = { digit: digitPlayground, photo: photoPlayground, text: textPlayground,
  json: jsonPlayground };

// --- routing ----------------------------------------------------------------------------------------

async function route() {
  const parts = location.pathname.replace(/\/+$/, "").split("/").filter(Boolean);
  try {
    if (parts.length >= 2) await showModel(decodeURIComponent(parts[1]));
    else await listModels();
  } catch (error) {
    showError(main, error);
    if (error.status === 401) keyInput.focus();
  }
}

route();

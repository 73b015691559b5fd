// pggan-explore's page: hand-written, no framework, nothing loaded from the internet.
//
// Every picture is fetched from the server's endpoints (/image.png, /morph.png, /morph.mp4, /api/info) through a
// "slot": one <img> and the one request it is waiting for. Giving a slot a new address aborts its old request, so
// paging quickly or dragging a slider never leaves a queue of faces nobody will see (the server drops requests
// whose browser has hung up before their turn). The whole state of the page lives in the address bar, so a copied
// link shows the same faces. Addresses are relative, so the page also works behind a proxy under a sub-path.
"use strict";

const $ = (id) => document.getElementById(id);
const DEFAULT_STEPS = 4;
const DEFAULT_SECONDS = 4;
const THUMBNAIL = 256; // tiles of larger networks come box-filtered to this size (?size=256)
const SLIDER_STEP = 0.1;

let info = null;
const state = {
  checkpoint: null, // a checkpoint id of /api/info
  start: 0, // first seed of the browse page
  face: null, // the opened face's seed
  pick: [], // seeds picked for the morph, in order
  steps: DEFAULT_STEPS, // morph frames from one picked face to the next
  seconds: DEFAULT_SECONDS,
  loop: true,
  edits: new Map(), // direction name -> strength
};

// ------------------------------------------------------------------ loading, cancelling, the status line
const pending = new Set();
let lastError = null;

function showStatus() {
  const status = $("status");
  const text = $("status-text");
  if (pending.size > 0) {
    status.className = "busy";
    text.textContent = `rendering ${pending.size} image${pending.size === 1 ? "" : "s"}…`;
  } else if (lastError) {
    status.className = "error";
    text.textContent = `error: ${lastError}`;
  } else {
    status.className = "idle";
    text.textContent = "ready";
  }
}

async function fetchOrThrow(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) {
    const message = (await response.text()).trim();
    throw new Error(message || `${response.status} ${response.statusText}`);
  }
  return response;
}

class Slot {
  constructor(img) {
    this.img = img;
    this.url = null;
    this.controller = null;
    this.objectURL = null;
    img.dataset.state = "empty";
  }

  load(url) {
    if (url === this.url && this.img.dataset.state !== "error") return; // already showing (or fetching) this
    this.cancel();
    this.url = url;
    this.img.dataset.url = url || "";
    if (!url) {
      this.img.removeAttribute("src");
      this.img.dataset.state = "empty";
      return;
    }
    const controller = new AbortController();
    this.controller = controller;
    this.img.dataset.state = "loading";
    pending.add(controller);
    lastError = null;
    showStatus();
    fetchOrThrow(url, controller.signal)
      .then((response) => response.blob())
      .then((blob) => {
        if (this.controller !== controller) return;
        const previous = this.objectURL;
        this.objectURL = URL.createObjectURL(blob);
        this.img.onload = () => {
          if (this.url === url) this.img.dataset.state = "loaded";
          if (previous) URL.revokeObjectURL(previous);
        };
        this.img.title = "";
        this.img.src = this.objectURL;
      })
      .catch((error) => {
        if (error.name === "AbortError" || this.controller !== controller) return;
        this.img.dataset.state = "error";
        this.img.title = error.message;
        lastError = error.message;
      })
      .finally(() => {
        pending.delete(controller);
        if (this.controller === controller) this.controller = null;
        if (this.img.dataset.state === "loading" && this.img.complete && this.img.src === this.objectURL) {
          this.img.dataset.state = "loaded"; // the blob decoded before the request was marked done
        }
        showStatus();
      });
  }

  cancel() {
    if (this.controller) {
      this.controller.abort();
      pending.delete(this.controller);
      this.controller = null;
      showStatus();
    }
  }
}

// ------------------------------------------------------------------ addresses of pictures
function thumbnailSize() {
  return info.resolution > THUMBNAIL ? THUMBNAIL : null;
}

function strengthText(value) {
  return String(Number(value.toFixed(3)));
}

function faceURL(seed, { edits = false, size = thumbnailSize(), checkpoint = state.checkpoint } = {}) {
  const q = new URLSearchParams({ seed: String(seed) });
  if (edits) {
    for (const [name, value] of state.edits) {
      if (value !== 0) {
        q.append("direction", name);
        q.append("strength", strengthText(value));
      }
    }
  }
  q.set("checkpoint", checkpoint);
  if (size) q.set("size", String(size));
  return `image.png?${q}`;
}

function morphFrames() {
  const segments = state.pick.length - 1;
  const steps = Math.max(1, Math.min(state.steps, Math.floor((info.limits.max_strip_frames - 1) / segments)));
  return { steps, frames: segments * steps + 1 };
}

function morphURL(frame, frames) {
  const q = new URLSearchParams({ seeds: state.pick.join(","), frames: String(frames), frame: String(frame) });
  q.set("checkpoint", state.checkpoint);
  if (thumbnailSize()) q.set("size", String(thumbnailSize()));
  return `morph.png?${q}`;
}

function videoURL() {
  const q = new URLSearchParams({
    seeds: state.pick.join(","),
    seconds: String(state.seconds),
    fps: "30",
    loop: state.loop ? "1" : "0",
    checkpoint: state.checkpoint,
  });
  return `morph.mp4?${q}`;
}

function seedFileName(seed, edited) {
  return `seed${String(seed).padStart(5, "0")}${edited ? "-edited" : ""}.png`;
}

function kimgText(kimg) {
  return kimg === null || kimg === undefined ? "" : `${Number(kimg.toFixed(1)).toLocaleString("en-US")} kimg`;
}

// ------------------------------------------------------------------ the state in the address bar
function wholeIn(text, low, high, fallback) {
  if (text === null || !/^\d{1,10}$/.test(text.trim())) return fallback;
  const value = Number(text);
  return value >= low && value <= high ? value : fallback;
}

function sliderLimit() {
  return info.limits.max_strength / 2;
}

function readURL() {
  const q = new URLSearchParams(location.search);
  const limits = info.limits;
  const ids = info.checkpoints.map((c) => c.id);
  state.checkpoint = ids.includes(q.get("checkpoint")) ? q.get("checkpoint") : info.checkpoint;
  state.start = wholeIn(q.get("start"), 0, limits.max_seed - limits.page_size + 1, 0);
  state.face = wholeIn(q.get("face"), 0, limits.max_seed, null);
  state.pick = (q.get("pick") || "")
    .split(",")
    .map((text) => wholeIn(text, 0, limits.max_seed, null))
    .filter((seed) => seed !== null)
    .slice(0, limits.max_morph_seeds);
  state.steps = wholeIn(q.get("steps"), 1, 32, DEFAULT_STEPS);
  const seconds = Number(q.get("seconds"));
  state.seconds = q.get("seconds") !== null && seconds >= 0.5 && seconds <= 20 ? seconds : DEFAULT_SECONDS;
  state.loop = q.get("loop") !== "0";
  state.edits = new Map();
  const known = new Set(info.directions.map((d) => d.name));
  const names = q.getAll("direction");
  const strengths = q.getAll("strength");
  names.forEach((name, i) => {
    const value = Number(strengths[i]);
    if (known.has(name) && strengths[i] !== undefined && Number.isFinite(value)) {
      state.edits.set(name, Math.max(-sliderLimit(), Math.min(sliderLimit(), value)));
    }
  });
}

function writeURL(push) {
  const q = new URLSearchParams();
  q.set("checkpoint", state.checkpoint);
  q.set("start", String(state.start));
  if (state.face !== null) q.set("face", String(state.face));
  if (state.pick.length) q.set("pick", state.pick.join(","));
  if (state.steps !== DEFAULT_STEPS) q.set("steps", String(state.steps));
  if (state.seconds !== DEFAULT_SECONDS) q.set("seconds", String(state.seconds));
  if (!state.loop) q.set("loop", "0");
  for (const [name, value] of state.edits) {
    if (value !== 0) {
      q.append("direction", name);
      q.append("strength", strengthText(value));
    }
  }
  const search = `?${q}`;
  if (search !== location.search) history[push ? "pushState" : "replaceState"](null, "", search);
}

// ------------------------------------------------------------------ browse
const tiles = [];

function buildGrid() {
  const grid = $("grid");
  for (let i = 0; i < info.limits.page_size; i++) {
    const figure = document.createElement("figure");
    figure.className = "tile";
    const img = document.createElement("img");
    img.alt = "a face";
    const caption = document.createElement("figcaption");
    const label = document.createElement("span");
    label.className = "seed";
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "pick";
    pick.title = "pick this face for the morph";
    caption.append(label);
    figure.append(img, pick, caption);
    grid.append(figure);
    img.addEventListener("click", () => openFace(Number(figure.dataset.seed)));
    pick.addEventListener("click", () => togglePick(Number(figure.dataset.seed)));
    tiles.push({ figure, label, pick, slot: new Slot(img) });
  }
}

function renderGrid() {
  const limits = info.limits;
  const last = Math.min(state.start + limits.page_size - 1, limits.max_seed);
  $("range").textContent = `seeds ${state.start.toLocaleString("en-US")}–${last.toLocaleString("en-US")}`;
  $("prev").disabled = state.start === 0;
  $("next").disabled = state.start + limits.page_size > limits.max_seed - limits.page_size + 1;
  tiles.forEach((tile, i) => {
    const seed = state.start + i;
    tile.figure.hidden = seed > limits.max_seed;
    tile.figure.dataset.seed = String(seed);
    tile.label.textContent = `seed ${seed}`;
    tile.slot.img.alt = `the face of seed ${seed}`;
    const picked = state.pick.includes(seed);
    tile.pick.textContent = picked ? "✓ picked" : "+ pick";
    tile.figure.classList.toggle("picked", picked);
    tile.figure.classList.toggle("selected", seed === state.face);
    tile.slot.load(seed > limits.max_seed ? null : faceURL(seed));
  });
}

function goTo(start) {
  const limits = info.limits;
  state.start = Math.max(0, Math.min(start, limits.max_seed - limits.page_size + 1));
  update(true);
}

// ------------------------------------------------------------------ the opened face and its edits
let faceSlot = null;
const sliders = new Map(); // name -> {input, output}
let editTimer = null;

function openFace(seed) {
  state.face = seed;
  update(true);
}

function buildSliders() {
  const box = $("sliders");
  const limit = sliderLimit();
  for (const direction of info.directions) {
    const id = `slider-${direction.name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = direction.name;
    label.title = direction.kind === "sefa" ? `closed-form direction, eigenvalue ${direction.eigenvalue.toFixed(3)}`
      : `from ${direction.file}`;
    const input = document.createElement("input");
    input.type = "range";
    input.id = id;
    input.min = String(-limit);
    input.max = String(limit);
    input.step = String(SLIDER_STEP);
    input.value = "0";
    input.dataset.direction = direction.name;
    const output = document.createElement("output");
    output.htmlFor = id;
    output.textContent = "0";
    box.append(label, input, output);
    sliders.set(direction.name, { input, output });
    input.addEventListener("input", () => {
      const value = Number(input.value);
      output.textContent = strengthText(value);
      if (value === 0) state.edits.delete(direction.name);
      else state.edits.set(direction.name, value);
      clearTimeout(editTimer);
      editTimer = setTimeout(() => update(false), 120); // while dragging: the latest position only
    });
  }
  if (!info.directions.length) box.textContent = "no directions (start with --sefa N or --direction NAME=FILE.npy)";
}

function renderSliders() {
  for (const [name, { input, output }] of sliders) {
    const value = state.edits.get(name) || 0;
    if (Number(input.value) !== value) input.value = String(value);
    output.textContent = strengthText(value);
  }
}

function renderFace() {
  const section = $("face");
  if (state.face === null) {
    section.classList.add("empty");
    $("face-seed").textContent = "— click a face to open it";
    faceSlot.load(null);
    return;
  }
  section.classList.remove("empty");
  const edited = [...state.edits.values()].some((value) => value !== 0);
  $("face-seed").textContent = `seed ${state.face}${edited ? " (edited)" : ""}`;
  const url = faceURL(state.face, { edits: true, size: null });
  faceSlot.load(url);
  $("download").href = url;
  $("download").download = seedFileName(state.face, edited);
  $("full").href = url;
}

// ------------------------------------------------------------------ morph
let stripSlots = [];

function togglePick(seed) {
  const at = state.pick.indexOf(seed);
  if (at >= 0) state.pick.splice(at, 1);
  else if (state.pick.length < info.limits.max_morph_seeds) state.pick.push(seed);
  update(false);
}

function renderMorph() {
  const strip = $("strip");
  const picked = $("picked");
  $("clear-picks").disabled = state.pick.length === 0;
  $("steps").value = String(state.steps);
  $("seconds").value = String(state.seconds);
  $("loop").checked = state.loop;
  if (state.pick.length < 2) {
    picked.textContent = state.pick.length
      ? `seed ${state.pick[0]} picked: pick one more with + pick`
      : "pick two or more faces with + pick";
    stripSlots.forEach((slot) => slot.cancel());
    stripSlots = [];
    strip.replaceChildren();
    $("export-bar").hidden = true;
    return;
  }
  picked.textContent = `seeds ${state.pick.join(" → ")}`;
  const { steps, frames } = morphFrames();
  if (stripSlots.length !== frames) {
    stripSlots.forEach((slot) => slot.cancel());
    strip.replaceChildren();
    stripSlots = [];
    for (let k = 0; k < frames; k++) {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.alt = `morph frame ${k}`;
      const caption = document.createElement("figcaption");
      figure.append(img, caption);
      strip.append(figure);
      stripSlots.push(new Slot(img));
    }
  }
  stripSlots.forEach((slot, k) => {
    const figure = slot.img.parentElement;
    const key = k % steps === 0;
    figure.classList.toggle("key", key);
    figure.querySelector("figcaption").textContent = key ? `seed ${state.pick[k / steps]}` : "\u00a0";
    slot.load(morphURL(k, frames));
  });
  $("export-bar").hidden = false;
  $("export").href = videoURL();
  $("export").download = `morph-${state.pick.join("-")}.mp4`;
}

async function exportVideo(event) {
  event.preventDefault();
  const link = $("export");
  const controller = new AbortController();
  pending.add(controller);
  lastError = null;
  showStatus();
  $("status-text").textContent = "exporting the morph video…";
  try {
    const response = await fetchOrThrow(link.href, controller.signal);
    const url = URL.createObjectURL(await response.blob());
    const save = document.createElement("a");
    save.href = url;
    save.download = link.download;
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    lastError = error.message;
  } finally {
    pending.delete(controller);
    showStatus();
  }
}

// ------------------------------------------------------------------ training
let timelineSlots = [];

function renderTraining() {
  const select = $("checkpoint");
  select.value = state.checkpoint;
  const note = $("training-note");
  const timeline = $("timeline");
  if (info.checkpoints.length < 2) {
    note.textContent = "one checkpoint: start pggan-explore on a run directory to see its faces through training";
    timeline.replaceChildren();
    return;
  }
  const seed = state.face !== null ? state.face : state.start;
  note.textContent = `seed ${seed} at each checkpoint of the run; click one to show it everywhere`;
  if (timelineSlots.length !== info.checkpoints.length) {
    timeline.replaceChildren();
    timelineSlots = info.checkpoints.map((checkpoint) => {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.alt = `checkpoint ${checkpoint.id}`;
      const caption = document.createElement("figcaption");
      caption.textContent = checkpoint.id === "latest" ? `latest ${kimgText(checkpoint.kimg)}` : kimgText(checkpoint.kimg);
      figure.dataset.checkpoint = checkpoint.id;
      figure.append(img, caption);
      figure.addEventListener("click", () => chooseCheckpoint(checkpoint.id));
      timeline.append(figure);
      return new Slot(img);
    });
  }
  timelineSlots.forEach((slot, i) => {
    const id = info.checkpoints[i].id;
    slot.img.parentElement.classList.toggle("current", id === state.checkpoint);
    slot.load(faceURL(seed, { checkpoint: id }));
  });
}

function buildCheckpoints() {
  const select = $("checkpoint");
  for (const checkpoint of info.checkpoints) {
    const option = document.createElement("option");
    option.value = checkpoint.id;
    const kimg = kimgText(checkpoint.kimg);
    option.textContent = checkpoint.id === "latest" ? `latest${kimg ? ` (${kimg})` : ""}` : kimg || checkpoint.id;
    select.append(option);
  }
  $("checkpoint-chooser").hidden = info.checkpoints.length < 2;
  select.addEventListener("change", () => chooseCheckpoint(select.value));
}

function chooseCheckpoint(id) {
  state.checkpoint = id;
  update(true);
}

// ------------------------------------------------------------------ the whole page
function renderAll() {
  renderGrid();
  renderSliders();
  renderFace();
  renderMorph();
  renderTraining();
}

function update(push) {
  renderAll();
  writeURL(push);
}

function wire() {
  $("prev").addEventListener("click", () => goTo(state.start - info.limits.page_size));
  $("next").addEventListener("click", () => goTo(state.start + info.limits.page_size));
  $("jump").addEventListener("submit", (event) => {
    event.preventDefault();
    const seed = wholeIn($("jump-seed").value, 0, info.limits.max_seed, null);
    if (seed === null) {
      lastError = `a seed is a whole number from 0 to ${info.limits.max_seed}`;
      showStatus();
      return;
    }
    goTo(seed);
  });
  $("reset").addEventListener("click", () => {
    state.edits.clear();
    update(false);
  });
  $("clear-picks").addEventListener("click", () => {
    state.pick = [];
    update(false);
  });
  $("steps").addEventListener("change", () => {
    state.steps = wholeIn($("steps").value, 1, 32, DEFAULT_STEPS);
    update(false);
  });
  $("seconds").addEventListener("change", () => {
    const seconds = Number($("seconds").value);
    state.seconds = seconds >= 0.5 && seconds <= 20 ? seconds : DEFAULT_SECONDS;
    update(false);
  });
  $("loop").addEventListener("change", () => {
    state.loop = $("loop").checked;
    update(false);
  });
  $("export").addEventListener("click", exportVideo);
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "ArrowLeft" && state.start > 0) goTo(state.start - info.limits.page_size);
    if (event.key === "ArrowRight") goTo(state.start + info.limits.page_size);
  });
  window.addEventListener("popstate", () => {
    readURL();
    renderAll();
  });
}

async function start() {
  try {
    info = await (await fetchOrThrow("api/info")).json();
  } catch (error) {
    lastError = `cannot read api/info (${error.message})`;
    showStatus();
    return;
  }
  const channels = info.channels === 1 ? "grayscale" : info.channels === 3 ? "RGB" : `${info.channels} channels`;
  $("source").textContent = `${info.source} · ${info.resolution}×${info.resolution} ${channels} · ${info.device}`;
  faceSlot = new Slot($("face-image"));
  $("face-image").addEventListener("load", () => {
    const img = $("face-image");
    $("face-size").textContent = `${img.naturalWidth}×${img.naturalHeight} px`;
  });
  buildGrid();
  buildSliders();
  buildCheckpoints();
  wire();
  readURL();
  update(false);
  document.body.dataset.ready = "1";
}

start();

// objsearch web page: plain JavaScript over the JSON API in /api/v1.
"use strict";

const API = "/api/v1";
const $ = (id) => document.getElementById(id);
let lastQuery = null; // {text, words} or {file} or {similar: regionId}

function kind() {
  return document.querySelector('input[name="kind"]:checked').value;
}

function say(text) {
  $("message").textContent = text || "";
}

async function api(path, options = {}) {
  const response = await fetch(API + path, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    $("login").hidden = false;
    $("token").focus();
    throw new Error("Log in with the server's token first.");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `The server answered ${response.status}.`);
  }
  return body;
}

async function loadStatus() {
  try {
    const s = await api("/status");
    const model = (s.clip_model || "?").split("/").slice(-1)[0];
    $("status").textContent =
      `${s.photos} photos, ${s.objects} objects, ` +
      (s.read ? `${s.texts} lines of text, ` : "") +
      `index model ${model}` +
      (s.consistent ? "" : " (the index needs 'objsearch doctor')");
  } catch (err) {
    $("status").textContent = err.message;
  }
}

function groupByPhoto(results) {
  const groups = new Map();
  for (const r of results) {
    if (!groups.has(r.photo_id)) groups.set(r.photo_id, []);
    groups.get(r.photo_id).push(r);
  }
  return groups;
}

function basename(path) {
  return path.split(/[\\/]/).pop();
}

function render(results, title) {
  const main = $("results");
  main.replaceChildren();
  if (!results.length) {
    say("No results. Try other words, or switch between objects, photos and both.");
    return;
  }
  say("");
  const heading = document.createElement("h2");
  heading.textContent = title;
  main.append(heading);
  for (const [photoId, hits] of groupByPhoto(results)) {
    const group = document.createElement("section");
    group.className = "group";
    const name = document.createElement("h3");
    name.textContent = basename(hits[0].image);
    name.title = hits[0].image;
    group.append(name);
    for (const r of hits) group.append(card(r, photoId));
    main.append(group);
  }
}

function card(r, photoId) {
  const figure = document.createElement("figure");
  figure.className = "result";
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open";
  const what = r.kind === "text" ? `“${r.text}”` : r.label || "whole photo";
  open.setAttribute("aria-label", `Open ${basename(r.image)}: ${what}, score ${r.score.toFixed(3)}`);
  const img = document.createElement("img");
  img.className = "thumb";
  img.src = r.thumb_url;
  img.alt = what;
  img.loading = "lazy";
  open.append(img);
  open.addEventListener("click", () => openPhoto(photoId, r));
  const caption = document.createElement("figcaption");
  caption.textContent = `#${r.rank} ${what} · ${r.score.toFixed(3)}` +
    (r.matches > 1 ? ` · ${r.matches} matches` : "");
  figure.append(open, caption);
  if (r.region_id !== null) {  // lines of text have no vector to search like
    const more = document.createElement("button");
    more.type = "button";
    more.className = "more";
    more.textContent = "More like this";
    more.addEventListener("click", () => similar(r.region_id, what));
    figure.append(more);
  }
  return figure;
}

async function runSearch(query) {
  lastQuery = query;
  say("Searching…");
  $("results").setAttribute("aria-busy", "true");
  try {
    let results;
    let title;
    const refine = $("refine").checked;
    if (query.text !== undefined) {
      const params = new URLSearchParams({ k: "24", kind: kind() });
      if (query.text) params.set("q", query.text);
      if (query.words) params.set("ocr", query.words);
      if (query.text) params.set("refine", refine);
      results = await api(`/search?${params}`);
      const parts = [query.text && `“${query.text}”`, query.words && `the words “${query.words}”`];
      title = `Results for ${parts.filter(Boolean).join(" with ")}`;
    } else if (query.file) {
      const form = new FormData();
      form.append("image", query.file);
      form.append("k", "24");
      form.append("kind", kind());
      form.append("refine", refine);
      results = await api("/search", { method: "POST", body: form });
      title = `Photos like ${query.file.name}`;
    } else {
      const params = new URLSearchParams({ k: "24", kind: kind() });
      results = await api(`/regions/${query.similar}/similar?${params}`);
      title = `More like this ${query.label}`;
    }
    render(results, title);
  } catch (err) {
    $("results").replaceChildren();
    say(err.message);
  } finally {
    $("results").removeAttribute("aria-busy");
  }
}

function similar(regionId, label) {
  runSearch({ similar: regionId, label });
}

const SVG = "http://www.w3.org/2000/svg";

function rect(box, cls, label) {
  const g = document.createElementNS(SVG, "g");
  g.setAttribute("class", cls);
  const r = document.createElementNS(SVG, "rect");
  r.setAttribute("x", box[0]);
  r.setAttribute("y", box[1]);
  r.setAttribute("width", Math.max(1, box[2] - box[0]));
  r.setAttribute("height", Math.max(1, box[3] - box[1]));
  g.append(r);
  if (label) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", box[0] + 4);
    t.setAttribute("y", box[1] + 4);
    t.setAttribute("dominant-baseline", "hanging");
    t.textContent = label;
    g.append(t);
  }
  return g;
}

async function openPhoto(photoId, hit) {
  try {
    const info = await api(`/photos/${photoId}`);
    $("viewer-title").textContent = basename(info.image);
    $("caption").textContent = info.caption || "";
    const svg = $("boxes");
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${info.width} ${info.height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.style.fontSize = `${Math.max(12, Math.round(info.width / 45))}px`;
    const list = $("regions");
    list.replaceChildren();
    for (const region of info.regions) {
      if (!region.box) continue;
      const matched = hit && region.region_id === hit.region_id;
      svg.append(rect(region.box, matched ? "box matched" : "box", region.label));
      const item = document.createElement("li");
      const more = document.createElement("button");
      more.type = "button";
      more.textContent = `More like this ${region.label}`;
      more.addEventListener("click", () => {
        $("viewer").close();
        similar(region.region_id, region.label);
      });
      item.append(more);
      list.append(item);
    }
    for (const line of info.texts || []) {
      const matched = hit && hit.kind === "text" && String(line.box) === String(hit.box);
      svg.append(rect(line.box, matched ? "box text matched" : "box text", line.text));
    }
    if (hit && hit.refined_box) svg.append(rect(hit.refined_box, "box refined", "refined"));
    const photo = $("photo");
    photo.alt = `${basename(info.image)} with ${svg.childElementCount} boxes`;
    photo.src = `${info.image_url}?max_side=1600`;
    $("viewer").showModal();
    $("close").focus();
  } catch (err) {
    say(err.message);
  }
}

function pickFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    say(`${file.name} is not an image.`);
    return;
  }
  runSearch({ file });
}

function wire() {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("q").value.trim();
    const words = $("words").value.trim();
    if (!text && !words) {
      say("Type what to look for, or words written in the photo, or drop a photo.");
      return;
    }
    runSearch({ text, words });
  });
  for (const input of document.querySelectorAll('input[name="kind"]')) {
    input.addEventListener("change", () => lastQuery && runSearch(lastQuery));
  }
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/login", { method: "POST", body: new FormData($("login")) });
      $("login").hidden = true;
      say("");
      loadStatus();
    } catch (err) {
      say(err.message);
    }
  });
  const drop = $("drop");
  drop.addEventListener("click", () => $("file").click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      $("file").click();
    }
  });
  $("file").addEventListener("change", () => pickFile($("file").files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    pickFile(event.dataTransfer.files[0]);
  });
  $("close").addEventListener("click", () => $("viewer").close());
  say("Type a query or drop a photo to start.");
  loadStatus();
}

wire();

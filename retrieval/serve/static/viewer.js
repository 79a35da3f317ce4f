// The photo view: the photo with every box drawn, the match highlighted, and localization of
// typed prompts (boxes in one colour per prompt and, on request, their heat maps).
import { $, api, basename, el, hooks, say } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = 6; // .p0 … .p5 in style.css; more prompts reuse them
let shown = null; // {photoId, opener, info}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function rect(box, cls, label) {
  const g = svg("g", { class: cls });
  g.append(svg("rect", {
    x: box[0], y: box[1], width: Math.max(1, box[2] - box[0]), height: Math.max(1, box[3] - box[1]),
  }));
  if (label) {
    const t = svg("text", { x: box[0] + 4, y: box[1] + 4, "dominant-baseline": "hanging" });
    t.textContent = label;
    g.append(t);
  }
  return g;
}

export async function openPhoto(photoId, hit, opener) {
  try {
    const info = await api(`/photos/${photoId}`);
    shown = { photoId, opener, info };
    $("viewer-title").textContent = basename(info.image);
    $("caption").textContent = info.caption || "";
    const boxes = $("boxes");
    boxes.replaceChildren();
    boxes.classList.remove("localized");
    boxes.setAttribute("viewBox", `0 0 ${info.width} ${info.height}`);
    boxes.setAttribute("preserveAspectRatio", "none");
    $("heat").replaceChildren();
    $("heat").setAttribute("viewBox", `0 0 ${info.width} ${info.height}`);
    $("heat").setAttribute("preserveAspectRatio", "none");
    $("legend").replaceChildren();
    const list = $("regions");
    list.replaceChildren();
    for (const region of info.regions) {
      if (!region.box) continue;
      const matched = hit && region.region_id === hit.region_id;
      boxes.append(rect(region.box, matched ? "box matched" : "box", region.label));
      const more = el("button", null, `More like this ${region.label}`);
      more.type = "button";
      more.addEventListener("click", () => {
        $("viewer").close();
        hooks.moreLike(region.region_id, region.label);
      });
      const item = el("li");
      item.append(more);
      list.append(item);
    }
    for (const line of info.texts || []) {
      const matched = hit && hit.kind === "text" && String(line.box) === String(hit.box);
      boxes.append(rect(line.box, matched ? "box text matched" : "box text", line.text));
    }
    if (hit && hit.refined_box) boxes.append(rect(hit.refined_box, "box refined", "refined"));
    const photo = $("photo");
    photo.onload = () => fitPhoto(info);
    photo.alt = `${basename(info.image)} with ${boxes.childElementCount} boxes`;
    photo.src = `${info.image_url}?max_side=1600`;
    if (!$("viewer").open) $("viewer").showModal();
    $("close").focus();
  } catch (err) {
    say(err.message);
  }
}

// Show the photo as large as the dialog allows (small photos too), keeping its aspect, so
// the boxes drawn over it in its own pixel coordinates stay aligned.
function fitPhoto(info) {
  const room = $("viewer").clientWidth - 40;
  const tall = window.innerHeight * 0.75 * (info.width / info.height);
  const width = Math.max(120, Math.floor(Math.min(room, tall)));
  $("photo").style.width = `${width}px`;
  // Labels are drawn in the photo's pixels: this size reads as 13 px on the screen.
  $("boxes").style.fontSize = `${(13 * info.width) / width}px`;
}

// Draw one prompt's heat grid: a cell per value, its opacity the heat.
function heatLayer(heatmap, cls) {
  const g = svg("g", { class: `heat ${cls}` });
  const [cw, ch] = heatmap.cell;
  heatmap.values.forEach((row, r) => row.forEach((value, c) => {
    if (value <= 0.05) return;
    g.append(svg("rect", {
      x: c * cw, y: r * ch, width: cw, height: ch, "fill-opacity": (0.5 * value).toFixed(3),
    }));
  }));
  return g;
}

async function localize(event) {
  event.preventDefault();
  const prompts = $("prompts").value.split(",").map((p) => p.trim()).filter(Boolean);
  if (!prompts.length || !shown) {
    $("localize-status").textContent = "Type one or more prompts, separated by commas.";
    return;
  }
  const form = new FormData();
  for (const prompt of prompts) form.append("prompts", prompt);
  form.append("photo_id", shown.photoId);
  form.append("heatmap", $("show-heat").checked);
  $("localize-status").textContent = "Localizing…";
  const target = shown;
  try {
    const found = await api("/localize", { method: "POST", body: form });
    if (target !== shown) return; // another photo was opened meanwhile
    for (const old of $("boxes").querySelectorAll(".loc")) old.remove();
    $("boxes").classList.add("localized"); // the detector's boxes step back
    $("heat").replaceChildren();
    $("legend").replaceChildren();
    found.prompts.forEach((p, i) => {
      const cls = `p${i % COLOURS}`;
      if (p.heatmap) $("heat").append(heatLayer(p.heatmap, cls));
      for (const b of p.boxes) {
        $("boxes").append(rect(b.box, `box loc ${cls}`, `${p.prompt} ${b.confidence.toFixed(2)}`));
      }
      $("legend").append(el("li", `swatch ${cls}`, `${p.prompt}: ${p.boxes.length} ${p.boxes.length === 1 ? "box" : "boxes"}`));
    });
    $("localize-status").textContent = "";
  } catch (err) {
    $("localize-status").textContent = err.message;
  }
}

export function wireViewer() {
  $("close").addEventListener("click", () => $("viewer").close());
  $("localize").addEventListener("submit", localize);
  window.addEventListener("resize", () => {
    if ($("viewer").open && shown) fitPhoto(shown.info); // e.g. a phone turned sideways
  });
  // Escape (the dialog's own cancel) or Close: focus goes back to what opened the photo.
  $("viewer").addEventListener("close", () => {
    if (shown && shown.opener && shown.opener.isConnected) shown.opener.focus();
  });
}

// The page's state lives in its URL: every filter and view is a query-string parameter, so
// a search can be bookmarked, shared and reloaded, and Back returns to the previous one.
// The search parameters are the API's own (see retrieval/serve/params.py).
import { $ } from "./api.js";

const TEXT_FIELDS = ["q", "ocr", "after", "before", "camera", "min_score", "match"];
const FIELD_ID = { ocr: "words" }; // parameter -> input id where they differ
const field = (name) => $(FIELD_ID[name] || name);
// Parameters only the page reads; the rest go to the API as they are.
const PAGE_ONLY = ["view", "explore", "threshold", "like", "like_label"];

function checkedValues(containerId) {
  return [...$(containerId).querySelectorAll("input:checked")].map((i) => i.value);
}

export function pressedLabels() {
  return [...$("labels").querySelectorAll('button[aria-pressed="true"]')].map(
    (b) => b.dataset.label,
  );
}

// The search view's form as URL parameters (empty fields are left out).
export function readForm() {
  const params = new URLSearchParams();
  for (const name of TEXT_FIELDS) {
    const value = field(name).value.trim();
    if (value) params.set(name, value);
  }
  const kind = document.querySelector('input[name="kind"]:checked').value;
  if (kind !== "both") params.set("kind", kind);
  if ($("crops").checked) params.set("group", "object");
  if ($("refine").checked && params.get("q")) params.set("refine", "true");
  for (const folder of checkedValues("folders")) params.append("in", folder);
  for (const label of pressedLabels()) params.append("label", label);
  const near = ["lat", "lon", "km"].map((id) => $(id).value.trim());
  if (near.every(Boolean)) params.set("near", near.join(","));
  for (const prompt of $("not").value.split(",")) {
    if (prompt.trim()) params.append("not", prompt.trim());
  }
  return params;
}

// Put URL parameters back into the form (a reload, a shared link, Back).
export function fillForm(params) {
  for (const name of TEXT_FIELDS) field(name).value = params.get(name) || "";
  const kind = params.get("kind") || "both";
  for (const input of document.querySelectorAll('input[name="kind"]')) {
    input.checked = input.value === kind;
  }
  $("refine").checked = params.get("refine") === "true";
  $("crops").checked = params.get("group") === "object";
  const folders = new Set(params.getAll("in"));
  for (const input of $("folders").querySelectorAll("input")) {
    input.checked = folders.has(input.value);
  }
  setLabelChips(params.getAll("label"));
  const near = (params.get("near") || "").split(",");
  ["lat", "lon", "km"].forEach((id, i) => { $(id).value = near.length === 3 ? near[i] : ""; });
  $("not").value = params.getAll("not").join(", ");
  const count = activeFilters(params);
  $("filter-count").textContent = count ? `(${count} on)` : "";
  // A link with filters shows them, where the screen has room for results below.
  if (count && window.matchMedia("(min-width: 601px)").matches) $("filters").open = true;
}

// Chips for the chosen labels are pressed; a label from a link that the index does not
// list (yet) still gets a chip, so the filter stays visible.
export function setLabelChips(labels) {
  const wanted = new Set(labels);
  for (const chip of $("labels").querySelectorAll("button")) {
    chip.setAttribute("aria-pressed", String(wanted.delete(chip.dataset.label)));
  }
  for (const label of wanted) $("labels").append(labelChip(label, null, true));
}

export function labelChip(label, count, pressed = false) {
  const chip = document.createElement("button");
  chip.type = "button";
  chip.className = "chip";
  chip.dataset.label = label;
  chip.textContent = count === null ? label : `${label} ${count}`;
  chip.setAttribute("aria-pressed", String(pressed));
  chip.addEventListener("click", () => {
    chip.setAttribute("aria-pressed", String(chip.getAttribute("aria-pressed") !== "true"));
  });
  return chip;
}

export function activeFilters(params) {
  const names = ["after", "before", "in", "label", "camera", "near", "min_score", "not", "match"];
  return names.filter((name) => params.has(name)).length;
}

// The parameters to send to the API for this page state.
export function apiParams(params) {
  const out = new URLSearchParams(params);
  for (const name of PAGE_ONLY) out.delete(name);
  return out;
}

export function currentParams() {
  return new URLSearchParams(location.search);
}

// The views besides search: explore by object, the timeline, duplicates.
import { $, api, basename, cached, el, PAGE, say, thumbButton } from "./api.js";
import { openPhoto } from "./viewer.js";

// -- explore by object ---------------------------------------------------------------------
let exploring = null; // {label, offset}

export async function showLabels(choose) {
  $("explore-title").textContent = "Objects found in the photos";
  $("within").hidden = true;
  $("explore-more").hidden = true;
  const grid = $("explore-grid");
  grid.replaceChildren();
  try {
    const labels = await cached("/labels");
    if (!labels.length) say("The detector found no objects in this index.");
    for (const l of labels) {
      const figure = el("figure", "result");
      const open = thumbButton(l.thumb_url, l.label, `${l.label}: ${l.objects} objects`);
      open.addEventListener("click", () => choose(l.label));
      figure.append(open, el("figcaption", null, `${l.label} · ${l.objects}`));
      grid.append(figure);
    }
  } catch (err) {
    say(err.message);
  }
}

export async function showLabel(label) {
  exploring = { label, offset: 0, total: 0 };
  $("explore-title").textContent = `Every ${label}, most confident first`;
  $("within").hidden = false;
  $("within-q").placeholder = `Search among the ${label} objects`;
  $("explore-grid").replaceChildren();
  await moreOfLabel();
}

export async function moreOfLabel() {
  const state = exploring;
  const query = new URLSearchParams({ label: state.label, offset: state.offset, limit: PAGE });
  try {
    const page = await api(`/regions?${query}`);
    if (state !== exploring) return;
    for (const r of page.regions) {
      const figure = el("figure", "result");
      const name = basename(r.image);
      const open = thumbButton(r.thumb_url, r.label, `Open ${name}: ${r.label}`);
      open.addEventListener("click", () => openPhoto(r.photo_id, r, open));
      figure.append(open, el("figcaption", null, `${name} · ${(r.confidence ?? 0).toFixed(2)}`));
      $("explore-grid").append(figure);
    }
    state.offset += page.regions.length;
    $("explore-title").textContent = `${page.total} × ${state.label}, most confident first`;
    $("explore-more").hidden = state.offset >= page.total;
  } catch (err) {
    say(err.message);
  }
}

export function exploredLabel() {
  return exploring && exploring.label;
}

// -- timeline ------------------------------------------------------------------------------
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
let anchor = null; // the month a shift-click extends a range from

export function nextMonth(month) {
  const [y, m] = month.split("-").map(Number);
  return m === 12 ? `${y + 1}-01` : `${y}-${String(m + 1).padStart(2, "0")}`;
}

// Every month from the first photo's to the last one's, empty months included.
function monthRange(months) {
  if (!months.length) return [];
  const out = [];
  for (let m = months[0].month; m <= months.at(-1).month; m = nextMonth(m)) out.push(m);
  return out;
}

export async function showTimeline(after, before, choose) {
  const strip = $("strip");
  strip.replaceChildren();
  try {
    const t = await cached("/timeline");
    const counts = new Map(t.months.map((m) => [m.month, m.photos]));
    const top = Math.max(1, ...counts.values());
    for (const month of monthRange(t.months)) {
      const n = counts.get(month) || 0;
      const [y, m] = month.split("-");
      const bar = el("button", "month");
      bar.type = "button";
      bar.dataset.nav = "";
      bar.dataset.month = month;
      bar.setAttribute("aria-label", `${MONTHS[m - 1]} ${y}: ${n} photos`);
      bar.title = `${MONTHS[m - 1]} ${y}: ${n} photos`;
      bar.classList.toggle("chosen", Boolean(after && month >= after && (!before || month < before)));
      const fill = el("span", "bar");
      fill.style.height = `${Math.round((100 * n) / top)}%`;
      const first = m === "01" || !strip.childElementCount; // a year starts: label it
      bar.append(fill, el("span", first ? "year" : "tick", first ? y : ""));
      bar.addEventListener("click", (event) => {
        const from = event.shiftKey && anchor ? [anchor, month].sort() : [month, month];
        if (!event.shiftKey) anchor = month;
        choose(from[0], nextMonth(from[1]));
      });
      strip.append(bar);
    }
    strip.scrollLeft = strip.scrollWidth; // the latest months first
    const undated = t.undated ? `, ${t.undated} without a date` : "";
    const total = t.months.reduce((sum, m) => sum + m.photos, 0);
    $("timeline-note").textContent =
      `${total} photos with a date${undated}. Choose a month; Shift+click another for a range.`;
  } catch (err) {
    say(err.message);
  }
}

// -- duplicates ----------------------------------------------------------------------------
export async function showDuplicates(threshold) {
  const list = $("dup-groups");
  list.replaceChildren();
  $("dup-threshold").value = threshold;
  try {
    const groups = await api(`/duplicates?threshold=${encodeURIComponent(threshold)}`);
    $("dup-note").textContent = groups.length
      ? `${groups.length} group${groups.length === 1 ? "" : "s"} of copies; the suggested ` +
        "photo to keep is marked. Nothing is deleted."
      : "No duplicates at this threshold.";
    for (const g of groups) {
      const row = el("section", "group dup");
      row.append(el("h3", null, `${g.photos.length} ${g.kind === "exact" ? "exact" : "near"} copies`));
      for (const p of g.photos) row.append(duplicateCard(p));
      list.append(row);
    }
  } catch (err) {
    $("dup-note").textContent = "";
    say(err.message);
  }
}

function duplicateCard(p) {
  const figure = el("figure", p.keep ? "result keep" : "result");
  const name = basename(p.path);
  const open = thumbButton(p.thumb_url, name, `Open ${name}, similarity ${p.similarity}`);
  open.addEventListener("click", () => openPhoto(p.photo_id, null, open));
  const caption = el("figcaption", null,
    `${name} · ${p.similarity.toFixed(3)} · ${p.width}×${p.height}${p.keep ? " · keep" : ""}`);
  caption.title = p.path;
  figure.append(open, caption);
  return figure;
}

// Search results: grouped by photo, one card per matching crop, "load more" for the next page.
import { $, api, basename, el, hooks, PAGE, say, thumbButton } from "./api.js";
import { apiParams } from "./state.js";
import { openPhoto } from "./viewer.js";

let current = null; // {fetchPage(offset), title, offset, groups: Map(photoId -> section)}
let sequence = 0; // the newest search; older answers arriving late are dropped

function describe(params) {
  if (params.get("like")) return `More like this ${params.get("like_label") || "object"}`;
  const q = params.get("q");
  const words = params.get("ocr");
  const parts = [q && `“${q}”`, words && `the words “${words}”`];
  return `Results for ${parts.filter(Boolean).join(" with ")}`;
}

// Run the search these URL parameters describe (text, words, or more like a region).
export function search(params) {
  const query = apiParams(params);
  query.set("k", String(PAGE));
  const like = params.get("like");
  if (like) {
    for (const name of ["q", "ocr", "refine"]) query.delete(name);
  }
  const path = like ? `/regions/${encodeURIComponent(like)}/similar` : "/search";
  return start(describe(params), (offset) => {
    query.set("offset", String(offset));
    return api(`${path}?${query}`);
  });
}

// Search by example: the file is uploaded again for each page, with the same filters.
export function searchUpload(file, params) {
  const query = apiParams(params);
  for (const name of ["q", "ocr", "kind", "refine"]) query.delete(name);
  return start(`Photos like ${file.name}`, (offset) => {
    const form = new FormData();
    form.append("image", file);
    form.append("k", String(PAGE));
    form.append("kind", params.get("kind") || "both");
    form.append("refine", params.get("refine") === "true");
    query.set("offset", String(offset));
    return api(`/search?${query}`, { method: "POST", body: form });
  });
}

async function start(title, fetchPage) {
  current = { title, fetchPage, offset: 0, groups: new Map() };
  $("results").replaceChildren();
  $("load-more").hidden = true;
  await loadPage(sequence += 1);
}

export function loadMore() {
  return current && loadPage(sequence);
}

async function loadPage(token) {
  const results = $("results");
  say("Searching…");
  results.setAttribute("aria-busy", "true");
  try {
    const page = await current.fetchPage(current.offset);
    if (token !== sequence) return;
    if (!current.offset && !page.length) {
      say("No results. Try other words, or switch between objects, photos and both.");
      return;
    }
    say("");
    if (!current.offset) results.append(el("h2", null, current.title));
    append(page);
    current.offset += page.length;
    $("load-more").hidden = page.length < PAGE;
  } catch (err) {
    if (token !== sequence) return;
    if (!current.offset) results.replaceChildren();
    $("load-more").hidden = true;
    say(err.message);
  } finally {
    if (token === sequence) results.removeAttribute("aria-busy");
  }
}

function append(page) {
  for (const r of page) {
    let group = current.groups.get(r.photo_id);
    if (!group) {
      group = el("section", "group");
      const name = el("h3", null, basename(r.image));
      name.title = r.image;
      group.append(name);
      current.groups.set(r.photo_id, group);
      $("results").append(group);
    }
    group.append(card(r));
  }
}

function card(r) {
  const figure = el("figure", "result");
  const what = r.kind === "text" ? `“${r.text}”` : r.label || "whole photo";
  const open = thumbButton(
    r.thumb_url, what, `Open ${basename(r.image)}: ${what}, score ${r.score.toFixed(3)}`,
  );
  open.dataset.region = String(r.region_id);
  open.dataset.rank = String(r.rank);
  open.addEventListener("click", () => openPhoto(r.photo_id, r, open));
  const matches = r.matches > 1 ? ` · ${r.matches} matches` : "";
  const caption = el("figcaption", null, `#${r.rank} ${what} · ${r.score.toFixed(3)}${matches}`);
  figure.append(open, caption);
  if (r.region_id !== null) { // lines of text have no vector to search like
    const more = el("button", "more", "More like this");
    more.type = "button";
    more.addEventListener("click", () => hooks.moreLike(r.region_id, what));
    figure.append(more);
  }
  return figure;
}

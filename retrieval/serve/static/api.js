// Shared helpers: the JSON API, element lookup, the message line.
export const API = "/api/v1";
export const PAGE = 24; // results per page of a search or a label's objects
export const $ = (id) => document.getElementById(id);
// Navigation the views trigger, set by app.js (which owns the URL): moreLike(regionId, label).
export const hooks = { moreLike: null };

export function say(text) {
  $("message").textContent = text || "";
}

export function basename(path) {
  return path.split(/[\\/]/).pop();
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export async function api(path, options = {}) {
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

// A button showing a thumbnail: every grid on the page (results, objects, duplicates)
// is made of these, so arrow keys move between them (see keys.js).
export function thumbButton(src, alt, label) {
  const open = el("button", "open");
  open.type = "button";
  open.dataset.nav = "";
  open.setAttribute("aria-label", label);
  const img = el("img", "thumb");
  img.src = src;
  img.alt = alt;
  img.loading = "lazy";
  open.append(img);
  return open;
}

// Facet lists (labels, folders, cameras, months) change only when the index does: fetched
// once and dropped when the status reports a new batch.
const cache = new Map();
export function cached(path) {
  if (!cache.has(path)) {
    cache.set(path, api(path).catch((err) => { cache.delete(path); throw err; }));
  }
  return cache.get(path);
}
export function dropCache() {
  cache.clear();
}

// objsearch web page: plain JavaScript modules over the JSON API in /api/v1, no build step.
// This module owns the URL: every view and filter is in its query string (state.js).
import { $, api, hooks, say } from "./api.js";
import { loadFacets } from "./facets.js";
import { wireKeys } from "./keys.js";
import { loadMore, search, searchUpload } from "./results.js";
import { currentParams, fillForm, readForm } from "./state.js";
import { loadStatus, statusText } from "./status.js";
import {
  exploredLabel, moreOfLabel, showDuplicates, showLabel, showLabels, showTimeline,
} from "./views.js";
import { wireViewer } from "./viewer.js";

const VIEWS = ["search", "explore", "timeline", "duplicates"];
const DEFAULT_THRESHOLD = "0.95";

function setView(view) {
  $("search").hidden = view === "explore" || view === "duplicates"; // the timeline sets dates
  for (const name of VIEWS) {
    $(`view-${name}`).hidden = name !== view;
    $(`tab-${name}`).setAttribute("aria-current", name === view ? "page" : "false");
  }
}

// Show the state a URL describes: a reload, a shared link, Back and Forward all come here.
function show(params) {
  const view = VIEWS.includes(params.get("view")) ? params.get("view") : "search";
  setView(view);
  fillForm(params);
  say("");
  if (view === "explore") {
    const label = params.get("explore");
    return label ? showLabel(label) : showLabels((l) => navigate(exploreParams(l)));
  }
  if (view === "timeline") {
    return showTimeline(params.get("after"), params.get("before"), chooseMonths);
  }
  if (view === "duplicates") {
    return showDuplicates(params.get("threshold") || DEFAULT_THRESHOLD);
  }
  if (params.get("like") || params.get("q") || params.get("ocr")) return search(params);
  $("results").replaceChildren();
  $("load-more").hidden = true;
  say("Type a query or drop a photo to start.");
}

export function navigate(params) {
  const url = `${location.pathname}${params.size ? `?${params}` : ""}`;
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
  return show(params);
}

function exploreParams(label) {
  const params = new URLSearchParams({ view: "explore" });
  if (label) params.set("explore", label);
  return params;
}

// The timeline sets the date filter and goes back to searching with it.
function chooseMonths(after, before) {
  const params = readForm();
  params.set("after", after);
  params.set("before", before);
  if (params.get("q") || params.get("ocr")) return navigate(params);
  params.set("view", "timeline");
  navigate(params);
  say(`Dates set from ${after} to before ${before}: type what to look for and press Search.`);
}

hooks.moreLike = (regionId, label) => {
  const params = readForm();
  for (const name of ["q", "ocr", "refine"]) params.delete(name);
  params.set("like", regionId);
  params.set("like_label", label);
  navigate(params);
};

function wireSearch() {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const params = readForm();
    if (!params.get("q") && !params.get("ocr")) {
      say("Type what to look for, or words written in the photo, or drop a photo.");
      return;
    }
    navigate(params);
  });
  // The switches re-run the current search at once.
  for (const input of document.querySelectorAll('input[name="kind"], #crops')) {
    input.addEventListener("change", () => {
      const params = currentParams();
      if (params.get("q") || params.get("ocr") || params.get("like")) {
        const chosen = readForm();
        for (const name of ["kind", "group"]) {
          if (chosen.has(name)) params.set(name, chosen.get(name));
          else params.delete(name);
        }
        navigate(params);
      }
    });
  }
  $("clear-filters").addEventListener("click", () => {
    const params = new URLSearchParams();
    for (const name of ["q", "ocr", "kind"]) {
      if (currentParams().get(name)) params.set(name, currentParams().get(name));
    }
    fillForm(params);
  });
  $("load-more").addEventListener("click", loadMore);
}

function wireViews() {
  for (const name of VIEWS) {
    $(`tab-${name}`).addEventListener("click", (event) => {
      event.preventDefault();
      const params = readForm();
      if (name !== "search") params.set("view", name);
      navigate(params);
    });
  }
  $("within").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("within-q").value.trim();
    if (!q) return;
    navigate(new URLSearchParams({ q, kind: "object", label: exploredLabel() }));
  });
  $("explore-more").addEventListener("click", moreOfLabel);
  $("all-labels").addEventListener("click", (event) => {
    event.preventDefault();
    navigate(exploreParams());
  });
  $("dup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(new URLSearchParams({ view: "duplicates", threshold: $("dup-threshold").value }));
  });
}

function pickFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    say(`${file.name} is not an image.`);
    return;
  }
  setView("search");
  searchUpload(file, readForm());
}

function wireDrop() {
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
}

// After a watcher's batch: new counts on the facets and on the view being shown (searches
// are left as they are, so results do not move under the reader's hand).
function refreshCounts() {
  loadFacets();
  if (currentParams().get("view")) show(currentParams());
}

async function start() {
  await loadFacets().catch(() => {});
  fillForm(currentParams());
  show(currentParams());
  loadStatus(refreshCounts);
}

function wire() {
  wireSearch();
  wireViews();
  wireDrop();
  wireViewer();
  wireKeys();
  window.addEventListener("popstate", () => show(currentParams()));
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/login", { method: "POST", body: new FormData($("login")) });
      $("login").hidden = true;
      say("");
      start();
    } catch (err) {
      say(err.message);
    }
  });
  window.objsearch = { statusText }; // for scripts and tests that read the page
  start();
}

wire();

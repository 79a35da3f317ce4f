// The status line: the index's counts, and indexing progress while a watcher runs.
import { $, api, dropCache } from "./api.js";

const POLL_MS = 2000;
let lastBatch; // undefined until the first answer with a watcher

// The status line's text for an /api/v1/status answer (pure: tests call it directly).
export function statusText(s) {
  const model = (s.clip_model || "?").split("/").slice(-1)[0];
  let text = `${s.photos} photos, ${s.objects} objects, ` +
    (s.read ? `${s.texts} lines of text, ` : "") +
    `index model ${model}` +
    (s.consistent ? "" : " (the index needs 'objsearch doctor')");
  const w = s.watch;
  if (!w) return text;
  if (w.state === "indexing") {
    text = `Indexing ${w.done} of ${w.total} new photos… ` +
      (w.pending ? `(${w.pending} more waiting) ` : "") + `· ${text}`;
  } else {
    const n = (w.folders || []).length;
    text += ` · watching ${n} folder${n === 1 ? "" : "s"}`;
  }
  if (w.last_error) text += ` · last error: ${w.last_error}`;
  return text;
}

// Read the status once, and every two seconds while a watcher reports; when a batch lands,
// the cached labels, folders and months are dropped and onBatch redraws what is shown.
export async function loadStatus(onBatch) {
  let s;
  try {
    s = await api("/status");
  } catch (err) {
    $("status").textContent = err.message;
    return;
  }
  $("status").textContent = statusText(s);
  if (!s.watch) return;
  if (lastBatch !== undefined && s.watch.last_batch_at !== lastBatch) {
    dropCache();
    onBatch();
  }
  lastBatch = s.watch.last_batch_at;
  setTimeout(() => loadStatus(onBatch), POLL_MS);
}

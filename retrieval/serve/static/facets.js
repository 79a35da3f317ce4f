// The filter choices come from the index: its folders, detector labels and cameras.
import { $, cached, el } from "./api.js";
import { labelChip, pressedLabels, setLabelChips } from "./state.js";

export async function loadFacets() {
  const [folders, labels, cameras] = await Promise.all(
    ["/folders", "/labels", "/cameras"].map((path) => cached(path).catch(() => [])),
  );
  const chosen = new Set(
    [...$("folders").querySelectorAll("input:checked")].map((input) => input.value),
  );
  $("folders").replaceChildren();
  for (const f of folders) {
    const label = el("label", "folder");
    const box = el("input");
    box.type = "checkbox";
    box.value = f.folder;
    box.checked = chosen.has(f.folder);
    label.title = f.folder;
    label.append(box, ` ${f.folder} (${f.photos})`);
    $("folders").append(label);
  }
  const pressed = pressedLabels();
  $("labels").replaceChildren();
  for (const l of labels) $("labels").append(labelChip(l.label, l.objects));
  setLabelChips(pressed);
  $("cameras").replaceChildren(
    ...cameras.map((c) => {
      const option = el("option");
      option.value = c.camera;
      option.textContent = `${c.photos} photos`;
      return option;
    }),
  );
}

// Arrow keys move the focus through a grid of [data-nav] buttons (results, objects,
// duplicates, months): left and right step, up and down go to the nearest one in the row
// above or below. Enter opens (they are buttons); Escape closes the photo (the dialog's own).
const STEP = { ArrowLeft: -1, ArrowRight: 1 };

function centre(node) {
  const r = node.getBoundingClientRect();
  return { x: r.left + r.width / 2, y: r.top + r.height / 2, top: r.top, bottom: r.bottom };
}

// The item to focus from `from` for an Up/Down key: the nearest by x in the closest row.
function vertical(items, from, down) {
  const at = centre(from);
  const ahead = items
    .map((node) => ({ node, c: centre(node) }))
    .filter(({ c }) => (down ? c.top >= at.bottom - 1 : c.bottom <= at.top + 1));
  if (!ahead.length) return null;
  const rowY = down ? Math.min(...ahead.map((a) => a.c.y)) : Math.max(...ahead.map((a) => a.c.y));
  const row = ahead.filter((a) => Math.abs(a.c.y - rowY) < 8);
  row.sort((a, b) => Math.abs(a.c.x - at.x) - Math.abs(b.c.x - at.x));
  return row[0].node;
}

export function wireKeys() {
  document.addEventListener("keydown", (event) => {
    const from = document.activeElement;
    if (!from || !from.matches("[data-nav]") || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    const scope = from.closest("[data-navgroup]") || document.body;
    const items = [...scope.querySelectorAll("[data-nav]")].filter((n) => n.offsetParent);
    let target = null;
    if (event.key in STEP) target = items[items.indexOf(from) + STEP[event.key]];
    else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      target = vertical(items, from, event.key === "ArrowDown");
    } else if (event.key === "Home") target = items[0];
    else if (event.key === "End") target = items.at(-1);
    else return;
    event.preventDefault();
    if (target) {
      target.focus();
      target.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  });
}

"""Object-count captions ("2 cats, 1 remote, 1 couch") for photos.

Captions summarise what the detector found in a photo. They are stored with the photo, so
apps can show and search them without re-running detection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

_IRREGULAR = {
    "person": "people",
    "mouse": "mice",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
    "knife": "knives",
    "wine glass": "wine glasses",
    "bus": "buses",
    "couch": "couches",
    "sandwich": "sandwiches",
    "bench": "benches",
    "toothbrush": "toothbrushes",
    "glass": "glasses",
}


def plural(label: str, count: int) -> str:
    """English plural of a detector label for ``count`` items."""
    if count == 1:
        return label
    if label in _IRREGULAR:
        return _IRREGULAR[label]
    if label.endswith(("s", "x", "z", "ch", "sh")):
        return label + "es"
    if label.endswith("y") and len(label) > 1 and label[-2] not in "aeiou":
        return label[:-1] + "ies"
    return label + "s"


def caption(labels: Iterable[str]) -> str:
    """Count labels, most frequent first (ties alphabetical): '2 cats, 1 couch, 1 remote'."""
    counts = Counter(labels)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{n} {plural(label, n)}" for label, n in ordered)

"""What ``objsearch models`` prints: the families, suggested checkpoints and measured speed.

Speeds are not estimates: ``benchmarks/index_speed.py --family-table`` indexes real photos
with a random model of each family's benchmark shape (the same cost as the real weights)
and writes :data:`SPEEDS_FILE`; this module only reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .families import DEFAULT_FAMILY, FAMILIES, Family

SPEEDS_FILE = Path(__file__).with_name("speeds.json")

DEFAULT_REASON = (
    "CLIP ViT-B/32 is the default: it is the fastest family on a CPU (see the photos/s "
    "column), its English retrieval is good for everyday objects, and it is the most widely "
    "mirrored checkpoint. Pick SigLIP 2 for higher published retrieval scores, or for "
    "queries in other languages, at the measured cost in speed."
)


@dataclass(frozen=True)
class Speed:
    """One family's measured indexing speed (photos per second) on the benchmark machine."""

    objects: float | None  # objects + whole photo (the default indexing mode)
    photos_only: float | None
    shape: str


@dataclass(frozen=True)
class CatalogRow:
    family: Family
    speed: Speed | None


def load_speeds(path: Path = SPEEDS_FILE) -> dict[str, Any]:
    """The benchmark's stored results (``{}`` when the file is missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def catalog(path: Path = SPEEDS_FILE) -> tuple[list[CatalogRow], dict[str, Any]]:
    """Every family with its measured speed (None where not measured), plus the run's facts."""
    data = load_speeds(path)
    measured = data.get("families", {}) if isinstance(data.get("families"), dict) else {}
    rows = []
    for family in FAMILIES:
        entry = measured.get(family.name)
        speed = (
            Speed(
                objects=entry.get("photos_per_s"),
                photos_only=entry.get("photos_only_per_s"),
                shape=str(entry.get("shape") or family.benchmark_shape),
            )
            if isinstance(entry, dict)
            else None
        )
        rows.append(CatalogRow(family, speed))
    about = {k: v for k, v in data.items() if k != "families"}
    return rows, about


def is_default(family: Family) -> bool:
    return family.name == DEFAULT_FAMILY

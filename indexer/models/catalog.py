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
# The checkpoint each benchmarked architecture stands for (random weights of its shape).
MEASURED_CHECKPOINTS = {
    "ViT-B/32": "openai/clip-vit-base-patch32",
    "MobileCLIP2-S0": "hf-hub:timm/MobileCLIP2-S0-OpenCLIP",
    "ViT-B-32-256": "hf-hub:laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K",
}

DEFAULT_REASON = (
    "CLIP ViT-B/32 is the default: its weights are MIT-licensed, it is fast on a CPU (see the "
    "photos/s column), its English retrieval is good for everyday objects, and it is the most "
    "widely mirrored checkpoint. Pick an open_clip model for more speed or accuracy (check "
    "its licence: MobileCLIP2's weights are for research only), SigLIP 2 for higher "
    "published retrieval scores or for queries in other languages."
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


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    section = data.get(name)
    return section if isinstance(section, dict) else {}


def catalog(path: Path = SPEEDS_FILE) -> tuple[list[CatalogRow], dict[str, Any]]:
    """Every family with its measured speed (None where not measured), plus the run's facts.

    A family measured only in the side-by-side run of models (see :func:`model_speeds`)
    takes the entry of its benchmark shape from there.
    """
    data = load_speeds(path)
    measured = _section(data, "families")
    for entry in _section(data, "models").values():
        if isinstance(entry, dict) and entry.get("family") not in measured:
            family = entry.get("family")
            if any(f.name == family and f.benchmark_shape == entry.get("shape") for f in FAMILIES):
                measured[str(family)] = entry
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
    about = {
        k: v for k, v in data.items() if k not in ("families", "models", "models_about", "towers")
    }
    return rows, about


@dataclass(frozen=True)
class ModelSpeed:
    """One architecture's figures in the side-by-side runs, with the checkpoint it stands
    for; each ratio is against the default family's model in the same run."""

    family: Family
    shape: str
    checkpoint: str
    license: str
    objects: float | None  # photos/s, objects + photo (index_speed.py)
    objects_ratio: float | None
    photos_only: float | None
    photos_only_ratio: float | None
    images_per_s: float | None  # the image tower alone (tower_speed.py)
    images_ratio: float | None
    texts_per_s: float | None  # the text tower alone
    texts_ratio: float | None


def _ratio(value: Any, reference: Any) -> float | None:
    if isinstance(value, int | float) and isinstance(reference, int | float) and reference > 0:
        return float(value) / float(reference)
    return None


def _by_shape(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(e.get("shape")): e for e in section.values() if isinstance(e, dict) and "shape" in e
    }


def model_speeds(path: Path = SPEEDS_FILE) -> tuple[list[ModelSpeed], dict[str, Any]]:
    """The models timed side by side (``index_speed.py --families clip,open_clip:...``
    for indexing, ``tower_speed.py`` for the towers alone), each with its ratios to the
    default family's model: on a shared machine the ratios are the figures that count.
    Also returns the indexing run's facts."""
    data = load_speeds(path)
    runs, towers = _by_shape(_section(data, "models")), _by_shape(_section(data, "towers"))
    known = {f.name: f for f in FAMILIES}
    reference = next(
        (s for s, e in {**towers, **runs}.items() if e.get("family") == DEFAULT_FAMILY), ""
    )
    speeds = []
    for shape in dict.fromkeys([*runs, *towers]):
        run, tower = runs.get(shape, {}), towers.get(shape, {})
        family = known.get(str(run.get("family") or tower.get("family")))
        if family is None:
            continue
        checkpoint = MEASURED_CHECKPOINTS.get(shape, "")

        def rate(entry: dict[str, Any], key: str, base: dict[str, Any]) -> tuple[Any, Any]:
            return entry.get(key), _ratio(entry.get(key), base.get(reference, {}).get(key))

        speeds.append(
            ModelSpeed(
                family,
                shape,
                checkpoint,
                family.license_of(checkpoint) if checkpoint else "?",
                *rate(run, "photos_per_s", runs),
                *rate(run, "photos_only_per_s", runs),
                *rate(tower, "images_per_s", towers),
                *rate(tower, "texts_per_s", towers),
            )
        )
    return speeds, _section(data, "models_about")


def is_default(family: Family) -> bool:
    return family.name == DEFAULT_FAMILY

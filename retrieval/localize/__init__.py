"""Zero-shot localisation of a query inside a photo by scoring crops with CLIP.

:mod:`.grid` plans cells and windows, :mod:`.scoring` scores crops (and adapts CLIP with a
crop cache), :mod:`.heatmap` turns scores into a map, :mod:`.boxes` turns the map into
boxes, :mod:`.locate` runs the steps, :mod:`.refine` applies them to search hits and
prompts, :mod:`.render` draws the results.
"""

from .boxes import LocalizedBox, connected_components, heat_to_boxes
from .grid import GridPlan, auto_patch, plan_grid
from .heatmap import Localization, normalise_heat
from .locate import DEFAULT_WINDOW, METHODS, localize
from .scoring import CachedEmbedder, ScoreFn, clip_score_fn

__all__ = [
    "DEFAULT_WINDOW",
    "METHODS",
    "CachedEmbedder",
    "GridPlan",
    "Localization",
    "LocalizedBox",
    "ScoreFn",
    "auto_patch",
    "clip_score_fn",
    "connected_components",
    "heat_to_boxes",
    "localize",
    "normalise_heat",
    "plan_grid",
]

"""Drawing helpers for localisation results: labelled boxes and heat-map overlays.

Kept apart from ``localize`` so the algorithm stays free of fonts and colours. Everything
draws on an RGB copy; sizes scale with the image so a 5184x3456 photo and a 640x480 one
look alike once shrunk for display.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from indexer.media.decode import to_rgb

from .boxes import LocalizedBox
from .heatmap import Localization

Colour = tuple[int, int, int]

# Saturated, mutually distinct colours that stay visible on both dark and light photos.
PALETTE: tuple[Colour, ...] = (
    (255, 214, 0),
    (0, 200, 255),
    (255, 64, 129),
    (118, 255, 3),
    (255, 145, 0),
    (170, 0, 255),
    (0, 230, 118),
    (41, 121, 255),
)


def prompt_colour(index: int) -> Colour:
    """Colour of the ``index``-th prompt: the palette, then golden-ratio hues beyond it."""
    if index < len(PALETTE):
        return PALETTE[index]
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return (round(r * 255), round(g * 255), round(b * 255))


def _ink(colour: Colour) -> Colour:
    """Black or white text, whichever reads better on ``colour``."""
    r, g, b = colour
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's bundled font at ``size`` px; the fixed bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _colours(n: int, colours: Sequence[Colour] | None) -> list[Colour]:
    if colours is None:
        return [prompt_colour(i) for i in range(n)]
    if len(colours) < n:
        raise ValueError(f"need {n} colours, got {len(colours)}")
    return [tuple(int(v) for v in c[:3]) for c in colours]  # type: ignore[misc]


def draw_boxes(
    image: Image.Image,
    detections: Sequence[tuple[str, Sequence[LocalizedBox]]],
    *,
    colours: Sequence[Colour] | None = None,
) -> Image.Image:
    """Outline every box in its prompt's colour with a ``"prompt 0.87"`` label.

    Labels go above the box, or inside its top edge when there is no room, and are drawn
    after all outlines so no box hides a label.
    """
    out = to_rgb(image).copy()
    width, height = out.size
    scale = math.sqrt(width * height)
    line = max(2, round(scale / 250))
    font = _font(max(10, round(scale / 45)))
    pad = max(1, line // 2)
    draw = ImageDraw.Draw(out)
    cols = _colours(len(detections), colours)
    labels: list[tuple[float, float, str, Colour]] = []
    for (prompt, boxes), colour in zip(detections, cols, strict=True):
        for det in boxes:
            x1, y1, x2, y2 = det.box
            x1, x2 = max(0.0, min(x1, width - 1.0)), max(0.0, min(x2, float(width)))
            y1, y2 = max(0.0, min(y1, height - 1.0)), max(0.0, min(y2, float(height)))
            # Box edges are pixel boundaries: the last covered pixel is x2 - 1.
            draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=colour, width=line)
            labels.append((x1, y1, f"{prompt} {det.confidence:.2f}", colour))
    for x1, y1, text, colour in labels:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
        ly = y1 - th if y1 - th >= 0 else y1
        lx = min(x1, max(0.0, width - tw))
        draw.rectangle((lx, ly, lx + tw, ly + th), fill=colour)
        draw.text((lx + pad - left, ly + pad - top), text, fill=_ink(colour), font=font)
    return out


def _map_at_size(heat: np.ndarray | Localization, size: tuple[int, int]) -> np.ndarray:
    """A heat map as an (H, W) float array in [0, 1] aligned with an image of ``size``."""
    if isinstance(heat, Localization):
        arr = heat.heatmap_image(size, smooth=True)
    else:
        arr = np.asarray(heat, dtype=np.float32)
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(f"heat maps must be non-empty 2-D arrays, got shape {arr.shape}")
        if arr.shape != (size[1], size[0]):
            arr = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR))
    return np.clip(np.nan_to_num(arr, nan=0.0), 0.0, 1.0)


def heatmap_overlay(
    image: Image.Image,
    heatmaps: Sequence[np.ndarray | Localization],
    colours: Sequence[Colour] | None = None,
    *,
    floor: float = 0.25,
    alpha: float = 0.55,
    labels: Sequence[str] | None = None,
) -> Image.Image:
    """Show where heat maps are high: the image is darkened towards ``floor`` where every
    map is low (the article's view), and each map tints its hot area with its colour.

    A single map with ``colours=None`` gets no tint, so the picture keeps its own colours;
    several maps are always tinted, one colour per prompt. Maps may be cell grids (resized
    bilinearly), image-sized arrays, or ``Localization`` objects (resampled exactly).
    With ``labels`` (one per map) a legend in the top-left corner names each colour.
    """
    if labels is not None and len(labels) != len(heatmaps):
        raise ValueError(f"need one label per heat map, got {len(labels)} for {len(heatmaps)}")
    if not 0.0 <= floor <= 1.0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"floor and alpha must be in [0, 1], got {floor}, {alpha}")
    rgb = to_rgb(image)
    if not heatmaps:
        return rgb.copy()
    maps = [_map_at_size(h, rgb.size) for h in heatmaps]
    pixels = np.asarray(rgb, dtype=np.float32) / 255.0
    combined = np.maximum.reduce(maps)
    out = pixels * (floor + (1.0 - floor) * combined)[..., None]
    if colours is not None or len(maps) > 1:
        for heat, colour in zip(maps, _colours(len(maps), colours), strict=False):
            weight = (alpha * heat)[..., None]
            out = out * (1.0 - weight) + (np.array(colour, np.float32) / 255.0) * weight
    picture = Image.fromarray(np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8))
    if labels is not None:
        picture = draw_legend(picture, list(zip(labels, _colours(len(maps), colours), strict=True)))
    return picture


def draw_legend(image: Image.Image, entries: Sequence[tuple[str, Colour]]) -> Image.Image:
    """A key in the top-left corner: one solid swatch of each colour beside its text.

    Tints blend into the photo and two prompts' colours can mix where both are hot, so the
    swatches are drawn pure, on an opaque panel, where nothing blends into them.
    """
    out = to_rgb(image).copy()
    if not entries:
        return out
    scale = math.sqrt(out.width * out.height)
    font = _font(max(10, round(scale / 45)))
    draw = ImageDraw.Draw(out)
    boxes = [draw.textbbox((0, 0), text, font=font) for text, _ in entries]
    line = max(max(b[3] - b[1] for b in boxes), max(8, round(scale / 40)))
    pad = max(2, line // 3)
    width = 3 * pad + line + max(b[2] - b[0] for b in boxes)
    height = pad + len(entries) * (line + pad)
    draw.rectangle((0, 0, width, height), fill=(0, 0, 0))
    for i, ((text, colour), box) in enumerate(zip(entries, boxes, strict=True)):
        top = pad + i * (line + pad)
        draw.rectangle((pad, top, pad + line - 1, top + line - 1), fill=tuple(colour))
        ty = top + (line - (box[3] - box[1])) / 2 - box[1]
        draw.text((2 * pad + line - box[0], ty), text, fill=(255, 255, 255), font=font)
    return out

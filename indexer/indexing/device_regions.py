"""Decoded photos -> regions with vectors, with the pixels on the accelerator.

On CUDA the PIL path (:mod:`indexer.indexing.regions`) leaves the GPU idle: ultralytics
letterboxes each photo on the CPU, and each crop is resized by PIL and normalised by NumPy,
about 4 ms of one CPU core per CLIP image. Here each photo is uploaded once as uint8. The
detector gets a letterboxed batch built on the device. CLIP's inputs come from one
``roi_align`` per photo, normalised on the device:

- CLIP's resize-then-centre-crop is the box's centred square, resampled to the model's size;
- SigLIP's squash is the whole box, resampled.

The regions and records are the PIL path's. The vectors differ only by the resampling
filter: adaptive area sampling instead of PIL's bicubic. The tests compare the cosine.
NaFlex models (per-photo patch grids) keep the PIL path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..geometry import Detections, crop_box
from ..media.decode import DecodedPhoto
from ..models.clip import ClipEmbedder
from ..models.detector import Detector
from ..models.families import CentreCrop, Squash
from ..settings import DetectOptions
from ..store.records import NewPhoto
from .regions import RegionEmbedder, kept_detections, photo_records
from .timing import timed

LETTERBOX_FILL = 114 / 255  # ultralytics' grey padding
STRIDE = 32  # the detector's input sides must be multiples of its largest stride


def supports_device_regions(embedder: ClipEmbedder, detector: Detector | None) -> bool:
    """True when both models run on PyTorch and CLIP's preprocessing is a box resample."""
    pixels = embedder.pixels
    if embedder.backend != "torch" or (detector is not None and detector.backend != "torch"):
        return False
    if isinstance(pixels, CentreCrop):
        return pixels.crop == (pixels.resize_to, pixels.resize_to)
    return isinstance(pixels, Squash)


def upload(photo: DecodedPhoto, device: str) -> Any:
    """The decoded RGB photo as a (3, H, W) float tensor of 0-255 values on ``device``.

    It travels as uint8 (a quarter of the bytes) and becomes float once, on the device, for
    both the detector's letterbox and the crops.
    """
    import torch

    image = photo.image if photo.image.mode == "RGB" else photo.image.convert("RGB")
    array = np.array(image)  # a writable copy: torch refuses read-only buffers
    return torch.from_numpy(array).to(device, non_blocking=True).permute(2, 0, 1).float()


def letterbox(images: Sequence[Any], side: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """Photos fitted into a ``side`` square (aspect kept, centred, grey padding), as a batch.

    Returns the float batch in [0, 1] and, per photo, the scale and the (x, y) offset that map
    decoded-image pixels into the square: ``square = decoded * gain + offset``.
    """
    import torch
    import torch.nn.functional as F

    side = max(STRIDE, int(round(side / STRIDE)) * STRIDE)
    batch = torch.full(
        (len(images), 3, side, side), LETTERBOX_FILL, device=images[0].device, dtype=torch.float32
    )
    gains = np.empty(len(images), np.float64)
    offsets = np.empty((len(images), 2), np.float64)
    for i, image in enumerate(images):
        h, w = image.shape[1:]
        gain = min(side / h, side / w)
        nh, nw = max(1, round(h * gain)), max(1, round(w * gain))
        pixels = image[None].float() / 255
        if (nh, nw) != (h, w):
            pixels = F.interpolate(
                pixels, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True
            )
        top, left = (side - nh) // 2, (side - nw) // 2
        batch[i, :, top : top + nh, left : left + nw] = pixels[0]
        gains[i] = gain
        offsets[i] = (left, top)
    return batch, gains, offsets


def unletterbox(
    det: Detections, gain: float, offset: np.ndarray, size: tuple[int, int]
) -> Detections:
    """Boxes found in the letterboxed square -> decoded-image pixels, clamped to the image."""
    if not len(det):
        return det
    w, h = size
    xyxy = (det.xyxy - np.tile(offset, 2)) / gain
    xyxy = np.clip(xyxy, 0, [w, h, w, h])
    return Detections(xyxy.astype(np.float32), det.confidence, det.labels)


def clip_boxes(boxes: Sequence[tuple[int, int, int, int]], centre_square: bool) -> np.ndarray:
    """The sampling box of each crop: its centred square (CLIP) or the whole box (SigLIP)."""
    out = np.asarray(boxes, np.float64).reshape(-1, 4)
    if centre_square:
        w, h = out[:, 2] - out[:, 0], out[:, 3] - out[:, 1]
        side = np.minimum(w, h)
        out[:, 0] += (w - side) / 2
        out[:, 1] += (h - side) / 2
        out[:, 2] = out[:, 0] + side
        out[:, 3] = out[:, 1] + side
    return out


class DeviceRegionEmbedder(RegionEmbedder):
    """:class:`~indexer.indexing.regions.RegionEmbedder` with the pixels on the device.

    Use it when :func:`supports_device_regions` is true (see :func:`region_step`).
    ``detector=None`` embeds whole photos only.
    """

    def __init__(
        self,
        embedder: ClipEmbedder,
        detector: Detector | None,
        options: DetectOptions,
        timings: dict[str, float] | None = None,
    ) -> None:
        import torch

        if not supports_device_regions(embedder, detector):
            raise ValueError("device regions need PyTorch models and a box-resample family")
        super().__init__(embedder, detector, options, timings)
        self.device = embedder.device  # the device its PyTorch session runs on
        pixels = embedder.pixels
        assert isinstance(pixels, (CentreCrop, Squash))  # what supports_device_regions allows
        self.centre_square = isinstance(pixels, CentreCrop) and pixels.do_center_crop
        self.out_size = pixels.image_size
        self.mean = torch.tensor(pixels.mean.reshape(3), device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(pixels.std.reshape(3), device=self.device).view(1, 3, 1, 1)

    def _detect(self, photos: Sequence[DecodedPhoto], images: Sequence[Any]) -> list[Detections]:
        if self.detector is None:
            return [Detections.empty() for _ in photos]
        batch, gains, offsets = letterbox(images, self.options.imgsz)
        raw = self.detector.detect_tensor(batch, self.options)
        return [
            kept_detections(p, unletterbox(d, g, o, p.image.size), self.options)
            for p, d, g, o in zip(photos, raw, gains, offsets, strict=True)
        ]

    def _crops(self, photo: DecodedPhoto, image: Any, det: Detections) -> Any:
        """(1 + objects, 3, H, W) float pixels in [0, 1]: the whole photo, then each crop."""
        import torch
        from torchvision.ops import roi_align

        w, h = photo.image.size
        boxes = [(0, 0, w, h)]
        boxes += [crop_box(b, self.options.padding, (w, h), photo.scale) for b in det.xyxy]
        rois = torch.from_numpy(clip_boxes(boxes, self.centre_square)).float().to(self.device)
        rois = torch.cat([torch.zeros(len(boxes), 1, device=self.device), rois], dim=1)
        return roi_align(
            image[None].float(),
            rois,
            self.out_size,
            spatial_scale=1.0,
            sampling_ratio=-1,
            aligned=True,
        )

    def embed(self, photos: Sequence[DecodedPhoto]) -> list[NewPhoto]:
        """One :class:`NewPhoto` per photo, in order."""
        if not photos:
            return []
        import torch

        with torch.inference_mode():
            with timed(self.timings, "detect"):
                images = [upload(p, self.device) for p in photos]
                kept = self._detect(photos, images)
            with timed(self.timings, "crop"):
                pixels = torch.cat(
                    [self._crops(p, i, d) for p, i, d in zip(photos, images, kept, strict=True)]
                )
                pixels = (pixels / 255 - self.mean) / self.std
            with timed(self.timings, "embed"):
                vectors = self.embedder.embed_pixels(pixels)
        return photo_records(photos, kept, vectors)


def region_step(
    embedder: ClipEmbedder,
    detector: Detector | None,
    options: DetectOptions,
    timings: dict[str, float] | None = None,
) -> RegionEmbedder:
    """The detect + crop + embed step for these models: on the device when CLIP runs on CUDA."""
    if embedder.device.startswith("cuda") and supports_device_regions(embedder, detector):
        return DeviceRegionEmbedder(embedder, detector, options, timings)
    return RegionEmbedder(embedder, detector, options, timings)

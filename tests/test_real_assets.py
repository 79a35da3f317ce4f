"""Real photos with the real COCO detector (from ../shared/assets; skipped when absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from indexer import Indexer
from indexer.geometry import box_iou
from indexer.store import Photo, Region, Store

# Real COCO detector weights and photos: slow, and skipped where the assets are absent.
pytestmark = pytest.mark.slow


def _labelled_boxes(
    label_file: Path, classes: list[str], w: int, h: int
) -> list[tuple[str, np.ndarray]]:
    out = []
    for line in label_file.read_text().splitlines():
        cls, cx, cy, bw, bh = line.split()
        cx, cy, bw, bh = float(cx) * w, float(cy) * h, float(bw) * w, float(bh) * h
        out.append(
            (classes[int(cls)], np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]))
        )
    return out


@pytest.fixture(scope="module")
def real_index(tmp_path_factory, shared_assets: Path, tiny_clip_dir: Path) -> Path:
    photos = tmp_path_factory.mktemp("real_photos")
    shutil.copy(shared_assets / "photos" / "cats.jpg", photos / "cats.jpg")
    shutil.copy(shared_assets / "photos" / "cat1.webp", photos / "cat1.webp")
    coco = sorted((shared_assets / "coco-dev" / "images").glob("*.jpg"))[:6]
    for p in coco:
        shutil.copy(p, photos / p.name)
    index_dir = tmp_path_factory.mktemp("real") / "index"
    stats = Indexer(
        index_dir,
        clip_model=str(tiny_clip_dir),
        detector_weights=str(shared_assets / "detector" / "yolo11n-coco.pt"),
        device="cpu",
    ).index([photos])
    assert stats.failures == 0 and stats.indexed == 8
    return index_dir


def test_cats_photo_yields_two_cats_where_the_cats_are(real_index: Path) -> None:
    with Store(real_index) as store, store.session() as s:
        photo = s.scalar(select(Photo).where(Photo.path.like("%/cats.jpg")))
        cats = list(
            s.scalars(select(Region).where(Region.photo_id == photo.id, Region.label == "cat"))
        )
    assert (photo.width, photo.height) == (640, 480)
    assert len(cats) == 2
    boxes = sorted((np.array(c.box) for c in cats), key=lambda b: b[0])
    # Two cats lie side by side on a couch: one on the left half, one on the right half.
    left, right = boxes
    assert box_iou(left, np.array([[10, 55, 318, 473]]))[0] > 0.8
    assert box_iou(right, np.array([[337, 25, 639, 373]]))[0] > 0.8
    assert "2 cats" in photo.caption


def test_coco_detections_overlap_labels(real_index: Path, shared_assets: Path) -> None:
    classes = (shared_assets / "coco-dev" / "classes.txt").read_text().split("\n")
    matched = total = 0
    with Store(real_index) as store, store.session() as s:
        for photo in s.scalars(select(Photo).where(Photo.path.like("%/0000%"))):
            label_file = shared_assets / "coco-dev" / "labels" / (Path(photo.path).stem + ".txt")
            if not label_file.exists():
                continue
            regions = list(
                s.scalars(
                    select(Region).where(Region.photo_id == photo.id, Region.kind == "object")
                )
            )
            for name, box in _labelled_boxes(label_file, classes, photo.width, photo.height):
                if (box[2] - box[0]) * (box[3] - box[1]) < 64 * 64:
                    continue  # small labelled objects are often missed by a nano model
                total += 1
                same = [np.array(r.box) for r in regions if r.label == name]
                if same and box_iou(box, np.stack(same)).max() >= 0.5:
                    matched += 1
    assert total >= 5
    assert matched / total >= 0.6, f"only {matched}/{total} large labelled objects were found"


def test_webp_indexed_with_size(real_index: Path) -> None:
    with Store(real_index) as store, store.session() as s:
        photo = s.scalar(select(Photo).where(Photo.path.like("%/cat1.webp")))
    assert (photo.width, photo.height) == (240, 240)


@pytest.mark.parametrize("weights", ["yolov8n-coco.pt", "yolo11n-coco.pt"])
def test_real_yolo_generations_find_the_cats(shared_assets: Path, weights: str) -> None:
    """YOLOv8 and YOLO11 checkpoints load through the same Detector and agree on the cats."""
    from indexer.media.decode import read_photo
    from indexer.models.detector import Detector
    from indexer.settings import DetectOptions

    detector = Detector(str(shared_assets / "detector" / weights), "cpu", backend="torch")
    photo = read_photo(str(shared_assets / "photos" / "cats.jpg"))
    found = detector.detect([photo.image], DetectOptions())[0]
    assert found.labels.count("cat") == 2

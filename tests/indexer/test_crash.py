"""A real crash test: SIGKILL the indexer mid-run, then check nothing is lost or half-written.

The indexer runs in a subprocess over ~40 photos of mixed sizes and is killed once the
committed photo count (read from SQLite by the test, so the kill points do not depend on
machine speed) reaches different values. After every kill the index must be searchable and
free of duplicates, photos without their whole-photo region, and regions without vectors;
the FAISS file may only be stale. A final re-run must give exactly the regions an
uninterrupted run gives, with FAISS and SQLite consistent again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.indexing import Indexer
from indexer.settings import DetectOptions
from indexer.store import DB_NAME, Store
from indexer.store.doctor import check, repair
from tests.fixtures import REPO_ROOT, Models, child_env, committed_photos, make_indexer, region_set
from tests.fixtures.crash import assert_survived_crash

# A killed process at each stage: the suite takes a minute or more.
pytestmark = pytest.mark.slow

N_PHOTOS = 40
BATCH = 4
# Mixed shapes and formats, as in a real folder.
SIZES = ((96, 72), (72, 96), (112, 84), (80, 80), (128, 72))
FORMATS = (".jpg", ".png", ".webp")
IMGSZ, MAX_OBJECTS = 320, 3
OPTIONS = DetectOptions(imgsz=IMGSZ, max_objects=MAX_OBJECTS)

CHILD = f"""
import sys
from indexer.settings import DetectOptions
from indexer.indexing import Indexer

folder, index_dir, clip, yolo, save_every = sys.argv[1:6]
Indexer(
    index_dir, clip_model=clip, detector_weights=yolo, device="cpu", batch_size={BATCH},
    options=DetectOptions(imgsz={IMGSZ}, max_objects={MAX_OBJECTS}), save_every=float(save_every),
).index([folder])
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crash_photos")
    rng = np.random.default_rng(0)
    for i in range(N_PHOTOS):
        w, h = SIZES[i % len(SIZES)]
        sub = folder / f"set{i % 3}"
        sub.mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(sub / f"p{i:02d}{FORMATS[i % len(FORMATS)]}")
    return folder


def crash_indexer(models: Models, index_dir: Path) -> Indexer:
    """The in-process twin of the killed child: same options and batch size."""
    return make_indexer(models, index_dir, options=OPTIONS, batch_size=BATCH)


def run_and_kill(
    photo_dir: Path, index_dir: Path, clip_dir: Path, yolo_path: Path, *, at: int, save_every: float
) -> int | None:
    """Start an indexer and SIGKILL it once ``at`` photos are committed.

    Returns the photo count seen at the kill, or None when the run finished first.
    """
    env = child_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(photo_dir),
            str(index_dir),
            str(clip_dir),
            str(yolo_path),
            str(save_every),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    db = index_dir / DB_NAME
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            seen = committed_photos(db)
            if seen >= at:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return seen
            time.sleep(0.01)
        if proc.poll() is None:
            pytest.fail("the indexer subprocess neither progressed nor finished in 120 s")
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_at_any_point_loses_nothing(
    photo_dir: Path, tiny_clip_dir: Path, tiny_yolo_path: Path, tmp_path: Path, models: Models
) -> None:
    embedder = models.embedder

    reference_dir = tmp_path / "reference"
    stats = crash_indexer(models, reference_dir).index([photo_dir])
    assert stats.indexed == N_PHOTOS and stats.failures == 0
    expected = region_set(reference_dir)
    assert len(expected) > N_PHOTOS  # object regions too, not only whole photos

    index_dir = tmp_path / "crashed"
    kills: list[int] = []
    # (kill once this many photos are committed, FAISS save interval in the child)
    for at, save_every in ((1, 0.0), (16, 60.0), (28, 0.0)):
        seen = run_and_kill(
            photo_dir, index_dir, tiny_clip_dir, tiny_yolo_path, at=at, save_every=save_every
        )
        if seen is not None:
            kills.append(seen)
        assert_survived_crash(index_dir, embedder)
    assert len([k for k in kills if k < N_PHOTOS]) >= 2, f"too few kills landed mid-run: {kills}"

    resumed = crash_indexer(models, index_dir)
    stats = resumed.index([photo_dir])
    assert stats.failures == 0
    assert stats.indexed + stats.unchanged == N_PHOTOS
    assert stats.indexed < N_PHOTOS  # committed work was kept, not redone
    assert region_set(index_dir) == expected

    with Store(index_dir) as store:
        health = check(store)
        assert health.consistent, health.problems
        assert health.vectors == store.counts().regions
        index, from_file = store.load_vectors()
        assert from_file and index.ntotal == health.vectors
    assert not [p for p in os.listdir(index_dir) if p.endswith(".tmp")]


def _small_index(photo_dir: Path, tmp_path: Path, models: Models) -> tuple[Path, Path]:
    small = tmp_path / "small"
    small.mkdir()
    for p in sorted(photo_dir.rglob("*.jpg"))[:2]:
        (small / p.name).write_bytes(p.read_bytes())
    index_dir = tmp_path / "index"
    crash_indexer(models, index_dir).index([small])
    return small, index_dir


def test_doctor_removes_temp_files_of_a_killed_save(
    photo_dir: Path, tmp_path: Path, models: Models
) -> None:
    """A writer killed inside a FAISS save leaves its temp file; doctor clears it."""
    _, index_dir = _small_index(photo_dir, tmp_path, models)
    leftover = index_dir / ".vectors-k1ll3d.tmp"
    leftover.write_bytes(b"\0" * 100)

    actions = repair(str(index_dir))
    assert not leftover.exists()
    assert any("temporary FAISS files" in a for a in actions), actions
    with Store(index_dir) as store:
        assert check(store).consistent


def test_next_run_removes_temp_files_of_a_killed_save(
    photo_dir: Path, tiny_clip_dir: Path, tiny_yolo_path: Path, tmp_path: Path, models: Models
) -> None:
    """Temp files are as big as the FAISS index: the next writer must not let them pile up."""
    small, index_dir = _small_index(photo_dir, tmp_path, models)
    leftover = index_dir / ".vectors-k1ll3d.tmp"
    leftover.write_bytes(b"\0" * 100)
    indexer = Indexer(
        index_dir,
        clip_model=str(tiny_clip_dir),
        detector_weights=str(tiny_yolo_path),
        device="cpu",
    )
    stats = indexer.index([small])  # nothing changed: no model loads, but the file goes
    assert stats.indexed == 0 and indexer.embedder is None
    assert not leftover.exists()


def _text_state(index_dir: Path) -> tuple[set[tuple[str, str]], int, int]:
    """((file name, text line) pairs, photos read, photos) of an index."""
    with Store(index_dir) as store:
        names = {p.id: Path(p.path).name for p, _ in store.iter_photos()}
        lines = {
            (names[pid], t.text)
            for pid, texts in store.texts_of_photos(list(names)).items()
            for t in texts
        }
        counts = store.counts()
    return lines, counts.read, counts.photos


def test_sigkill_with_ocr_commits_photos_with_their_text(
    photo_dir: Path,
    tiny_clip_dir: Path,
    tiny_yolo_path: Path,
    tmp_path: Path,
    models: Models,
    text_reader,
    rendered_words,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    for item in rendered_words:
        shutil.copy(item.path, folder / "set0" / item.path.name)
    total = N_PHOTOS + len(rendered_words)
    reference = tmp_path / "reference"
    make_indexer(
        models, reference, options=OPTIONS, batch_size=BATCH, ocr=True, text_reader=text_reader
    ).index([folder])
    expected_lines, read, photos = _text_state(reference)
    assert read == photos == total and expected_lines

    index_dir = tmp_path / "crashed"
    monkeypatch.setenv("OBJSEARCH_OCR", "1")  # the child reads its setting from the environment
    kills = []
    for at in (4, 24):
        seen = run_and_kill(
            folder, index_dir, tiny_clip_dir, tiny_yolo_path, at=at, save_every=60.0
        )
        kills.append(seen)
        assert_survived_crash(index_dir, models.embedder)
        _, read, photos = _text_state(index_dir)
        assert read == photos  # each photo was committed with its text, never without
    assert any(k is not None and k < total for k in kills), kills
    monkeypatch.delenv("OBJSEARCH_OCR")
    make_indexer(
        models, index_dir, options=OPTIONS, batch_size=BATCH, ocr=True, text_reader=text_reader
    ).index([folder])
    assert _text_state(index_dir) == (expected_lines, total, total)

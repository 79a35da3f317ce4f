"""Duplicates planted by copying, resaving and resizing photos; nothing is ever deleted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from indexer.errors import QueryError
from indexer.store import Store
from retrieval.cli import app
from retrieval.duplicates import find_duplicates, similar_pairs
from tests.fixtures import Models, make_indexer
from tests.fixtures.exif_photos import write_photo

# The tiny random CLIP puts unrelated photos close together (cosines up to ~0.995 here,
# where a real CLIP gives ~0.5), while copies stay above 0.999: the tests use a threshold
# between the two, as people would pick one for their model.
THRESHOLD = 0.998


def distinct_photo(seed: int) -> Image.Image:
    """Photos the tiny CLIP tells apart: bold stripes/blocks with seeded colours and layout."""
    rng = np.random.default_rng(seed)
    h, w = 192, 256
    arr = np.zeros((h, w, 3), np.uint8)
    cells = rng.integers(2, 6)
    colours = rng.integers(0, 256, (cells, cells, 3))
    for y in range(cells):
        for x in range(cells):
            arr[y * h // cells : (y + 1) * h // cells, x * w // cells : (x + 1) * w // cells] = (
                colours[y, x]
            )
    return Image.fromarray(arr)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, models: Models) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dups")
    original = write_photo(root / "a" / "original.jpg", image=distinct_photo(1), quality=95)
    (root / "b").mkdir()
    shutil.copy(original, root / "b" / "copy.jpg")
    with Image.open(original) as im:
        im.resize((128, 96), Image.LANCZOS).save(root / "b" / "small.jpg", quality=80)
        im.save(root / "c-resaved.png")
    other = write_photo(root / "a" / "other.jpg", image=distinct_photo(2), quality=95)
    shutil.copy(other, root / "other-copy.jpg")
    for seed in range(3, 7):
        write_photo(root / "misc" / f"unique_{seed}.jpg", image=distinct_photo(seed))
    index_dir = tmp_path_factory.mktemp("dups-index") / "index"
    make_indexer(models, index_dir).index([root])
    return root, index_dir


def test_similar_pairs_exact_and_ivf_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((3000, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    copies = base[:50] + 0.02 * rng.standard_normal((50, 32)).astype(np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    vectors = np.vstack([base, copies])
    sims = vectors @ vectors.T

    def pairs(mask: np.ndarray) -> set[tuple[int, int]]:
        return {(int(i), int(j)) for i, j in zip(*np.nonzero(mask), strict=True) if i < j}

    def found() -> set[tuple[int, int]]:
        return {
            (int(i), int(j))
            for a, b in similar_pairs(vectors, 0.95)
            for i, j in zip(a, b, strict=True)
        }

    truth = pairs(sims >= 0.95)
    borderline = pairs(np.abs(sims - 0.95) < 1e-5)  # float rounding may go either way
    assert len(truth) >= 50
    assert found() - borderline == truth - borderline
    import retrieval.duplicates as module

    monkeypatch.setattr(module, "EXACT_SEARCH_MAX", 100)  # force the inverted-file path
    approx = found()
    assert approx - borderline <= truth and len(approx) >= 0.95 * len(truth)


def test_planted_duplicates_are_grouped(planted: tuple[Path, Path]) -> None:
    root, index_dir = planted
    with Store(index_dir) as store:
        groups = find_duplicates(store, threshold=THRESHOLD)
    by_members = {
        frozenset(Path(p.path).relative_to(root).as_posix() for p in g.photos): g for g in groups
    }
    near = by_members[frozenset({"a/original.jpg", "b/copy.jpg", "b/small.jpg", "c-resaved.png"})]
    exact = by_members[frozenset({"a/other.jpg", "other-copy.jpg"})]
    assert len(groups) == 2
    assert near.kind == "near" and exact.kind == "exact"
    # The largest pixel count is kept; the tie between same-size copies goes to the larger file.
    assert Path(near.keep.path).name in {"original.jpg", "copy.jpg", "c-resaved.png"}
    assert near.keep.pixels == 256 * 192 and all(p.pixels <= near.keep.pixels for p in near.photos)
    small = next(p for p in near.photos if p.path.endswith("small.jpg"))
    assert (
        (small.width, small.height) == (128, 96)
        and not small.keep
        and small.similarity >= THRESHOLD
    )
    assert sum(p.keep for p in near.photos) == 1 and sum(p.keep for p in exact.photos) == 1


def test_cli_duplicates_json_deletes_nothing(planted: tuple[Path, Path]) -> None:
    root, index_dir = planted
    before = sorted(p for p in root.rglob("*") if p.is_file())
    result = CliRunner().invoke(
        app, ["duplicates", "--index", str(index_dir), "--threshold", str(THRESHOLD), "--json"]
    )
    assert result.exit_code == 0, result.output
    groups = json.loads(result.stdout)
    assert len(groups) == 2
    for group in groups:
        assert group["kind"] in ("exact", "near")
        assert group["keep"] in [p["path"] for p in group["photos"]]
        for p in group["photos"]:
            assert set(p) >= {"path", "size", "width", "height", "pixels", "keep"}
    assert sorted(p for p in root.rglob("*") if p.is_file()) == before
    table = CliRunner().invoke(
        app, ["duplicates", "--index", str(index_dir), "--threshold", str(THRESHOLD)]
    )
    assert table.exit_code == 0 and "keep" in table.stdout and "original" in table.stdout


def test_threshold_one_leaves_out_the_resized_copy(planted: tuple[Path, Path]) -> None:
    _, index_dir = planted
    with Store(index_dir) as store:
        groups = find_duplicates(store, threshold=1.0)
    paths = {Path(p.path).name for g in groups for p in g.photos}
    assert {"original.jpg", "copy.jpg", "other.jpg", "other-copy.jpg"} <= paths
    assert "small.jpg" not in paths


@pytest.mark.parametrize("threshold", ["0", "1.5", "-0.2"])
def test_bad_threshold(planted: tuple[Path, Path], threshold: str) -> None:
    _, index_dir = planted
    result = CliRunner().invoke(
        app, ["duplicates", "--index", str(index_dir), "--threshold", threshold]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error:") and "--threshold" in result.stderr
    with Store(index_dir) as store, pytest.raises(QueryError):
        find_duplicates(store, float(threshold))


def test_a_deleted_copy_leaves_its_group_while_faiss_keeps_it(
    planted: tuple[Path, Path], tmp_path: Path
) -> None:
    """A copy deleted by a later run is a tombstone in FAISS, and gone from duplicates."""
    root, index_dir = planted
    copy_dir = tmp_path / "index"
    shutil.copytree(index_dir, copy_dir)
    with Store(copy_dir) as store:
        gone = store.photo_states([str(root / "other-copy.jpg")])
        store.commit_batch([], remove_photo_ids=[s.id for s in gone.values()])
        status = store.vector_status()
        assert status.main is not None and status.tombstones > 0  # the file still holds it
        groups = find_duplicates(store, threshold=THRESHOLD)
    paths = {Path(p.path).name for g in groups for p in g.photos}
    assert len(groups) == 1 and "other-copy.jpg" not in paths and "other.jpg" not in paths

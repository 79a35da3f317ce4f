"""Search filters, checked against brute force over the SQLite rows and stored vectors."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from indexer.errors import QueryError
from indexer.store import Store, decode_vector
from retrieval import Searcher, SearchFilters
from tests.fixtures import Models, cli_search, make_indexer
from tests.fixtures.exif_photos import NICE, PARIS, SAN_FRANCISCO, make_library, write_photo


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, models: Models) -> tuple[Path, Path]:
    root = make_library(tmp_path_factory.mktemp("library"))
    index_dir = tmp_path_factory.mktemp("filters") / "index"
    stats = make_indexer(models, index_dir).index([root])
    assert stats.indexed == 11 and stats.failures == 0
    with Store(index_dir) as store, store.session() as s, s.begin():
        # Plant a second label on every third object so label filters have something to pick.
        s.connection().exec_driver_sql(
            "UPDATE regions SET label = 'dog' WHERE kind = 'object' AND id % 3 = 0"
        )
    return root, index_dir


def rows(index_dir: Path) -> list[dict]:
    """Every region with its photo's columns and its vector, straight from SQLite."""
    with Store(index_dir) as store, store.session() as s:
        result = s.connection().exec_driver_sql(
            "SELECT r.id, r.photo_id, r.kind, r.label, r.vector, p.path, p.taken_at, "
            "p.camera, p.gps_lat, p.gps_lon, p.caption FROM regions r JOIN photos p "
            "ON p.id = r.photo_id"
        )
        keys = [
            "id", "photo_id", "kind", "label", "vector", "path", "taken_at", "camera", "lat",
            "lon", "caption",
        ]  # fmt: skip
        out = [dict(zip(keys, row, strict=True)) for row in result]
        dim = store.dim()
    for row in out:
        row["vector"] = decode_vector(row["vector"], dim)
    return out


def km_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (spherical law of cosines; independent of the code under test)."""
    la1, lo1, la2, lo2 = (math.radians(v) for v in (*a, *b))
    c = math.sin(la1) * math.sin(la2) + math.cos(la1) * math.cos(la2) * math.cos(lo2 - lo1)
    return 6371.0088 * math.acos(max(-1.0, min(1.0, c)))


def passes(row: dict, f: SearchFilters) -> bool:
    when = row["taken_at"]
    if f.after and not (when and datetime.fromisoformat(when) >= datetime.fromisoformat(f.after)):
        return False
    if f.before and not (when and datetime.fromisoformat(when) < datetime.fromisoformat(f.before)):
        return False
    if f.folders and not any(
        os.path.commonpath([row["path"], folder]) == folder for folder in f.folders
    ):
        return False
    if f.labels and (row["kind"] != "object" or (row["label"] or "").lower() not in f.labels):
        return False
    if f.camera and f.camera.lower() not in (row["camera"] or "").lower():
        return False
    if f.near:
        lat, lon, km = f.near
        if row["lat"] is None or km_between((row["lat"], row["lon"]), (lat, lon)) > km:
            return False
    return True


def brute_force(
    index_dir: Path, query: np.ndarray, f: SearchFilters
) -> tuple[dict[int, float], dict[int, float]]:
    """Scores of the regions that pass ``f``, and each passing photo's best score."""
    regions: dict[int, float] = {}
    photos: dict[int, float] = {}
    for row in rows(index_dir):
        if not passes(row, f):
            continue
        score = float(row["vector"] @ query)
        if f.min_score is not None and score < f.min_score:
            continue
        regions[row["id"]] = score
        photos[row["photo_id"]] = max(score, photos.get(row["photo_id"], -2.0))
    return regions, photos


def check_against_brute_force(
    searcher: Searcher, index_dir: Path, f: SearchFilters, top_k: int = 5
) -> list:
    """The results are the best ``top_k`` passing photos, each shown by its best region.

    Equal scores (the tiny random model gives some) may be ordered either way, so ranks are
    compared through scores.
    """
    query = searcher.query_vector(text="a photo of a cat")
    results = searcher.search(text="a photo of a cat", top_k=top_k, filters=f)
    regions, photos = brute_force(index_dir, query, f)
    best = sorted(photos.values(), reverse=True)[:top_k]
    assert len(results) == len(best)
    np.testing.assert_allclose([r.score for r in results], best, atol=1e-4)
    for r in results:
        assert r.region_id in regions, "every result passes the filters"
        assert regions[r.region_id] == pytest.approx(r.score, abs=1e-4)
        assert photos[r.photo_id] == pytest.approx(r.score, abs=1e-4), "its photo's best region"
    cutoff = best[-1] if best else 0.0
    clear = {pid for pid, score in photos.items() if score > cutoff + 1e-4}
    assert clear <= {r.photo_id for r in results}, "no better photo is left out"
    return results


FILTERS = {
    "after-year": lambda root: SearchFilters(after="2023"),
    "before-year": lambda root: SearchFilters(before=2022),
    "year-range": lambda root: SearchFilters(after="2021-01-01", before="2023-07"),
    "folder": lambda root: SearchFilters(folders=(str(root / "trips" / "2021"),)),
    "two-folders": lambda root: SearchFilters(folders=(str(root / "home"), str(root / "phone"))),
    "label": lambda root: SearchFilters(labels=("DOG",)),
    "camera": lambda root: SearchFilters(camera="iphone"),
    "near-nice": lambda root: SearchFilters(near=(NICE[0], NICE[1], 5.0)),
    "near-string": lambda root: SearchFilters(near=f"{PARIS[0]},{PARIS[1]},2"),
    "combined": lambda root: SearchFilters(after=2020, camera="apple", labels=("cat",)),
}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_filter_matches_brute_force(library: tuple[Path, Path], models: Models, name: str) -> None:
    root, index_dir = library
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        results = check_against_brute_force(searcher, index_dir, FILTERS[name](root))
    assert results, f"the fixture has photos for {name}"


def test_min_score_keeps_exactly_the_photos_above_it(
    library: tuple[Path, Path], models: Models
) -> None:
    _, index_dir = library
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        everything = searcher.search(text="a photo of a cat", top_k=50)
        threshold = everything[3].score - 1e-6  # four photos score at least this
        f = SearchFilters(min_score=threshold, folders=())
        results = check_against_brute_force(searcher, index_dir, f, top_k=50)
    assert len(results) == 4 and min(r.score for r in results) >= threshold


def test_rare_filter_still_returns_k(library: tuple[Path, Path], models: Models) -> None:
    """One folder of three photos: all three come back with top_k=3, whatever their rank."""
    root, index_dir = library
    f = SearchFilters(folders=(str(root / "trips" / "2021"),))
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        results = searcher.search(text="a dog", top_k=3, filters=f)
    assert sorted(Path(r.image).name for r in results) == ["city_0.jpg", "city_1.jpg", "city_2.jpg"]


def test_label_filter_returns_only_that_label(library: tuple[Path, Path], models: Models) -> None:
    _, index_dir = library
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        results = searcher.search(
            text="an animal", top_k=20, filters=SearchFilters(labels=("dog",))
        )
    assert results and all(r.kind == "object" and r.label == "dog" for r in results)


def test_results_carry_metadata(library: tuple[Path, Path], models: Models) -> None:
    root, index_dir = library
    f = SearchFilters(folders=(str(root / "phone"),))
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        [hit] = searcher.search(text="a photo", top_k=5, filters=f)
    data = hit.to_dict()
    assert data["taken_at"] == "2024-02-29T23:59:00"
    assert data["date_source"] == "exif-original"
    assert data["camera"] == "Apple iPhone 15 Pro"
    assert data["gps"] == pytest.approx(
        {"lat": SAN_FRANCISCO[0], "lon": SAN_FRANCISCO[1]}, abs=1e-4
    )


def test_match_filter_uses_file_names_and_labels(
    library: tuple[Path, Path], models: Models
) -> None:
    _, index_dir = library
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        by_name = searcher.search(text="a photo", top_k=20, filters=SearchFilters(match="beach"))
        by_label = searcher.search(text="a photo", top_k=20, filters=SearchFilters(match="cats"))
        none = searcher.search(text="a photo", top_k=20, filters=SearchFilters(match="zebra"))
    assert sorted(Path(r.image).name for r in by_name) == [f"beach_{i}.jpg" for i in range(3)]
    with Store(index_dir) as store:
        with_cats = {
            p.path for p, regions in store.iter_photos() if any(r.label == "cat" for r in regions)
        }
    assert {r.image for r in by_label} == with_cats
    assert none == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"after": "2023-13"}, "after:"),
        ({"before": "last week"}, "before:"),
        ({"after": "2024", "before": "2023"}, "contradict"),
        ({"near": "48.8,2.3"}, "near:"),
        ({"near": "91,0,5"}, "near:"),
        ({"near": (1.0, 2.0, -1.0)}, "near:"),
        ({"min_score": "high"}, "min_score:"),
        ({"labels": ("",)}, "labels:"),
        ({"match": "  !! "}, "match:"),
    ],
)
def test_bad_filters_are_query_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        SearchFilters(**kwargs)


def test_dates_accept_years_months_days_and_instants() -> None:
    assert SearchFilters(after=2023).after == "2023-01-01T00:00:00"
    assert SearchFilters(after="2023-07").after == "2023-07-01T00:00:00"
    assert SearchFilters(before="2023-07-14").before == "2023-07-14T00:00:00"
    assert SearchFilters(before="2023-07-14T18:30").before == "2023-07-14T18:30:00"


def test_folder_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert SearchFilters(folders=("~/Photos",)).folders == (str(tmp_path / "Photos"),)


# -- command line --------------------------------------------------------------------------


def test_cli_filters_match_the_api(library: tuple[Path, Path], models: Models) -> None:
    root, index_dir = library
    result = cli_search(
        models, index_dir, "a cat", "--json", "--after", "2021", "--before", "2024",
        "--in", str(root / "trips"), "--camera", "apple", "--near", f"{PARIS[0]},{PARIS[1]},5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    f = SearchFilters(
        after="2021", before="2024", folders=(str(root / "trips"),), camera="apple",
        near=(PARIS[0], PARIS[1], 5),
    )  # fmt: skip
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        api = searcher.search(text="a cat", top_k=10, filters=f)
    assert [h["region_id"] for h in hits] == [r.region_id for r in api]
    assert {Path(h["image"]).name for h in hits} == {f"city_{i}.jpg" for i in range(3)}
    assert all(h["camera"] == "Apple iPhone 12" and h["taken_at"].startswith("2021") for h in hits)


def test_cli_label_and_in_are_repeatable(library: tuple[Path, Path], models: Models) -> None:
    root, index_dir = library
    result = cli_search(
        models, index_dir, "a cat", "--json", "--label", "dog", "--label", "cat",
        "--in", str(root / "home"), "--in", str(root / "phone"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits and all(h["label"] in ("dog", "cat") for h in hits)
    assert all(Path(h["image"]).parent.name in ("home", "phone") for h in hits)


def test_cli_nothing_matches_is_empty_with_a_note(
    library: tuple[Path, Path], models: Models
) -> None:
    _, index_dir = library
    result = cli_search(models, index_dir, "a cat", "--json", "--after", "2030")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "no photo matches the filters" in result.stderr.lower()


@pytest.mark.parametrize(
    "args",
    [
        ["--after", "20233"],
        ["--after", "2024", "--before", "2020"],
        ["--near", "abc"],
        ["--min-score", "2"],
    ],
)
def test_cli_bad_filters_one_line(
    library: tuple[Path, Path], models: Models, args: list[str]
) -> None:
    _, index_dir = library
    result = cli_search(models, index_dir, "a cat", *args)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())  # one message (the terminal may wrap it)
    assert message.startswith("error:") and message.count("error:") == 1, result.stderr
    assert "Traceback" not in result.output


def test_a_repeated_filter_follows_new_photos(tmp_path: Path, models: Models) -> None:
    """The allowed set of a filter is remembered, but not past a change to the index."""
    folder = tmp_path / "photos" / "kept"
    write_photo(folder / "a.jpg", seed=1, taken="2020:01:01 10:00:00")
    index_dir = tmp_path / "index"
    make_indexer(models, index_dir).index([tmp_path / "photos"])
    f = SearchFilters(folders=(str(folder),), after=2020)
    with Searcher(index_dir, embedder=models.embedder) as searcher:
        first = searcher.search(text="a photo", top_k=10, filters=f)
        assert [Path(r.image).name for r in first] == ["a.jpg"]
        write_photo(folder / "b.jpg", seed=2, taken="2021:01:01 10:00:00")
        make_indexer(models, index_dir).index([tmp_path / "photos"])
        again = searcher.search(text="a photo", top_k=10, filters=f)
    assert sorted(Path(r.image).name for r in again) == ["a.jpg", "b.jpg"]

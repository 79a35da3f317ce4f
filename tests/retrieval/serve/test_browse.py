"""The browsing endpoints (labels, a label's objects, folders, cameras, timeline,
duplicates), search paging and the localize heat grid, against a real server process."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from indexer.store import KIND_OBJECT, Store
from tests.fixtures.server import API, Server, cli_json


def photos_and_regions(index_dir: Path) -> list:
    with Store(index_dir) as store:
        return list(store.iter_photos(vectors=False))


def get(server: Server, path: str, **params: object):
    with server.client() as client:
        return client.get(f"{API}{path}", params=params)


def test_labels_count_every_object_and_name_the_most_confident(library_server: Server) -> None:
    objects = [r for _, regions in photos_and_regions(library_server.index_dir) for r in regions]
    objects = [r for r in objects if r.kind == KIND_OBJECT]
    labels = get(library_server, "/labels").json()
    assert {entry["label"]: entry["objects"] for entry in labels} == Counter(
        r.label for r in objects
    )
    for entry in labels:
        best = max((r for r in objects if r.label == entry["label"]), key=lambda r: r.confidence)
        assert entry["confidence"] == pytest.approx(best.confidence, abs=1e-4)
        assert entry["thumb_url"] == f"{API}/regions/{entry['region_id']}/thumb"
        assert get(library_server, f"/regions/{entry['region_id']}/thumb").status_code == 200


def test_regions_of_a_label_page_by_confidence(library_server: Server) -> None:
    label = get(library_server, "/labels").json()[0]
    first = get(library_server, "/regions", label=label["label"], limit=5).json()
    assert first["total"] == label["objects"] and len(first["regions"]) == 5
    assert first["regions"][0]["region_id"] == label["region_id"]
    seen, offset = [], 0
    while offset < first["total"]:
        page = get(library_server, "/regions", label=label["label"], offset=offset, limit=7)
        regions = page.json()["regions"]
        seen += regions
        offset += 7
    assert len({r["region_id"] for r in seen}) == label["objects"]  # pages do not overlap
    confidences = [r["confidence"] for r in seen]
    assert confidences == sorted(confidences, reverse=True)
    assert {r["label"] for r in seen} == {label["label"]}
    assert all(
        os.path.isabs(r["image"]) and r["photo_url"].endswith(str(r["photo_id"])) for r in seen
    )
    none = get(library_server, "/regions", label="no such label").json()
    assert none == {"label": "no such label", "total": 0, "offset": 0, "regions": []}


def test_folders_cameras_and_timeline_summarise_the_photos(library_server: Server) -> None:
    photos = [p for p, _ in photos_and_regions(library_server.index_dir)]
    folders = get(library_server, "/folders").json()
    assert {f["folder"]: f["photos"] for f in folders} == Counter(
        os.path.dirname(p.path) for p in photos
    )
    cameras = get(library_server, "/cameras").json()
    assert {c["camera"]: c["photos"] for c in cameras} == Counter(
        p.camera for p in photos if p.camera
    )
    assert len(cameras) >= 2
    timeline = get(library_server, "/timeline").json()
    months = Counter(p.taken_at[:7] for p in photos if p.taken_at)
    assert timeline["months"] == [{"month": m, "photos": n} for m, n in sorted(months.items())]
    assert timeline["undated"] == sum(1 for p in photos if not p.taken_at)
    assert len(timeline["months"]) >= 4


@pytest.mark.parametrize("threshold", [None, 1.0])
def test_duplicates_match_the_cli(library_server: Server, threshold: float | None) -> None:
    extra = () if threshold is None else ("--threshold", str(threshold))
    params = {} if threshold is None else {"threshold": threshold}
    groups = get(library_server, "/duplicates", **params).json()
    expected = cli_json("duplicates", "--index", str(library_server.index_dir), *extra)
    assert groups and len(groups) == len(expected)
    for got, want in zip(groups, expected, strict=True):
        assert got["kind"] == want["kind"] and got["keep"] == want["keep"]
        assert [p["path"] for p in got["photos"]] == [p["path"] for p in want["photos"]]
        assert [p["similarity"] for p in got["photos"]] == [p["similarity"] for p in want["photos"]]
        for p in got["photos"]:
            assert p["thumb_url"] == f"{API}/photos/{p['photo_id']}/image?max_side=256"
    if threshold == 1.0:  # only the byte-identical copy is left
        (group,) = groups
        assert group["kind"] == "exact"
        assert {Path(p["path"]).name for p in group["photos"]} == {"beach_0.jpg", "beach_copy.jpg"}


def test_search_offset_continues_the_ranking(library_server: Server) -> None:
    both = get(library_server, "/search", q="a cat", kind="object", group="object", k=8).json()
    first = get(library_server, "/search", q="a cat", kind="object", group="object", k=4)
    second = get(library_server, "/search", q="a cat", kind="object", group="object", k=4, offset=4)
    ids = [h["region_id"] for h in first.json() + second.json()]
    assert ids == [h["region_id"] for h in both]
    assert [h["rank"] for h in second.json()] == [5, 6, 7, 8]
    region = both[0]["region_id"]
    similar = get(library_server, f"/regions/{region}/similar", k=6).json()
    later = get(library_server, f"/regions/{region}/similar", k=3, offset=3).json()
    assert [h["region_id"] for h in later] == [h["region_id"] for h in similar[3:]]
    past_the_end = get(library_server, "/search", q="a cat", k=5, offset=1000).json()
    assert past_the_end == []


def test_localize_heat_grid_covers_the_photo(library_server: Server) -> None:
    photo = get(library_server, "/search", q="a beach", kind="image", k=1).json()[0]
    with library_server.client() as client:
        found = client.post(
            f"{API}/localize",
            data={
                "prompts": ["sand", "sky"],
                "photo_id": str(photo["photo_id"]),
                "heatmap": "true",
            },
        ).json()
        plain = client.post(
            f"{API}/localize", data={"prompts": ["sand"], "photo_id": str(photo["photo_id"])}
        ).json()
    assert "heatmap" not in plain["prompts"][0]
    for prompt in found["prompts"]:
        rows, cols = prompt["grid"]
        heat = prompt["heatmap"]
        assert len(heat["values"]) == rows and {len(r) for r in heat["values"]} == {cols}
        assert max(max(r) for r in heat["values"]) == pytest.approx(1.0)
        assert all(0 <= v <= 1 for r in heat["values"] for v in r)
        cw, ch = heat["cell"]
        assert (cols - 1) * cw < found["width"] <= cols * cw + 1
        assert (rows - 1) * ch < found["height"] <= rows * ch + 1


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/regions", {}),
        ("/regions", {"label": ""}),
        ("/regions", {"label": "cat", "limit": 0}),
        ("/regions", {"label": "cat", "limit": 10_000}),
        ("/regions", {"label": "cat", "offset": -1}),
        ("/regions", {"label": "cat", "offset": "x"}),
        ("/duplicates", {"threshold": 0}),
        ("/duplicates", {"threshold": 1.5}),
        ("/duplicates", {"threshold": "high"}),
        ("/search", {"q": "a cat", "offset": -1}),
        ("/search", {"q": "a cat", "offset": 10**9}),
    ],
)
def test_bad_browse_parameters_are_422(library_server: Server, path: str, params: dict) -> None:
    response = get(library_server, path, **params)
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("Invalid parameters")


def test_browse_shapes_are_documented(library_server: Server) -> None:
    schema = library_server.client().get("/openapi.json").json()
    for path in ("labels", "regions", "folders", "cameras", "timeline", "duplicates"):
        response = schema["paths"][f"{API}/{path}"]["get"]["responses"]["200"]
        assert "$ref" in str(response["content"]["application/json"]["schema"]), path

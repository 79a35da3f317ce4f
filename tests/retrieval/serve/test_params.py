"""Search filters and query shaping as HTTP query parameters, against a real server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures.server import API, Server, an_object, cli_json


def cli_args(server: Server, models, *args: str) -> list[str]:
    return [
        "search", *args, "--index", str(server.index_dir),
        "--clip-model", str(models.clip_dir), "--device", "cpu",
    ]  # fmt: skip


def test_filters_and_shaping_match_the_cli(server: Server, models, served_photos: Path) -> None:
    folder = str(next(p for p in served_photos.iterdir() if p.is_dir()))
    params = [
        ("q", "a red square"), ("k", "5"), ("label", "cat"), ("in", folder),
        ("not", "a blue circle"), ("not_weight", "0.3"), ("group", "object"),
    ]  # fmt: skip
    got = server.client().get(f"{API}/search", params=params).json()
    expected = cli_json(
        *cli_args(
            server, models, "a red square", "-k", "5", "--label", "cat", "--in", folder,
            "--not", "a blue circle", "--not-weight", "0.3", "--group", "object",
        )
    )  # fmt: skip
    assert got, "the filters keep some crops in the sub-folder"
    assert [h["region_id"] for h in got] == [h["region_id"] for h in expected]
    assert all(h["image"].startswith(folder + "/") and h["label"] == "cat" for h in got)
    assert all(h["kind"] == "object" for h in got)


def test_group_object_lists_several_crops_of_one_photo(server: Server) -> None:
    params = {"q": "a cat", "k": 10, "group": "object"}
    hits = server.client().get(f"{API}/search", params=params).json()
    assert len(hits) == 10
    assert len({h["photo_id"] for h in hits}) < len(hits)


def test_a_filter_matching_nothing_is_an_empty_result(server: Server) -> None:
    with server.client() as client:
        assert client.get(f"{API}/search", params={"q": "a cat", "label": "giraffe"}).json() == []
        one = an_object(server)
        response = client.get(
            f"{API}/regions/{one['region_id']}/similar", params={"label": "giraffe"}
        )
    assert response.status_code == 200 and response.json() == []


def test_similar_takes_filters(server: Server) -> None:
    one = an_object(server)
    response = server.client().get(
        f"{API}/regions/{one['region_id']}/similar", params={"kind": "object", "label": "cat"}
    )
    hits = response.json()
    assert response.status_code == 200 and hits
    assert all(h["label"] == "cat" for h in hits)
    assert one["region_id"] not in {h["region_id"] for h in hits}


def test_upload_with_text_and_filters(server: Server) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "JPEG")
    response = server.client().post(
        f"{API}/search",
        params={"label": "cat", "group": "object"},
        data={"q": "a red square", "image_weight": "0.7", "k": "3"},
        files={"image": ("query.jpg", buffer.getvalue(), "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    hits = response.json()
    assert len(hits) == 3 and all(h["label"] == "cat" for h in hits)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"after": "last tuesday"}, "cannot read"),
        ({"after": "2024", "before": "2023"}, "contradict"),
        ({"near": "48.8,2.3"}, "near:"),
        ({"near": "95,2.3,5"}, "out of range"),
        ({"label": " "}, "label is empty"),
        ({"not": " "}, "not"),
        ({"match": "   "}, "match"),
    ],
)
def test_bad_filter_values_are_400_with_a_message(server: Server, params: dict, words: str) -> None:
    response = server.client().get(f"{API}/search", params={"q": "a cat", **params})
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert "--" not in response.json()["error"]  # named as the API names it, not as a CLI flag


@pytest.mark.parametrize(
    "params",
    [{"min_score": "high"}, {"group": "album"}, {"not_weight": "-1"}],
)
def test_invalid_parameter_types_are_422(server: Server, params: dict) -> None:
    response = server.client().get(f"{API}/search", params={"q": "a cat", **params})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("Invalid parameters")

"""Every API endpoint and every error status, against a real server process."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from indexer.store import Store
from tests.fixtures.server import (
    API,
    Server,
    an_object,
    build_index,
    cli_json,
    photo_ids,
    run_server,
)
from tests.model_factory import EXIF_PHOTO_NAME


def jpeg(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG"
    return image


def test_text_search_matches_cli_json(server: Server, models) -> None:
    with server.client() as client:
        got = client.get(f"{API}/search", params={"q": "a red square", "k": 4}).json()
    expected = cli_json(
        "search", "a red square", "--index", str(server.index_dir), "-k", "4",
        "--clip-model", str(models.clip_dir), "--device", "cpu",
    )  # fmt: skip
    assert len(got) == 4
    for hit, cli_hit in zip(got, expected, strict=True):
        assert hit["thumb_url"] == f"{API}/regions/{hit['region_id']}/thumb"
        assert hit["photo_url"] == f"{API}/photos/{hit['photo_id']}"
        del hit["thumb_url"], hit["photo_url"]
        assert hit.keys() == cli_hit.keys()
        assert hit["region_id"] == cli_hit["region_id"]
        assert hit["score"] == pytest.approx(cli_hit["score"], abs=1e-5)


@pytest.mark.parametrize("kind", ["object", "image"])
def test_search_kind(server: Server, kind: str) -> None:
    hits = server.client().get(f"{API}/search", params={"q": "a cat", "kind": kind}).json()
    assert hits and {h["kind"] for h in hits} == {kind}


def test_search_with_refine_sets_refined_boxes(server: Server) -> None:
    params = {"q": "a cat", "kind": "object", "k": 2, "refine": "true", "refine_top": 2}
    hits = server.client().get(f"{API}/search", params=params).json()
    assert len(hits) == 2
    assert "refined_box" in hits[0]
    for hit in hits:
        if hit["refined_box"] is not None:
            x1, y1, x2, y2 = hit["refined_box"]
            assert 0 <= x1 < x2 <= hit["width"] and 0 <= y1 < y2 <= hit["height"]


def test_image_search_finds_the_uploaded_photo(server: Server, served_photos: Path) -> None:
    path = served_photos / "photo_00.jpg"
    with server.client() as client, open(path, "rb") as fh:
        response = client.post(
            f"{API}/search",
            files={"image": ("query.jpg", fh, "image/jpeg")},
            data={"k": "3", "kind": "image"},
        )
    assert response.status_code == 200, response.text
    hits = response.json()
    assert hits[0]["image"] == str(path)
    assert hits[0]["score"] > 0.99


def test_similar_leaves_the_region_out(server: Server) -> None:
    hit = an_object(server)
    similar = server.client().get(f"{API}/regions/{hit['region_id']}/similar", params={"k": 5})
    assert similar.status_code == 200
    results = similar.json()
    assert 0 < len(results) <= 5
    assert hit["region_id"] not in [r["region_id"] for r in results]
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))


def test_photo_metadata_lists_every_region(server: Server, served_photos: Path) -> None:
    pid = photo_ids(server.index_dir)[str(served_photos / "photo_00.jpg")]
    body = server.client().get(f"{API}/photos/{pid}").json()
    with Store(server.index_dir) as store:
        photo, regions = store.photo_with_regions(pid)
    assert body["photo_id"] == pid and body["image"] == photo.path
    assert (body["width"], body["height"], body["caption"]) == (
        photo.width,
        photo.height,
        photo.caption,
    )
    assert [r["region_id"] for r in body["regions"]] == [r.id for r in regions]
    assert {r["kind"] for r in body["regions"]} == {"image", "object"}


def test_photo_image_is_upright_and_downscaled(server: Server, served_photos: Path) -> None:
    pid = photo_ids(server.index_dir)[str(served_photos / EXIF_PHOTO_NAME)]
    with server.client() as client:
        full = jpeg(client.get(f"{API}/photos/{pid}/image"))
        small = jpeg(client.get(f"{API}/photos/{pid}/image", params={"max_side": 100}))
    assert full.size == (300, 400)  # stored 400x300 with EXIF orientation 6
    red = full.convert("RGB").getpixel((280, 20))  # the red block is now top-right
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert small.size == (75, 100)


def test_thumbnail_is_cached_once(server: Server) -> None:
    hit = an_object(server)
    url = f"{API}/regions/{hit['region_id']}/thumb"
    cached = server.index_dir / "thumbs" / f"{hit['region_id']}-64.jpg"
    assert not cached.exists()
    with server.client() as client:
        first = client.get(url, params={"size": 64})
        thumb = jpeg(first)
        assert max(thumb.size) == 64
        assert cached.is_file()
        made = cached.stat().st_mtime_ns
        second = client.get(url, params={"size": 64})
    assert second.content == first.content == cached.read_bytes()
    assert cached.stat().st_mtime_ns == made, "a cached thumbnail is never made again"


def test_status_matches_cli(server: Server) -> None:
    got = server.client().get(f"{API}/status").json()
    expected = cli_json("status", "--index", str(server.index_dir))
    assert got.pop("watch") is None  # no --watch (see test_watch_serve.py)
    assert got == expected
    assert got["photos"] > 0 and got["objects"] > 0 and got["consistent"]


def test_localize_on_indexed_photo_and_upload(server: Server, served_photos: Path) -> None:
    path = served_photos / "photo_00.jpg"
    pid = photo_ids(server.index_dir)[str(path)]
    prompts = {"prompts": ["a cat", "a red square"], "max_windows": "16"}
    with server.client() as client:
        by_id = client.post(
            f"{API}/localize", data={**prompts, "photo_id": str(pid), "annotate": "true"}
        )
        with open(path, "rb") as fh:
            by_upload = client.post(
                f"{API}/localize", data=prompts, files={"image": ("p.jpg", fh, "image/jpeg")}
            )
    assert by_id.status_code == 200, by_id.text
    body = by_id.json()
    assert [p["prompt"] for p in body["prompts"]] == ["a cat", "a red square"]
    for prompt in body["prompts"]:
        for box in prompt["boxes"]:
            x1, y1, x2, y2 = box["box"]
            assert 0 <= x1 < x2 <= body["width"] and 0 <= y1 < y2 <= body["height"]
    drawing = Image.open(io.BytesIO(base64.b64decode(body["annotated_png_base64"])))
    assert drawing.format == "PNG" and drawing.size == (640, 480)
    assert by_upload.status_code == 200, by_upload.text
    assert by_upload.json()["prompts"] == body["prompts"]  # same pixels, same boxes
    assert "annotated_png_base64" not in by_upload.json()


def test_page_and_openapi_are_served(server: Server) -> None:
    with server.client() as client:
        page = client.get("/")
        script = client.get("/static/app.js")
        schema = client.get("/openapi.json").json()
    assert page.status_code == 200 and "<title>objsearch</title>" in page.text
    assert script.status_code == 200 and "/api/v1" in script.text
    for path in ("/search", "/regions/{region_id}/similar", "/photos/{photo_id}",
                 "/photos/{photo_id}/image", "/regions/{region_id}/thumb", "/status",
                 "/localize"):  # fmt: skip
        assert f"{API}{path}" in schema["paths"]


# -- errors ---------------------------------------------------------------------------------


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and body["error"]
    assert "Traceback" not in body["error"]
    return body["error"]


def test_bad_queries_are_400(server: Server) -> None:
    with server.client() as client:
        assert "empty" in error(client.get(f"{API}/search", params={"q": "   "}), 400)
        not_image = client.post(
            f"{API}/search", files={"image": ("notes.jpg", b"just some text", "image/jpeg")}
        )
        assert "not a usable image" in error(not_image, 400)
        empty = client.post(f"{API}/search", files={"image": ("e.jpg", b"", "image/jpeg")})
        error(empty, 400)
        no_prompt = client.post(f"{API}/localize", data={"prompts": " ", "photo_id": "1"})
        error(no_prompt, 400)
        both_missing = client.post(f"{API}/localize", data={"prompts": "a cat"})
        error(both_missing, 400)


def test_unknown_ids_are_404(server: Server) -> None:
    with server.client() as client:
        for path in (
            "/photos/999999",
            "/photos/999999/image",
            "/regions/999999/thumb",
            "/regions/999999/similar",
            "/photos/0",
            "/photos/99999999999999999999999",
        ):
            assert error(client.get(API + path), 404) == "Not found."
        located = client.post(f"{API}/localize", data={"prompts": "a cat", "photo_id": "999999"})
        assert error(located, 404) == "Not found."


def test_invalid_parameters_are_422(server: Server) -> None:
    with server.client() as client:
        for params in ({"q": "x", "k": 0}, {"q": "x", "k": "ten"}, {"q": "x", "kind": "both!"}):
            assert "Invalid parameters" in error(client.get(f"{API}/search", params=params), 422)
        # q missing: fine with ocr= (words read in photos), else a 400 that says so
        assert "ocr" in error(client.get(f"{API}/search"), 400)
        error(client.get(f"{API}/photos/1/image", params={"max_side": 1}), 422)
        error(client.get(f"{API}/regions/1/thumb", params={"size": 100000}), 422)
        error(client.post(f"{API}/search", data={"k": "3"}), 422)  # no image field


def test_upload_over_the_limit_is_413(server: Server) -> None:
    big = b"\xff\xd8" + b"\0" * 21_000_000
    with server.client() as client:
        response = client.post(f"{API}/search", files={"image": ("big.jpg", big, "image/jpeg")})
    assert "limit" in error(response, 413)


def test_upload_over_the_limit_without_length_is_413(server: Server) -> None:
    """A chunked body (no Content-Length) is cut off while streaming."""
    boundary = "xxBOUNDARYxx"

    def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="b.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        for _ in range(25):
            yield b"\0" * 1_000_000
        yield f"\r\n--{boundary}--\r\n".encode()

    with server.client() as client:
        response = client.post(
            f"{API}/search",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert "limit" in error(response, 413)


def test_words_read_in_photos_over_http(text_server, rendered_words) -> None:
    from indexer.textfold import fold

    client = text_server.client()
    item = rendered_words[0]
    hits = client.get(f"{API}/search", params={"ocr": item.word.lower()}).json()
    assert hits[0]["kind"] == "text" and fold(item.word) in fold(hits[0]["text"])
    assert hits[0]["region_id"] is None and hits[0]["image"].endswith(item.path.name)
    assert client.get(hits[0]["thumb_url"]).headers["content-type"] == "image/jpeg"
    info = client.get(hits[0]["photo_url"]).json()
    assert any(fold(item.word) in fold(t["text"]) for t in info["texts"])
    assert all(t["kind"] == "text" and len(t["box"]) == 4 for t in info["texts"])
    filtered = client.get(f"{API}/search", params={"q": "a sign", "ocr": item.word}).json()
    assert [h["image"] for h in filtered] == [hits[0]["image"]]
    assert client.get(f"{API}/search", params={"ocr": "xylophonequartz"}).json() == []
    for params in ({}, {"ocr": "!!"}, {"ocr": "sign", "refine": "true"}):
        answer = client.get(f"{API}/search", params=params)
        assert answer.status_code == 400 and "error" in answer.json(), params


def test_a_model_that_cannot_load_is_503_not_a_client_error(
    models, sample_photos_dir: Path, tmp_path: Path
) -> None:
    """The server starts on an empty index (no model yet); once photos are indexed, the
    model it is told to use cannot load: the client is told to come back, not blamed."""
    index_dir = tmp_path / "index"
    Store(index_dir, create=True).close()
    with run_server(index_dir, tmp_path / "no-such-model") as server:
        build_index(models, sample_photos_dir, index_dir)
        response = server.client().get(f"{API}/search", params={"q": "a cat"})
        assert response.status_code == 503, response.text
        assert response.json() == {
            "error": "The model cannot be loaded right now; see the server's log."
        }
        assert "model problem" in server.output() and "no-such-model" in server.output()

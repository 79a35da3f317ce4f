"""The API's response models: /docs shows every answer's shape, and answers fit them."""

from __future__ import annotations

import pytest

from tests.fixtures.server import API, Server, an_object


def _schema_name(response: dict) -> str:
    """The component a documented JSON response refers to (through a list for arrays)."""
    schema = response["content"]["application/json"]["schema"]
    schema = schema.get("items", schema)
    return schema["$ref"].rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        ("get", "/search", "SearchHit"),
        ("post", "/search", "SearchHit"),
        ("get", "/regions/{region_id}/similar", "SearchHit"),
        ("get", "/photos/{photo_id}", "PhotoInfo"),
        ("get", "/status", "Status"),
        ("post", "/localize", "Localization"),
        ("post", "/login", "LoginOk"),
    ],
)
def test_docs_show_every_answer_and_the_error_shape(
    server: Server, method: str, path: str, model: str
) -> None:
    schema = server.client().get("/openapi.json").json()
    responses = schema["paths"][API + path][method]["responses"]
    assert _schema_name(responses["200"]) == model
    errors = [code for code in responses if code[0] in "45"]
    assert errors and all(_schema_name(responses[code]) == "ErrorBody" for code in errors)


def test_jpeg_routes_say_they_answer_jpeg(server: Server) -> None:
    schema = server.client().get("/openapi.json").json()
    for path in ("/regions/{region_id}/thumb", "/photos/{photo_id}/image"):
        assert "image/jpeg" in schema["paths"][API + path]["get"]["responses"]["200"]["content"]


def test_answers_carry_every_documented_field(server: Server) -> None:
    """The response models filter answers: a field they forgot would vanish; none does."""
    with server.client() as client:
        hit = an_object(server)
        photo = client.get(f"{API}/photos/{hit['photo_id']}").json()
        status = client.get(f"{API}/status").json()
    assert {"rank", "score", "box", "label", "region_id", "thumb_url", "photo_url"} <= set(hit)
    assert photo["photo_id"] == hit["photo_id"] and photo["regions"]
    assert {r["region_id"] for r in photo["regions"]} >= {hit["region_id"]}
    assert status["photos"] > 0 and status["consistent"] is True and "watch" in status

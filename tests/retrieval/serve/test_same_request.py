"""One request, three surfaces: the CLI, the HTTP API and the Python API answer alike.

Each builds a :class:`~retrieval.search.request.SearchRequest` from its own names; the same
request must give the same results (ids, ranks, scores, boxes), and the same mistake the
same refusal, named as each surface names the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from retrieval.cli import app
from retrieval.search import Searcher, SearchFilters, SearchRequest
from retrieval.search.fields import FieldError
from tests.fixtures.server import API, Server, an_object, cli_json

URL_KEYS = ("thumb_url", "photo_url")


def _cli(server: Server, models: Any, args: list[str]) -> list[str]:
    return [
        "search", *args, "--index", str(server.index_dir),
        "--clip-model", str(models.clip_dir), "--device", "cpu",
    ]  # fmt: skip


def _same(left: list[dict], right: list[dict]) -> None:
    """Equal results: the same regions in the same order, equal fields, scores to 1e-5."""
    assert [h["region_id"] for h in left] == [h["region_id"] for h in right]
    for a, b in zip(left, right, strict=True):
        a = {k: v for k, v in a.items() if k not in URL_KEYS}
        b = {k: v for k, v in b.items() if k not in URL_KEYS}
        assert a.pop("score") == pytest.approx(b.pop("score"), abs=1e-5)
        assert a == b


# (CLI arguments, HTTP query parameters, Python request fields): one request each.
CASES = [
    (["a red square", "-k", "4"], {"q": "a red square", "k": 4}, {"text": "a red square", "top_k": 4}),
    (
        ["a cat", "-k", "6", "--label", "cat", "--group", "object", "--not", "a blue circle"],
        {"q": "a cat", "k": 6, "label": "cat", "group": "object", "not": "a blue circle"},
        {"text": "a cat", "top_k": 6, "filters": SearchFilters(labels=["cat"]),
         "group": "object", "negatives": ("a blue circle",)},
    ),
    (
        ["a blue circle", "--photos-only", "--min-score", "-1", "--not-weight", "0.2", "--not", "a cat"],
        {"q": "a blue circle", "kind": "image", "min_score": -1, "not_weight": 0.2, "not": "a cat"},
        {"text": "a blue circle", "kind": "image", "filters": SearchFilters(min_score=-1),
         "not_weight": 0.2, "negatives": ("a cat",)},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("cli_args", "params", "fields"), CASES)
def test_cli_http_and_python_give_the_same_results(
    server: Server, models: Any, cli_args: list[str], params: dict, fields: dict
) -> None:
    response = server.client().get(f"{API}/search", params=params)
    assert response.status_code == 200, response.text
    over_http = response.json()
    on_cli = cli_json(*_cli(server, models, cli_args))
    with Searcher(server.index_dir, clip_model=str(models.clip_dir), device="cpu") as searcher:
        in_python = [r.to_dict() for r in searcher.find(SearchRequest(**fields))]
    assert over_http, "each case finds something"
    _same(over_http, on_cli)  # type: ignore[arg-type]
    _same(over_http, [dict(h, box=h["box"] and list(h["box"])) for h in in_python])


def test_more_like_this_region_is_the_same_on_both(server: Server, models: Any) -> None:
    region = an_object(server)["region_id"]
    over_http = server.client().get(f"{API}/regions/{region}/similar", params={"k": 5}).json()
    on_cli = cli_json(*_cli(server, models, ["--like-region", str(region), "-k", "5"]))
    assert over_http and region not in {h["region_id"] for h in over_http}
    _same(over_http, on_cli)  # type: ignore[arg-type]


# (CLI arguments, HTTP parameters, the CLI's name, the API's name, the Python request, field)
MISTAKES = [
    (["a cat", "--not", " "], {"q": "a cat", "not": " "}, "--not", "not",
     lambda: SearchRequest("a cat", negatives=(" ",)), "negatives"),
    (["a cat", "--after", "soon"], {"q": "a cat", "after": "soon"}, "--after", "after",
     lambda: SearchRequest("a cat", filters=SearchFilters(after="soon")), "after"),
    (["a cat", "--in", " "], {"q": "a cat", "in": " "}, "--in", "in",
     lambda: SearchRequest("a cat", filters=SearchFilters(folders=[" "])), "folders"),
    (["  "], {"q": "  "}, "QUERY", "q", lambda: SearchRequest("  "), "text"),
    (["a cat", "-k", "0"], {"q": "a cat", "k": 0}, "--top-k", "k",
     lambda: SearchRequest("a cat", top_k=0), "top_k"),
    (["a cat", "--refine-top", "50"], {"q": "a cat", "refine_top": 50}, "--refine-top",
     "refine_top", lambda: SearchRequest("a cat", refine_top=50), "refine_top"),
]  # fmt: skip


@pytest.mark.parametrize(("cli_args", "params", "flag", "name", "python", "field"), MISTAKES)
def test_the_same_mistake_is_refused_everywhere_by_its_local_name(
    server: Server,
    models: Any,
    cli_args: list[str],
    params: dict,
    flag: str,
    name: str,
    python: Callable[[], SearchRequest],
    field: str,
) -> None:
    result = CliRunner().invoke(app, _cli(server, models, cli_args))
    assert result.exit_code == 2, result.output
    assert f"error: {flag}:" in result.stderr and "Traceback" not in result.output
    response = server.client().get(f"{API}/search", params=params)
    assert response.status_code in (400, 422), response.text  # 422: a parameter's type/range
    message = response.json()["error"]
    assert f"{name}:" in message and "--" not in message
    with pytest.raises(FieldError) as caught:
        python()
    assert caught.value.field == field

"""The CLI around text in photos: index --ocr, search --ocr, export and status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.textfold import fold
from retrieval.cli import app
from tests.fixtures import Models, cli_ocr_index, cli_search


@pytest.fixture(scope="module")
def ocr_index(models: Models, rendered_words, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ocr-cli")
    return cli_ocr_index(models, [item.path for item in rendered_words], root)


def test_search_ocr_finds_each_word_first_with_its_line(
    models: Models, ocr_index: Path, rendered_words
) -> None:
    for item in rendered_words:
        part = item.word[1:-1]  # inside the word, any case
        run = cli_search(models, ocr_index, "--ocr", part.lower(), "--json")
        assert run.exit_code == 0, run.output
        hits = json.loads(run.stdout)
        assert hits and Path(hits[0]["image"]).name == item.path.name, (item.word, hits)
        top = hits[0]
        assert top["kind"] == "text" and fold(part) in fold(top["text"])
        assert len(top["box"]) == 4 and 0 < top["confidence"] <= 1
        assert {"photo_id", "width", "height", "taken_at", "score"} <= set(top)


def test_a_word_found_nowhere_is_an_empty_result_with_a_note(
    models: Models, ocr_index: Path
) -> None:
    run = cli_search(models, ocr_index, "--ocr", "xylophonequartz", "--json")
    assert run.exit_code == 0
    assert json.loads(run.stdout) == []
    assert "note: no text read" in run.stderr


def test_ocr_filters_a_semantic_query_and_bad_uses_are_refused(
    models: Models, ocr_index: Path, rendered_words
) -> None:
    word = rendered_words[0].word
    run = cli_search(models, ocr_index, "a sign", "--ocr", word, "--json")
    assert run.exit_code == 0, run.output
    hits = json.loads(run.stdout)
    assert [Path(h["image"]).name for h in hits] == [rendered_words[0].path.name]
    assert hits[0]["kind"] in ("image", "object")
    for args in (["--ocr", "!!"], ["--ocr", "sign", "--photos-only"], ["--ocr", "x", "--not", "y"]):
        bad = cli_search(models, ocr_index, *args)
        assert bad.exit_code == 2 and "error:" in bad.output, (args, bad.output)


def test_export_and_status_show_the_text(ocr_index: Path, rendered_words) -> None:
    run = CliRunner().invoke(app, ["export", "--index", str(ocr_index)])
    assert run.exit_code == 0
    records = [json.loads(line) for line in run.stdout.splitlines()]
    texts = {
        Path(r["image"]).name: [x["text"] for x in r["regions"] if x["kind"] == "text"]
        for r in records
    }
    for item in rendered_words:
        assert any(fold(item.word) in fold(t) for t in texts[item.path.name])
    status = CliRunner().invoke(app, ["status", "--index", str(ocr_index), "--json"])
    health = json.loads(status.stdout)
    assert health["read"] == len(rendered_words) and health["texts"] >= len(rendered_words)
    assert health["consistent"] and health["vectors"] == health["images"] + health["objects"]

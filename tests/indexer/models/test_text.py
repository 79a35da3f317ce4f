"""The torch-free text encoder: the same tokens and vectors as ClipEmbedder, or None."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.models.clip import ClipEmbedder
from indexer.models.openvino import text_ir_dir
from indexer.models.source import find_source, model_folder
from indexer.models.text import (
    RECIPE_NAME,
    TOKENIZER_NAME,
    OpenVinoTextEncoder,
    QueryRecipe,
    load_text_encoder,
    save_recipe,
)
from indexer.settings import openvino_available
from tests.fixtures import child_env

pytestmark = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")


# Case, punctuation, contractions, non-Latin scripts, runs of spaces, and one text far past
# every tokenizer's maximum length (truncation).
TEXTS = [
    "a dog",
    "A DOG!!  running",
    "it's the cat's toy; don't",
    "ünïcödé straße, 猫の写真 фотография",
    "x " * 200,
    "a photo of a cat sitting on a red sofa",
]


def _pair(folder: Path, precision: str = "fp32") -> tuple[ClipEmbedder, OpenVinoTextEncoder]:
    full = ClipEmbedder(str(folder), "cpu", precision=precision, backend="openvino")
    light = load_text_encoder(str(folder), "cpu", precision=precision)
    assert full.backend == "openvino"
    assert isinstance(light, OpenVinoTextEncoder)
    return full, light


@pytest.mark.parametrize(
    "fixture",
    [
        "tiny_clip_dir",
        "tiny_siglip_gemma_dir",
        pytest.param("tiny_siglip2_dir", marks=pytest.mark.slow),
        pytest.param("tiny_altclip_dir", marks=pytest.mark.slow),
    ],
)
def test_same_tokens_and_vectors_as_the_full_embedder(request, fixture: str) -> None:
    folder = request.getfixturevalue(fixture)
    full, light = _pair(folder)
    assert (light.model_id, light.family, light.dim) == (full.model_id, full.family, full.dim)
    assert light.templates == full.templates
    for batch in ([t, "a"] for t in TEXTS):  # padded against a short text
        want, got = full.tokenize(batch), light.tokenize(batch)
        assert want.keys() == got.keys()
        for name in want:
            assert got[name].dtype == np.int64
            np.testing.assert_array_equal(got[name], want[name])
    np.testing.assert_allclose(light.embed_texts(TEXTS), full.embed_texts(TEXTS), atol=1e-6)
    np.testing.assert_allclose(light.embed_text("a dog"), full.embed_text("a dog"), atol=1e-6)
    np.testing.assert_allclose(light.fingerprint(), full.fingerprint(), atol=1e-6)


def test_siglip_pads_to_max_length(tiny_siglip_gemma_dir: Path) -> None:
    _, light = _pair(tiny_siglip_gemma_dir)
    assert light.recipe.padding == "max_length"
    assert list(light.tokenize(["a dog", "a"])) == ["input_ids"]  # no attention mask
    assert light.tokenize(["a dog"])["input_ids"].shape == (1, light.recipe.max_length)


def test_bf16_light_vectors_equal_the_full_ones(tiny_clip_dir: Path) -> None:
    full, light = _pair(tiny_clip_dir, "bf16")
    np.testing.assert_allclose(light.embed_texts(TEXTS), full.embed_texts(TEXTS), atol=1e-6)


def test_sentencepiece_only_tokenizer_needs_the_full_embedder(tiny_siglip_dir: Path) -> None:
    full = ClipEmbedder(str(tiny_siglip_dir), "cpu", precision="fp32", backend="openvino")
    key = find_source(str(tiny_siglip_dir)).files_key()
    assert key is not None
    assert (text_ir_dir(full.family.name, key) / "model.xml").is_file()
    assert not (text_ir_dir(full.family.name, key) / RECIPE_NAME).exists()
    assert load_text_encoder(str(tiny_siglip_dir), "cpu") is None


def test_none_unless_openvino_on_the_cpu(tiny_clip_dir: Path, monkeypatch) -> None:
    _pair(tiny_clip_dir)  # the conversion and its recipe are cached
    assert load_text_encoder(str(tiny_clip_dir), "cpu", backend="torch") is None
    assert load_text_encoder(str(tiny_clip_dir), "cuda") is None
    monkeypatch.setenv("OBJSEARCH_BACKEND", "torch")
    assert load_text_encoder(str(tiny_clip_dir), "cpu") is None
    monkeypatch.delenv("OBJSEARCH_BACKEND")
    # Bad settings are the full embedder's to report.
    assert load_text_encoder(str(tiny_clip_dir), "cpu", precision="fp8") is None
    assert load_text_encoder(str(tiny_clip_dir), "cpu", backend="onnx") is None
    assert load_text_encoder(str(tiny_clip_dir), "cpu") is not None


def test_none_when_nothing_is_cached(tiny_clip_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OBJSEARCH_CACHE", str(tmp_path / "empty-cache"))
    assert load_text_encoder(str(tiny_clip_dir), "cpu") is None
    assert load_text_encoder(str(tmp_path / "no-such-model"), "cpu") is None
    assert load_text_encoder("org/not-downloaded", "cpu") is None


def test_files_changed_since_conversion_mean_none(tiny_clip_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_clip_dir, tmp_path / "clip"))
    _pair(copy)
    assert load_text_encoder(str(copy), "cpu") is not None
    config = copy / "config.json"
    config.write_text(config.read_text() + "\n")  # another size: another files key
    assert load_text_encoder(str(copy), "cpu") is None


def test_a_damaged_cache_entry_means_none(tiny_clip_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_clip_dir, tmp_path / "clip"))
    os.utime(copy / "config.json", ns=(1, 1))  # its own files key: damage only its own entry
    _pair(copy)
    ir = text_ir_dir("clip", find_source(str(copy)).files_key() or "")
    (ir / TOKENIZER_NAME).write_text("{not json")
    assert load_text_encoder(str(copy), "cpu") is None
    (ir / RECIPE_NAME).write_text('{"family": "clip"}')  # fields missing
    assert load_text_encoder(str(copy), "cpu") is None


def test_hub_ids_are_found_in_the_hugging_face_cache(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """A hub id resolves to its snapshot of ``main``, with the key transformers' lookup gives.

    In a fresh process: the hub libraries read the cache location once, at import.
    """
    repo = tmp_path / "hub" / "models--acme--tiny-clip"
    snapshot = repo / "snapshots" / "0123abcd"
    shutil.copytree(tiny_clip_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    code = (
        "import json, numpy as np\n"
        "from indexer.models.clip import ClipEmbedder\n"
        "from indexer.models.source import find_source, folder_key, model_folder\n"
        "from indexer.models.text import load_text_encoder\n"
        "folder = model_folder('acme/tiny-clip')\n"
        "full = ClipEmbedder('acme/tiny-clip', 'cpu', precision='fp32', backend='openvino')\n"
        "light = load_text_encoder('acme/tiny-clip', 'cpu', precision='fp32')\n"
        "print(json.dumps({'folder': folder, 'other': model_folder('acme/other'),\n"
        "    'same_key': folder_key(folder) == find_source('acme/tiny-clip').files_key(),\n"
        "    'ids': [full.model_id, light.model_id],\n"
        "    'gap': float(np.abs(light.embed_text('a cat') - full.embed_text('a cat')).max())}))\n"
    )
    env = child_env(
        **{
            "HF_HUB_CACHE": str(tmp_path / "hub"),
            "HF_HUB_OFFLINE": "1",
            "OBJSEARCH_CACHE": str(tmp_path / "cache"),
        }
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["folder"] == str(snapshot) and found["other"] is None
    assert found["same_key"]
    assert found["ids"] == ["acme/tiny-clip", "acme/tiny-clip"]
    assert found["gap"] < 1e-6
    assert model_folder(str(tiny_clip_dir)) == str(tiny_clip_dir)


def test_recipe_is_written_once_and_read_back(tmp_path: Path) -> None:
    recipe = QueryRecipe("clip", 32, 77, "longest", "right", "right", 3, "<pad>")
    assert QueryRecipe.from_json(recipe.to_json()) == recipe
    assert not save_recipe(tmp_path / "missing", recipe, "{}")  # no conversion folder
    assert save_recipe(tmp_path, recipe, '{"tokenizer": 1}')
    assert json.loads((tmp_path / TOKENIZER_NAME).read_text()) == {"tokenizer": 1}
    other = QueryRecipe("clip", 64, 77, "longest", "right", "right", 3, "<pad>")
    assert not save_recipe(tmp_path, other, "{}")  # the first recipe stays
    assert QueryRecipe.from_json((tmp_path / RECIPE_NAME).read_text()) == recipe
    assert sorted(os.listdir(tmp_path)) == [RECIPE_NAME, TOKENIZER_NAME]  # no temp files
    (tmp_path / TOKENIZER_NAME).unlink()  # half a record is written again
    assert save_recipe(tmp_path, recipe, '{"tokenizer": 2}')
    assert json.loads((tmp_path / TOKENIZER_NAME).read_text()) == {"tokenizer": 2}


def test_openvino_imports_without_its_converter() -> None:
    """The runtime loads without ``convert_model``'s imports, which stay one access away."""
    code = (
        "import sys\n"
        "from indexer.models.openvino import import_openvino\n"
        "ov = import_openvino()\n"
        "print(ov.Core is not None, 'openvino.tools.ovc' in sys.modules)\n"
        "print(callable(ov.convert_model), 'openvino.tools.ovc' in sys.modules)\n"
        "from openvino import convert_model\n"
        "print(convert_model is ov.convert_model)\n"
    )
    env = child_env()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out == ["True", "False", "True", "True", "True"]

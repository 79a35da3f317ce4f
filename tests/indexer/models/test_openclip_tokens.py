"""open_clip's tokenizer rebuilt as a ``tokenizers`` JSON gives open_clip's own ids."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.models.openclip_tokens import END, PAD_ID, START, build_tokenizer, clean_query
from indexer.models.text import recipe_tokenizer

open_clip = pytest.importorskip("open_clip")

TEXTS = [
    "a dog",
    "A Photo of a CAT sitting on a red sofa.",
    "  runs of   spaces and\ttabs\nand lines ",
    "Café crème brûlée, naïve façade",
    "don't I'll we've they're it's",
    "fish &amp; chips &lt;3 &amp;amp;",
    "1234 apples, 5.6 kg!!! (really?)",
    "日本語のテキスト 和 中文",
    "emoji 🐶🐱 test",
    "“curly quotes” — and an en–dash",
    "ＦＵＬＬＷＩＤＴＨ letters",
    "snake_case and CamelCase-words/with/slashes",
    "x" * 300,
    " ".join(["word"] * 100),
    "",
    "a <start_of_text> in the middle",
]


@pytest.fixture(scope="module")
def ours():
    from indexer.models.openclip import query_recipe
    from indexer.models.openclip_files import OpenClipConfig

    recipe = query_recipe(OpenClipConfig({"embed_dim": 8, "text_cfg": {}}, {}))
    return recipe_tokenizer(recipe, build_tokenizer().to_str())


def test_ids_equal_open_clips_tokenizer(ours) -> None:
    expected = open_clip.get_tokenizer("ViT-B-32")(TEXTS).numpy()
    got = np.array([e.ids for e in ours.encode_batch([clean_query(t) for t in TEXTS])])
    assert got.shape == expected.shape == (len(TEXTS), 77)
    for text, row, want in zip(TEXTS, got, expected, strict=True):
        assert row.tolist() == want.tolist(), text


def test_frame_padding_and_truncation(ours) -> None:
    vocab = ours.get_vocab()
    short, long = ours.encode_batch([clean_query("a dog"), clean_query("dog " * 200)])
    assert short.ids[0] == vocab[START] and short.ids[3] == vocab[END]
    assert short.ids[4:] == [PAD_ID] * 73
    assert len(long.ids) == 77 and long.ids[-1] == vocab[END]  # end token kept last


def test_clean_query_lowercases_and_unescapes() -> None:
    assert clean_query("  Fish &amp;amp;  CHIPS ") == "fish & chips"

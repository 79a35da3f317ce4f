"""Model identity: same family, size and probe vector means the same model, whatever its name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.models.identity import ModelIdentity, model_mismatch, model_record


def _unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


BASE = ModelIdentity("org/clip", 8, _unit(1), "clip")
META = {k: str(v) for k, v in model_record(BASE).items()}


def test_the_record_holds_what_identifies_the_model() -> None:
    record = model_record(BASE)
    assert record["clip_model"] == "org/clip" and record["model_family"] == "clip"
    assert record["embed_dim"] == 8
    np.testing.assert_allclose(json.loads(str(record["clip_probe"])), BASE.probe, atol=1e-6)


@pytest.mark.parametrize(
    "other",
    [
        BASE,
        ModelIdentity("/local/copy/of/clip", 8, BASE.probe, "clip"),  # same weights, other path
        ModelIdentity("org/clip", 8, (BASE.probe + 0.01 * _unit(2)), "clip"),  # bf16-like noise
    ],
)
def test_the_same_weights_are_the_same_model(other: ModelIdentity) -> None:
    assert model_mismatch(META, other) is None


@pytest.mark.parametrize(
    ("other", "words"),
    [
        (ModelIdentity("org/other", 8, _unit(3), "clip"), "not comparable"),
        (ModelIdentity("org/clip", 16, _unit(1, 16), "clip"), "(16-d)"),
        (ModelIdentity("org/siglip", 8, BASE.probe, "siglip"), "SigLIP"),
    ],
)
def test_other_weights_size_or_family_are_refused_with_the_fix(
    other: ModelIdentity, words: str
) -> None:
    problem = model_mismatch(META, other)
    assert problem is not None and words in problem
    assert "--clip-model org/clip" in problem


def test_an_index_from_before_families_counts_as_clip() -> None:
    old = {k: v for k, v in META.items() if k != "model_family"}
    assert model_mismatch(old, BASE) is None
    assert model_mismatch(old, ModelIdentity("org/siglip", 8, BASE.probe, "siglip")) is not None


def test_a_live_model_is_identified_by_its_probe(models) -> None:
    identity = ModelIdentity.of(models.embedder)
    assert identity.dim == models.embedder.dim and identity.family == models.embedder.family.name
    assert (
        model_mismatch({k: str(v) for k, v in model_record(models.embedder).items()}, identity)
        is None
    )

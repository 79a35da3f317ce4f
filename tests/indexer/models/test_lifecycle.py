"""The model lifecycle: one choice record, one factory, models safe to share between threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.errors import UsageError
from indexer.models.lifecycle import ModelChoice, model_lock, serialised
from indexer.settings import DEFAULT_CLIP_MODEL, ENV_CLIP_MODEL, ENV_DEVICE
from retrieval.search import Searcher

THREADS = 8


@pytest.mark.parametrize(
    ("given", "env", "recorded", "expected"),
    [
        ("given/model", "env/model", "index/model", "given/model"),
        (None, "env/model", "index/model", "env/model"),
        (None, None, "index/model", "index/model"),
        (None, None, None, DEFAULT_CLIP_MODEL),
    ],
)
def test_the_model_is_settled_once_in_one_order(
    monkeypatch: pytest.MonkeyPatch,
    given: str | None,
    env: str | None,
    recorded: str | None,
    expected: str,
) -> None:
    if env is None:
        monkeypatch.delenv(ENV_CLIP_MODEL, raising=False)
    else:
        monkeypatch.setenv(ENV_CLIP_MODEL, env)
    choice = ModelChoice(given, "cpu", "fp32", "openvino").with_model(recorded)
    assert choice == ModelChoice(expected, "cpu", "fp32", "openvino")


class _Probe:
    """Records the most threads ever inside its methods at once."""

    def __init__(self) -> None:
        self.inside: dict[int, int] = {}  # thread -> how deep it is
        self.most = 0

    @serialised
    def work(self, depth: int = 0) -> int:
        me = threading.get_ident()
        self.inside[me] = self.inside.get(me, 0) + 1
        self.most = max(self.most, len(self.inside))
        time.sleep(0.002)
        if depth:
            self.work(depth - 1)  # reentrant: a locked method may call another
        self.inside[me] -= 1
        if not self.inside[me]:
            del self.inside[me]
        return depth


def test_serialised_methods_run_one_call_at_a_time_per_instance() -> None:
    one, two = _Probe(), _Probe()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: (one if i % 2 else two).work(i % 3), range(64)))
    assert one.most == 1 and two.most == 1
    assert model_lock(one) is model_lock(one) and model_lock(one) is not model_lock(two)


def test_each_instance_gets_exactly_one_lock_under_a_race() -> None:
    probe = _Probe()
    barrier = threading.Barrier(THREADS)

    def grab() -> int:
        barrier.wait()
        return id(model_lock(probe))

    with ThreadPoolExecutor(THREADS) as pool:
        assert len(set(pool.map(lambda _: grab(), range(THREADS)))) == 1


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (40 + i, 56, 3), dtype=np.uint8)) for i in range(6)
    ]


def test_one_converted_model_shared_by_threads_gives_the_serial_vectors(
    tiny_clip_dir: Path,
) -> None:
    pytest.importorskip("openvino")
    model = ModelChoice(str(tiny_clip_dir), "cpu", "fp32", "openvino").embedder()
    texts = [f"a photo of thing {i}" for i in range(12)]
    images = _images()
    serial_text = [model.embed_text(t) for t in texts]
    serial_images = model.embed_images(images)
    model._text_cache.clear()  # the threads must compute, not read the cache

    def one(i: int) -> tuple[np.ndarray, np.ndarray]:
        return model.embed_text(texts[i % len(texts)]), model.embed_images(images[i % 3 :])

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(one, range(48)))
    for i, (text, found) in enumerate(results):
        np.testing.assert_allclose(text, serial_text[i % len(texts)], atol=1e-6)
        np.testing.assert_allclose(found, serial_images[i % 3 :], atol=1e-6)


def test_one_searcher_shared_by_threads_answers_as_it_does_alone(
    tiny_index: Path, tiny_clip_dir: Path
) -> None:
    """The server's case: no wrapper, a lazily loading searcher hit by many threads at once."""
    queries = ["a cat", "a red square", "a blue circle", "a dog"]
    with Searcher(tiny_index, str(tiny_clip_dir), "cpu") as alone:
        expected = {q: [(r.region_id, r.score) for r in alone.search(q, top_k=5)] for q in queries}
    with Searcher(tiny_index, str(tiny_clip_dir), "cpu", load_encoder=False) as shared:
        barrier = threading.Barrier(THREADS)

        def one(i: int) -> tuple[str, list[tuple[int | None, float]]]:
            barrier.wait()  # every thread asks for the model and the vectors at once
            query = queries[i % len(queries)]
            return query, [(r.region_id, r.score) for r in shared.search(query, top_k=5)]

        with ThreadPoolExecutor(THREADS) as pool:
            found = list(pool.map(one, range(THREADS)))
    for query, hits in found:
        assert [h[0] for h in hits] == [e[0] for e in expected[query]]
        assert [h[1] for h in hits] == pytest.approx([e[1] for e in expected[query]], abs=1e-5)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"device": "tpu"}, "Unknown device 'tpu'"),
        ({"precision": "fp8"}, "Unknown precision 'fp8'"),
        ({"backend": "onnx"}, "Unknown backend 'onnx'"),
    ],
)
def test_unknown_names_are_refused_when_the_choice_is_made(fields: dict, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        ModelChoice("any/model", **fields)


def test_a_bad_name_in_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DEVICE, "quantum")
    with pytest.raises(UsageError, match="Unknown device 'quantum'"):
        ModelChoice("any/model")

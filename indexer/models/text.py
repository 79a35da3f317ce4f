"""Text queries without PyTorch: a ``tokenizers`` tokenizer and the cached OpenVINO text tower.

A text search needs only the text half of the dual encoder. Loading :class:`ClipEmbedder`
for it costs seconds (transformers' image processor imports torchvision and torch, and the
vision tower compiles), so when an index's model has been converted for OpenVINO on this
machine, :func:`load_text_encoder` answers from the conversion cache alone:

* the text tower's IR, converted at index time (``<family>-text-encoder-<files key>``);
* beside it, ``tokenizer.json`` (the tokenizer exactly as transformers built it) and
  ``query.json`` (a :class:`QueryRecipe`: padding, truncation, length, embedding size),
  written by the full embedder the first time it compiles that IR.

The files key comes from the model folder's file names, sizes and mtimes, so nothing is
loaded to find the cache entry. Prompt ensembling, normalisation and the probe vector are
shared with :class:`ClipEmbedder` through :class:`TextQueries`, and the IR is compiled with
the same settings, so both give the same vectors. Anything missing (never indexed here, a
SentencePiece-only tokenizer, the torch backend, a GPU) means None: callers then load the
full embedder.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import QueryError, first_line
from ..settings import (
    DEFAULT_BACKEND,
    DEFAULT_DEVICE,
    ENV_BACKEND,
    ENV_DEVICE,
    choose_precision,
    no_gpu_visible,
    resolve,
    resolve_clip_model,
)
from .families import Family, family_named, family_of
from .lifecycle import serialised
from .openclip_files import MODEL_TYPE as OPEN_CLIP
from .openclip_files import is_open_clip
from .openclip_tokens import CLEAN as CLEAN_OPEN_CLIP
from .openclip_tokens import clean_query
from .openvino import compile_ir, import_openvino, infer_rows, text_ir_dir
from .source import canonical_model_id, folder_key, model_folder

log = logging.getLogger("objsearch")

# A fixed probe, embedded at index time and again at search time: equal vectors mean the
# same weights, whatever path or hub id the model was loaded from.
PROBE_TEXT = "a photo of a cat sitting on a red sofa"
TEXT_CACHE_SIZE = 512  # query vectors remembered per encoder
RECIPE_NAME = "query.json"
TOKENIZER_NAME = "tokenizer.json"


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def normalise_query(text: str) -> str:
    """A text query with runs of whitespace collapsed; refuses an empty one."""
    query = " ".join(text.split())
    if not query:
        raise QueryError("The text query is empty.")
    return query


class TextQueries:
    """Prompt ensembling, the query-vector cache and the probe, over ``embed_texts``.

    Subclasses set ``templates`` and ``dim`` and implement :meth:`embed_texts`.
    """

    templates: tuple[str, ...]
    dim: int
    _text_cache: OrderedDict[tuple[str, bool], np.ndarray]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) normalised vectors for literal texts (no prompt ensembling)."""
        raise NotImplementedError

    @serialised
    def embed_text(self, query: str, *, ensemble: bool = True) -> np.ndarray:
        """One normalised vector for a text query, averaged over the family's templates."""
        query = normalise_query(query)
        key = (query, ensemble)
        cached = self._text_cache.get(key)
        if cached is None:
            prompts = [t.format(query) for t in self.templates] if ensemble else [query]
            cached = self.embed_texts(prompts).mean(axis=0)
            cached /= max(float(np.linalg.norm(cached)), 1e-12)
            cached.setflags(write=False)
            self._text_cache[key] = cached
            if len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        else:
            self._text_cache.move_to_end(key)
        return cached

    @serialised
    def fingerprint(self) -> np.ndarray:
        """A vector that identifies these weights (see :data:`PROBE_TEXT`)."""
        return self.embed_texts([PROBE_TEXT])[0]


@dataclass(frozen=True)
class QueryRecipe:
    """How the full embedder turns texts into the text tower's inputs, and its output size.

    Recorded beside the converted text tower so a text query can be answered without
    transformers: the same padding, truncation and length, hence the same token arrays.
    """

    family: str
    dim: int
    max_length: int
    padding: str  # "longest" or "max_length"
    padding_side: str
    truncation_side: str
    pad_id: int
    pad_token: str
    pad_type_id: int = 0
    clean: str = ""  # "open_clip": texts cleaned as open_clip does (see openclip_tokens.py)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> QueryRecipe:
        data = json.loads(text)
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def recipe_recorded(folder: Path) -> bool:
    """True when ``folder`` holds both the recipe and the tokenizer."""
    return (folder / RECIPE_NAME).is_file() and (folder / TOKENIZER_NAME).is_file()


def save_recipe(folder: Path, recipe: QueryRecipe, tokenizer_json: str) -> bool:
    """Record ``recipe`` and the tokenizer beside a converted text tower (once; again if
    one of the two files went missing).

    The tokenizer goes first and the recipe last, so a reader that finds the recipe finds
    both. Returns False when the cache cannot be written (the next run tries again).
    """
    recipe_path = folder / RECIPE_NAME
    if not folder.is_dir() or recipe_recorded(folder):
        return False
    try:
        _write_atomic(folder / TOKENIZER_NAME, tokenizer_json)
        _write_atomic(recipe_path, recipe.to_json())
    except OSError as exc:
        log.debug("Could not record the text recipe in %s: %s", folder, first_line(exc))
        return False
    return True


def recipe_tokenizer(recipe: QueryRecipe, tokenizer_json: str) -> Any:
    """A ``tokenizers.Tokenizer`` that pads and truncates as the recipe says."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.enable_truncation(
        recipe.max_length, stride=0, strategy="longest_first", direction=recipe.truncation_side
    )
    tokenizer.enable_padding(
        direction=recipe.padding_side,
        pad_id=recipe.pad_id,
        pad_type_id=recipe.pad_type_id,
        pad_token=recipe.pad_token,
        length=recipe.max_length if recipe.padding == "max_length" else None,
    )
    return tokenizer


@dataclass(frozen=True)
class LazyTower:
    """A converted tower to compile on first use."""

    xml: Path
    precision: str

    def __call__(self) -> Any:
        return compile_ir(self.xml, self.precision)


class OpenVinoTextEncoder(TextQueries):
    """The text half of a dual encoder: a ``tokenizers`` tokenizer and a compiled OpenVINO IR.

    Offers what a text search needs from :class:`ClipEmbedder` (``embed_text``,
    ``embed_texts``, ``fingerprint``, ``model_id``, ``family``, ``dim``) and no image side.
    ``request`` is the compiled tower, or a function that compiles it on first use; the
    probe vector is kept in ``probe_file`` once computed, so a run that only needs the
    probe (an index run checking its model) never compiles the tower.
    """

    backend = "openvino"

    def __init__(
        self,
        model_id: str,
        family: Family,
        recipe: QueryRecipe,
        tokenizer: Any,
        request: Any,
        probe_file: Path | None = None,
    ) -> None:
        self.model_id = model_id
        self.family = family
        self.recipe = recipe
        self.dim = recipe.dim
        self.templates = family.templates
        self._tokenizer = tokenizer
        # A compiled tower, or (lazy) the function that compiles it.
        lazy = isinstance(request, LazyTower)
        self._request: Any = None if lazy else request
        self._compile: LazyTower | None = request if lazy else None
        self._probe_file = probe_file
        self._lock = threading.Lock()
        self._text_cache = OrderedDict()
        self._probe: np.ndarray | None = None

    @property
    def request(self) -> Any:
        """The compiled text tower (compiled now if it was left for first use)."""
        with self._lock:
            if self._request is None and self._compile is not None:
                self._request = self._compile()
            return self._request

    @serialised
    def fingerprint(self) -> np.ndarray:
        """The probe vector: computed once per conversion and precision, then read back (a
        preloading thread may have computed it already)."""
        if self._probe is None:
            self._probe = _read_probe(self._probe_file, self.dim)
        if self._probe is None:
            self._probe = super().fingerprint()
            if self._probe_file is not None:
                _write_probe(self._probe_file, self._probe)
        return self._probe

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The text tower's inputs, as the full embedder's tokenizer gives them."""
        if self.recipe.clean == CLEAN_OPEN_CLIP:
            texts = [clean_query(text) for text in texts]
        encodings = self._tokenizer.encode_batch(list(texts))
        arrays = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        return {name: arrays[name] for name in self.family.text.input_names}

    @serialised
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        tokens = self.tokenize(texts)
        feeds = {i: tokens[name] for i, name in enumerate(self.family.text.input_names)}
        return unit_rows(infer_rows(self.request, feeds))


def _read_probe(path: Path | None, dim: int) -> np.ndarray | None:
    """A recorded probe vector of ``dim`` values, or None (absent, damaged, other size)."""
    if path is None:
        return None
    try:
        values = np.asarray(json.loads(path.read_text(encoding="utf-8")), dtype=np.float32)
    except (OSError, ValueError, TypeError):
        return None
    return values if values.shape == (dim,) and np.isfinite(values).all() else None


def _write_probe(path: Path, probe: np.ndarray) -> None:
    try:
        _write_atomic(path, json.dumps([float(v) for v in probe]))
    except OSError as exc:  # a read-only cache: the next run computes it again
        log.debug("Could not record the probe vector in %s: %s", path, first_line(exc))


def _runs_on_openvino_cpu(device: str | None, backend: str | None) -> bool:
    """True when the full embedder would run on the CPU with OpenVINO (its auto choices)."""
    choice = (resolve(device, ENV_DEVICE, DEFAULT_DEVICE) or DEFAULT_DEVICE).lower()
    if not (choice == "cpu" or (choice == "auto" and no_gpu_visible())):
        return False
    engine = (resolve(backend, ENV_BACKEND, DEFAULT_BACKEND) or DEFAULT_BACKEND).lower()
    return engine in ("auto", "openvino")


def _cached_family(folder: str, model_id: str) -> Family:
    if is_open_clip(model_id):
        return family_named(OPEN_CLIP)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as fh:
        config = json.load(fh)
    return family_of(_Config(config.get("model_type")), model_id)


@dataclass(frozen=True)
class _Config:
    """The one field of ``config.json`` that names the family."""

    model_type: str | None


@dataclass(frozen=True)
class CachedModel:
    """A model whose conversion this machine has cached: where its files and IRs are.

    Found from file names, sizes and a recipe only: nothing is loaded to find it.
    """

    model_id: str
    folder: str
    family: Family
    key: str
    recipe: QueryRecipe

    @property
    def text_dir(self) -> Path:
        return text_ir_dir(self.family.name, self.key)


def find_cached(
    model_id: str | None, device: str | None, backend: str | None
) -> CachedModel | None:
    """The cached conversion of ``model_id`` when the full embedder would run OpenVINO on the
    CPU (resolving the arguments as it does) and the text tower's recipe is recorded."""
    if not _runs_on_openvino_cpu(device, backend):
        return None
    name = canonical_model_id(resolve_clip_model(model_id))
    folder = model_folder(name)
    if folder is None:
        return None
    family = _cached_family(folder, name)
    key = folder_key(folder)
    recipe_path = text_ir_dir(family.name, key) / RECIPE_NAME
    if not recipe_path.is_file():
        return None
    recipe = QueryRecipe.from_json(recipe_path.read_text(encoding="utf-8"))
    if recipe.family != family.name:
        return None
    return CachedModel(name, folder, family, key, recipe)


def compile_text_encoder(
    cached: CachedModel, precision: str, *, lazy: bool = False
) -> OpenVinoTextEncoder:
    """The torch-free text encoder of a cached conversion, compiled for the CPU (``lazy``:
    on its first text, which a run that needs only the probe never reaches)."""
    ir = cached.text_dir
    tokenizer = recipe_tokenizer(cached.recipe, (ir / TOKENIZER_NAME).read_text(encoding="utf-8"))
    import_openvino()

    tower = LazyTower(ir / "model.xml", precision)
    return OpenVinoTextEncoder(
        cached.model_id,
        cached.family,
        cached.recipe,
        tokenizer,
        tower if lazy else tower(),
        probe_file=ir / f"probe-{precision}.json",
    )


def load_text_encoder(
    model_id: str | None = None,
    device: str | None = None,
    *,
    precision: str | None = None,
    backend: str | None = None,
) -> OpenVinoTextEncoder | None:
    """The torch-free text encoder for ``model_id``, or None when the full embedder is needed.

    Takes the same arguments as :class:`ClipEmbedder` and resolves them the same way; it
    only answers when that embedder would run OpenVINO on the CPU and the conversion cache
    holds the model's text tower with its recipe. It never raises for a model or setting
    problem: the full embedder reports those.
    """
    try:
        cached = find_cached(model_id, device, backend)
        if cached is None:
            return None
        return compile_text_encoder(cached, choose_precision(precision, "cpu"))
    except Exception as exc:  # a bad setting, a damaged cache entry, an IR OpenVINO rejects
        log.debug("Light text encoder unavailable for %s: %s", model_id, first_line(exc))
        return None

"""The work Ray runs on cluster nodes: decode tasks and the detect + embed actor.

Nothing here imports Ray: these are plain functions and one callable class that Ray Data
ships to worker processes (``map`` for decoding, ``map_batches`` for the actor pool). They
call the very functions the local pipeline calls (:func:`~indexer.media.decode.read_photo`
and :class:`~indexer.indexing.regions.RegionEmbedder`), so a photo gets the same regions and
vectors whichever way it was indexed.

Rows crossing the object store are plain columns: decoded pixels travel as raw RGB bytes
with their shape (zero-copy into NumPy on the actor side), the photo's metadata and the
results as pickled records (:class:`~indexer.store.records.NewPhoto` per photo), so no
custom type needs registering.
"""

from __future__ import annotations

import os
import pickle
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import CarriedError, ObjsearchError
from ..media.decode import DecodedPhoto, DecodeError
from ..models.identity import ModelIdentity
from ..models.lifecycle import ModelChoice
from ..settings import DetectOptions, configure_ultralytics
from ..store.records import FailureRecord, NewPhoto
from .device_regions import region_step
from .failures import STAGE_DECODE, STAGE_MODEL, decode_or_error
from .regions import EmbedFn, RegionEmbedder, embed_isolating
from .text_reading import with_text

# The file facts of a row whose file could not be decoded: every row has the same columns.
_NO_FACTS = {"width": 0, "height": 0, "content_hash": "", "size": 0, "mtime_ns": 0}


def decode_row(
    row: dict[str, Any], *, max_megapixels: float, decode_side: int | None
) -> dict[str, Any]:
    """Ray Data ``map`` function: one path -> its decoded pixels and file facts, or a reason."""
    path = str(row["path"])
    out: dict[str, Any] = {
        "path": path,
        "error": "",
        "pixels": b"",
        "rows": 0,
        "cols": 0,
        "metadata": b"",
    }
    photo = decode_or_error(path, max_megapixels=max_megapixels, decode_side=decode_side)
    if isinstance(photo, DecodeError):
        return {**out, "error": str(photo), **_NO_FACTS}
    pixels = np.asarray(photo.image, dtype=np.uint8)
    return {
        **out,
        "pixels": pixels.tobytes(),
        "rows": pixels.shape[0],
        "cols": pixels.shape[1],
        "metadata": pickle.dumps(photo.metadata, protocol=5),
        "width": photo.width,
        "height": photo.height,
        "content_hash": photo.content_hash,
        "size": photo.size,
        "mtime_ns": photo.mtime_ns,
    }


def photo_from_row(row: dict[str, Any]) -> DecodedPhoto:
    """Rebuild the :class:`DecodedPhoto` a decode task produced (pixels are bit-exact)."""
    h, w = int(row["rows"]), int(row["cols"])
    pixels = np.frombuffer(row["pixels"], dtype=np.uint8).reshape(h, w, 3)
    return DecodedPhoto(
        path=str(row["path"]),
        image=Image.fromarray(pixels, "RGB"),
        width=int(row["width"]),
        height=int(row["height"]),
        content_hash=str(row["content_hash"]),
        size=int(row["size"]),
        mtime_ns=int(row["mtime_ns"]),
        metadata=pickle.loads(row["metadata"]) if len(row["metadata"]) else None,
    )


@dataclass(frozen=True)
class ModelSpec:
    """What an actor loads: names are resolved on the driver, the device on each worker."""

    clip_model: str
    detector: str | None  # None: whole photos only
    device: str | None
    precision: str | None
    backend: str | None
    options: DetectOptions
    embed_batch_size: int
    threads: int = 0  # compute threads per actor; 0: chosen by the stage from the cluster
    detector_classes: tuple[str, ...] = ()  # what an open-vocabulary detector looks for
    ocr: bool = False  # also read the text in each photo (see indexing.text_reading)

    @property
    def choice(self) -> ModelChoice:
        """The embedding model as the factory takes it."""
        return ModelChoice(self.clip_model, self.device, self.precision, self.backend)


def load_region_embedder(spec: ModelSpec) -> RegionEmbedder:
    """Load the models of ``spec`` in this process and wrap them in their region step."""
    configure_ultralytics()
    from ..models.detector import Detector
    from ..settings import resolve_device

    device = resolve_device(spec.device)
    embedder = spec.choice.embedder(batch_size=spec.embed_batch_size)
    detector = (
        Detector(spec.detector, device, backend=spec.backend, classes=spec.detector_classes)
        if spec.detector
        else None
    )
    if spec.threads > 0 and "torch" in sys.modules:
        # Ray starts workers with one OpenMP thread, which PyTorch read at import; OpenVINO
        # (the CPU default, which never imports torch) sizes its own thread pool.
        import torch

        torch.set_num_threads(spec.threads)
    return region_step(embedder, detector, spec.options)


@dataclass(frozen=True)
class ModelProbe:
    """The models an actor loaded, as the driver checks and records them in the index."""

    clip: ModelIdentity
    detector_id: str | None

    @classmethod
    def of(cls, regions: RegionEmbedder) -> ModelProbe:
        detector = regions.detector
        return cls(
            ModelIdentity.of(regions.embedder),
            detector.model_id if detector is not None else None,
        )

    def dump(self) -> bytes:
        return pickle.dumps(self, protocol=5)

    @staticmethod
    def load(data: bytes) -> ModelProbe:
        probe = pickle.loads(data)
        if not isinstance(probe, ModelProbe):
            raise TypeError(f"expected a ModelProbe, got {type(probe).__name__}")
        return probe


def probe_models(spec: ModelSpec) -> ModelProbe | CarriedError:
    """Load the models once on a worker: their identity, or why they cannot be loaded."""
    try:
        return ModelProbe.of(load_region_embedder(spec))
    except ObjsearchError as exc:
        return CarriedError.of(exc)


class RegionActor:
    """Ray Data callable class: loads the models once per actor, then detects and embeds.

    Each call gets a batch of decoded rows and returns one row per input row: a pickled
    :class:`NewPhoto` or the failure (stage and reason) the driver records for that file.
    Every row also carries the actor's model identity, so the driver checks each actor's
    models against the index before it stores anything they computed. Models that cannot
    be loaded are reported the same way (``load_error``) instead of failing the actor,
    which Ray would only restart to fail again.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self._pid = os.getpid()
        self._regions: RegionEmbedder | None = None
        self._embed: EmbedFn | None = None
        self._identity = b""
        self._load_error = ""
        try:
            self._regions = load_region_embedder(spec)
            self._embed = self._regions.embed
            if spec.ocr:
                from ..models.ocr import TextReader

                self._embed = with_text(self._regions.embed, TextReader().load())
            self._identity = ModelProbe.of(self._regions).dump()
        except ObjsearchError as exc:
            self._load_error = CarriedError.of(exc).to_json()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["path"])
        rows = [{k: v[i] for k, v in batch.items()} for i in range(n)]
        records: list[NewPhoto] = []
        failures: list[FailureRecord] = []
        if self._embed is not None:
            photos = [photo_from_row(r) for r in rows if not r["error"]]
            records, failures = embed_isolating(self._embed, photos)
        by_path = {p.path: pickle.dumps(p, protocol=5) for p in records}
        failed = {f.path: f.reason for f in failures}
        out_records: list[bytes] = []
        stages: list[str] = []
        errors: list[str] = []
        for r in rows:
            path = str(r["path"])
            stage, error = "", ""
            if r["error"]:
                stage, error = STAGE_DECODE, str(r["error"])
            elif path in failed:
                stage, error = STAGE_MODEL, failed[path]
            out_records.append(by_path.get(path, b""))
            stages.append(stage)
            errors.append(error)
        return {
            "path": _objects([str(r["path"]) for r in rows]),
            "record": _objects(out_records),
            "stage": _objects(stages),
            "error": _objects(errors),
            "model": _objects([self._identity] * n),
            "load_error": _objects([self._load_error] * n),
            "worker": np.full(n, self._pid, dtype=np.int64),
        }


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array (``np.asarray`` would turn equal-length bytes into a 2-d array)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@dataclass
class Outcome:
    """One photo back on the driver: its record or its failure, and who computed it."""

    path: str
    record: NewPhoto | None
    failure: FailureRecord | None
    model: bytes
    worker: int


def outcomes(batch: dict[str, np.ndarray]) -> list[Outcome]:
    """Unpack one result batch streamed back from the actor pool.

    Raises the actor's own error (a :class:`ModelLoadError`, say) when it could not load
    its models.
    """
    for load_error in batch["load_error"]:
        if load_error:
            raise CarriedError.from_json(str(load_error)).error()
    out = []
    for path, record, stage, error, model, worker in zip(
        batch["path"],
        batch["record"],
        batch["stage"],
        batch["error"],
        batch["model"],
        batch["worker"],
        strict=True,
    ):
        failure = FailureRecord(str(path), str(stage), str(error)) if error else None
        photo = pickle.loads(record) if not error else None
        out.append(Outcome(str(path), photo, failure, bytes(model), int(worker)))
    return out

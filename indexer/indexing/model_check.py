"""The models of a run against the index: recorded in a new index, refused if different.

Every vector of an index must come from one embedding model, so each run checks the model
it loaded (or each Ray actor's, from its probe) before it stores anything it computed.
"""

from __future__ import annotations

from ..errors import StoreError
from ..models.clip import ClipEmbedder
from ..models.identity import ModelIdentity, model_mismatch, model_record
from ..store.database import Store


def check_model_matches(store: Store, model: ClipEmbedder | ModelIdentity) -> None:
    """Record the model in a new index, or refuse one that differs from the index's."""
    meta = store.meta()
    identity = model if isinstance(model, ModelIdentity) else ModelIdentity.of(model)
    if "clip_model" not in meta:
        store.set_meta(**model_record(identity))
        return
    problem = model_mismatch(meta, identity)
    if problem:
        raise StoreError(problem)


def record_precision(store: Store, embedder: ClipEmbedder) -> None:
    """Record the precision of the latest run's vectors, and for int8 the calibration that
    names its quantized tower (a search then finds it without the calibration photos)."""
    changes: dict[str, object] = {}
    if store.get_meta("precision") != embedder.precision:
        changes["precision"] = embedder.precision
    key = getattr(embedder, "calibration_key", None)
    if key and store.get_meta("int8_calibration") != key:
        changes["int8_calibration"] = key
    if changes:
        store.set_meta(**changes)


def record_detector(store: Store, detector_id: str | None) -> None:
    """Record the detector that found the objects of the latest run."""
    if detector_id and store.get_meta("detector") != detector_id:
        store.set_meta(detector=detector_id)

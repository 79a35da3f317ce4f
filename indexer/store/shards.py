"""A compressed vector index split into shards that share one set of trained quantizers.

The scale-out path past one machine (docs/scaling.md): each shard holds the PQ codes of the
regions whose id falls to it (``id % count``), coded with the same coarse quantizer and
codebooks as one whole index would use. A query's PQ score of a region is then the same in
its shard as in the whole index, so the best candidates merged over all shards are exactly
the whole index's candidates, and re-ranking them with the exact vectors gives exactly its
answer. Shards are written from SQLite's rows of one generation (no delta, no tombstones):
a changed store is re-sharded, reusing the quantizers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from . import ivf
from .vectors import IndexParams

if TYPE_CHECKING:
    from .database import Store

MANIFEST = "shards.json"


@dataclass(frozen=True)
class ShardSet:
    """The shard files of one store generation, in shard order."""

    paths: tuple[Path, ...]
    generation: int
    dim: int

    @classmethod
    def read(cls, folder: str | os.PathLike[str]) -> ShardSet:
        """The shard set written into ``folder`` by :func:`write_shards`."""
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
        paths = tuple(Path(folder) / name for name in data["files"])
        return cls(paths, int(data["generation"]), int(data["dim"]))


def shard_of(ids: np.ndarray, count: int) -> np.ndarray:
    """The shard each region id belongs to."""
    return np.asarray(ids, np.int64) % count


def write_shards(store: Store, count: int, folder: str | os.PathLike[str]) -> ShardSet:
    """Split the store's vectors over ``count`` IVF-PQ shards in ``folder``.

    The quantizers are those of the store's main file when it is a compressed index that
    suits the store (so shards score exactly as that file does), else trained once on a
    sample. Vectors are streamed from SQLite; each part goes to the shards of its ids.
    """
    if count < 1:
        raise UsageError(f"A shard set needs at least one shard, not {count}.")
    dim, regions, generation = store.dim(), store.count_regions(), store.generation
    if not dim or regions < ivf.IVFPQ_MIN_VECTORS:
        raise UsageError(
            f"Sharding needs a compressed index of at least {ivf.IVFPQ_MIN_VECTORS} regions; "
            f"the index at {store.dir} holds {regions}."
        )
    faiss = ivf._faiss()
    trained = ivf.emptied(store.faiss_path, dim, regions)
    if trained is None:
        sample = ivf.sample_parts(store.iter_vectors(), regions, ivf.sample_size(regions))
        trained = ivf.train_ivfpq(sample, dim, regions)
    shards = [faiss.clone_index(trained) for _ in range(count)]
    for ids, vectors in store.iter_vectors():
        owner = shard_of(ids, count)
        for number, shard in enumerate(shards):
            mine = owner == number
            if mine.any():
                shard.add_with_ids(np.ascontiguousarray(vectors[mine]), ids[mine])
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"shard-{n:03d}-of-{count:03d}.faiss" for n in range(count)]
    for name, shard in zip(names, shards, strict=True):
        faiss.write_index(shard, str(out / f".{name}.tmp"))
        os.replace(out / f".{name}.tmp", out / name)
    manifest = {"files": names, "generation": generation, "dim": dim}
    (out / f".{MANIFEST}.tmp").write_text(json.dumps(manifest), encoding="utf-8")
    os.replace(out / f".{MANIFEST}.tmp", out / MANIFEST)
    return ShardSet(tuple(out / n for n in names), generation, dim)


class Shard:
    """One shard, its inverted lists memory-mapped: PQ-scored candidates for queries.

    Plain Python, so that it runs in-process as well as inside a Ray actor.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        faiss = ivf._faiss()
        self.index: Any = faiss.read_index(str(path), ivf.mmap_flags())
        ivf.skip_prefetch(self.index)

    def count(self) -> int:
        """How many regions this shard holds."""
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return ivf.region_ids(self.index)

    def list_sizes(self) -> np.ndarray:
        """Codes in each of this shard's inverted lists."""
        return ivf.list_sizes(self.index)

    def quantizer(self) -> Any:
        """The coarse quantizer every shard shares (owned by this shard's index)."""
        return ivf.unwrapped(self.index).quantizer

    def quantizer_bytes(self) -> np.ndarray:
        """:meth:`quantizer`, serialized for a driver in another process."""
        return ivf._faiss().serialize_index(self.quantizer())

    def candidates(
        self, queries: np.ndarray, k: int, probes: ivf.Probes
    ) -> tuple[np.ndarray, np.ndarray]:
        """(PQ scores, region ids) of the ``k`` best in the planned lists per query; -1 pads."""
        queries = np.ascontiguousarray(queries, np.float32)
        return ivf.search_probes(self.index, queries, k, probes)


class ShardProbes:
    """Which lists each query reads, planned once for every shard.

    The shards share one coarse quantizer, so a list is the same list in each; planned
    from the codes of each list summed over the shards (``sizes``), the shards read exactly
    the lists the whole index would, and their merged candidates are the whole index's.
    """

    def __init__(
        self,
        quantizer: Any,
        sizes: np.ndarray,
        params: IndexParams = IndexParams(),
        owner: object = None,
    ) -> None:
        self.quantizer = quantizer
        self._owner = owner  # keeps the index that owns the quantizer alive
        self.sizes = np.asarray(sizes, np.int64)
        self.budget = params.scan_budget(int(self.sizes.sum()))

    @classmethod
    def of(cls, shards: Sequence[Shard], params: IndexParams = IndexParams()) -> ShardProbes:
        """The plan of shards open in this process."""
        sizes = np.sum([shard.list_sizes() for shard in shards], axis=0)
        return cls(shards[0].quantizer(), sizes, params, owner=shards[0])

    @classmethod
    def of_serialized(
        cls,
        quantizer: np.ndarray,
        sizes: Sequence[np.ndarray],
        params: IndexParams = IndexParams(),
    ) -> ShardProbes:
        """The plan of shards in other processes: one shard's :meth:`Shard.quantizer_bytes`
        and every shard's :meth:`Shard.list_sizes`."""
        return cls(ivf._faiss().deserialize_index(quantizer), np.sum(sizes, axis=0), params)

    def plan(self, queries: np.ndarray) -> ivf.Probes:
        return ivf.plan_probes(self.quantizer, self.sizes, queries, self.budget)


def merge_candidates(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (score, id) per query over every shard's candidates, best first."""
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    scores = np.where(ids >= 0, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def sharded_search(
    shards: Sequence[Any],
    queries: np.ndarray,
    k: int,
    exact: ivf.ExactVectors,
    probes: ShardProbes,
    fan_out: Any = None,
    candidates: int = ivf.RERANK_CANDIDATES,
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly re-ranked top ``k`` over shards: the answer one whole index would give.

    ``fan_out(shards, queries, wide, plan)`` returns every shard's candidates (in-process
    by default; the Ray search passes its actors' calls).
    """
    wide = max(k, candidates)
    plan = probes.plan(queries)
    if fan_out is None:
        parts = [shard.candidates(queries, wide, plan) for shard in shards]
    else:
        parts = fan_out(shards, queries, wide, plan)
    return ivf.rerank(merge_candidates(parts, wide), queries, k, exact)

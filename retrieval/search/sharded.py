"""Vector search over shards held by Ray actors: the scale-out path past one machine.

Each actor memory-maps one shard file (:mod:`indexer.store.shards`) and answers PQ-scored
candidates; the driver merges them and re-ranks them with the store's exact vectors, so the
answer is the one a single compressed index over every region would give, while each
machine holds only its shard's lists. The actors open the shard files by path: every node
must see the shard folder at the same path (as the photos for Ray indexing).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import numpy as np

from indexer.errors import ObjsearchError, StoreError, first_line
from indexer.indexing.ray_cluster import import_ray
from indexer.store import Store, ivf
from indexer.store.shards import Shard, ShardProbes, ShardSet, sharded_search
from indexer.store.vectors import IndexParams

_INLINE_BYTES = 64 * 1024


class RayShardedSearch:
    """One Ray actor per shard, queried together; re-ranking on the driver.

    Ray must be initialised already (e.g. inside :class:`indexer.indexing.ray_cluster.Cluster`);
    the actors live until :meth:`close`.
    """

    def __init__(
        self,
        store: Store,
        shards: ShardSet,
        *,
        params: IndexParams = IndexParams(),
        cpus_per_shard: float = 1.0,
    ) -> None:
        self.ray = import_ray()
        if not self.ray.is_initialized():
            raise ObjsearchError("Sharded search needs a Ray cluster: connect to one first.")
        if shards.generation != store.generation or shards.dim != store.dim():
            raise StoreError(
                f"The shards were written at generation {shards.generation} of the index at "
                f"{store.dir}, which is now at generation {store.generation}: write them again."
            )
        self.store = store
        self.candidates = params.ivfpq_candidates
        remote = self.ray.remote(num_cpus=cpus_per_shard)(Shard)
        self.actors = [remote.remote(str(path)) for path in shards.paths]
        self.counts = self._call(lambda actor: actor.count.remote())  # loaded, or a clear error
        # The lists are planned here, from the actors' list sizes and the quantizer they share.
        sizes = self._call(lambda actor: actor.list_sizes.remote())
        (quantizer,) = self._call(lambda actor: actor.quantizer_bytes.remote(), self.actors[:1])
        self.probes = ShardProbes.of_serialized(quantizer, sizes, params)

    def _call(self, method: Any, actors: Sequence[Any] | None = None) -> list[Any]:
        """Call every actor (or those given); a shard that fails (missing file, dead node) is
        a clear error."""
        try:
            chosen = self.actors if actors is None else actors
            return list(self.ray.get([method(actor) for actor in chosen]))
        except Exception as exc:  # RayTaskError, RayActorError ...
            raise ObjsearchError(f"A search shard failed: {first_line(exc)}") from None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, region ids) of the ``k`` best regions per query, exact cosine order."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        return sharded_search(
            self.actors,
            queries,
            k,
            self.store.vectors_of,
            self.probes,
            self._fan_out,
            candidates=self.candidates,
        )

    def _fan_out(
        self, actors: Sequence[Any], queries: np.ndarray, wide: int, plan: ivf.Probes
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        # A batch goes to the object store once for all shards; a few queries travel inline
        # with each call, which saves a store round trip on every search.
        sent = self.ray.put(queries) if queries.nbytes > _INLINE_BYTES else queries
        return self._call(lambda actor: actor.candidates.remote(sent, wide, plan))

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

    def __enter__(self) -> RayShardedSearch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

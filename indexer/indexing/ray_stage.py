"""The model stage on Ray: paths go out to the cluster, regions stream back to the driver.

Only files that need the models reach Ray, as a dataset of paths: every worker must see the
photos under the same paths as the driver (one shared file system, e.g. an NFS or SMB mount
at the same place on every node). Ray Data then runs

* ``map``: decode each path into pixels (CPU tasks, as many as the cluster has cores);
* ``map_batches``: an actor pool that loads the detector and CLIP once per actor and runs
  the same detect + crop + embed step as the local pipeline on batches of photos;

and streams the results back, batch by batch, to the driver, which is the only writer of
the index. Ray restarts dead actors and retries their batches; a file that fails to decode
comes back as a failure, as it would locally.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from ..errors import CarriedError, ModelLoadError, ObjsearchError, first_line
from ..media.decode import DecodeError, FileDigest
from ..settings import RaySettings
from .plan import Work
from .ray_cluster import Cluster, Resources
from .ray_workers import (
    ModelProbe,
    ModelSpec,
    Outcome,
    RegionActor,
    decode_row,
    outcomes,
    probe_models,
)
from .run import IndexRun, batches

# Memory a decode task reserves: the file's bytes plus the decoded image (a 24 MP PNG is
# ~70 MB as RGB). Different from the actor's resources on purpose: Ray Data fuses map stages
# with identical resource requests, which would move decoding into the actors.
DECODE_MEMORY = 256 * 2**20


@dataclass(frozen=True)
class ActorPlan:
    """How many actors, and what each reserves and uses."""

    actors: int
    cpus: float
    gpus: float
    threads: int


def plan_actors(settings: RaySettings, res: Resources) -> ActorPlan:
    """Actors from flags, else from the cluster: one per GPU, or one per node without GPUs.

    A CPU actor reserves one logical CPU (the rest stay free for decode tasks) but computes
    with the node's cores, since the models are the bulk of the work.
    """
    gpus = settings.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if res.gpus >= 1 else 0.0
    actors = settings.actors
    if actors is None:
        actors = int(res.gpus // gpus) if gpus > 0 else res.nodes
    actors = max(1, actors)
    cpus = settings.cpus_per_actor if settings.cpus_per_actor is not None else 1.0
    threads = max(1, int(math.ceil(cpus)) if settings.cpus_per_actor else int(res.cpus // actors))
    return ActorPlan(actors, cpus, gpus, threads)


class RayStage:
    """One run's connection to the cluster (opened on first use) and its dataset."""

    def __init__(self, settings: RaySettings, *, feed: bool = False) -> None:
        self.settings = settings
        self.feed = feed
        """Always stream through an in-cluster :class:`ResultFeeder` (as Ray Client must)."""
        self._cluster: Cluster | None = None
        self.plan: ActorPlan | None = None
        self.workers: dict[int, int] = {}
        """Actor PID -> photos it returned (which actors served the run, and how much)."""

    def _connect(self) -> Cluster:
        if self._cluster is None:
            cluster = Cluster(self.settings.address)
            cluster.__enter__()
            self._cluster = cluster
            self.plan = plan_actors(self.settings, cluster.resources())
        return self._cluster

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.__exit__(None, None, None)
            self._cluster = None

    def probe(self, spec: ModelSpec) -> ModelProbe:
        """Load the models once on the cluster: their identity, or a clear error."""
        cluster = self._connect()
        assert cluster.ray is not None and self.plan is not None
        task = cluster.ray.remote(probe_models).options(
            num_cpus=self.plan.cpus, num_gpus=self.plan.gpus, max_retries=2
        )
        try:
            result = cluster.ray.get(task.remote(replace(spec, threads=self.plan.threads)))
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load the models on the Ray cluster: {first_line(exc)}"
            ) from None
        if isinstance(result, CarriedError):
            raise result.error()  # the worker's own error class, not a string
        return result

    def stream(
        self,
        paths: Sequence[str],
        spec: ModelSpec,
        *,
        batch_size: int,
        max_megapixels: float,
        decode_side: int | None,
    ) -> Iterator[list[Outcome]]:
        """Decode, detect and embed ``paths`` on the cluster; yield outcomes in batches.

        In a driver connected to the cluster, Ray Data executes here. A Ray Client driver
        (``ray://``) cannot execute Ray Data itself, so a :class:`ResultFeeder` actor runs
        the same pipeline inside the cluster and hands the batches over one call at a time.
        """
        cluster = self._connect()
        assert cluster.ray is not None and self.plan is not None
        job = PipelineJob(
            list(paths),
            replace(spec, threads=self.plan.threads),
            self.plan,
            batch_size,
            max_megapixels,
            decode_side,
        )
        batches = self._fed(cluster, job) if self.feed or cluster.is_client else job.batches()
        try:
            for batch in batches:
                got = outcomes(batch)
                for o in got:
                    self.workers[o.worker] = self.workers.get(o.worker, 0) + 1
                yield got
        except ObjsearchError:
            raise
        except Exception as exc:  # the dataset failed for good (after Ray's retries)
            raise ObjsearchError(f"The Ray run failed: {first_line(exc)}") from None

    @staticmethod
    def _fed(cluster: Cluster, job: PipelineJob) -> Iterator[dict[str, np.ndarray]]:
        assert cluster.ray is not None
        feeder = cluster.ray.remote(num_cpus=0)(ResultFeeder).remote(job)
        try:
            while (batch := cluster.ray.get(feeder.next.remote())) is not None:
                yield batch
        finally:
            cluster.ray.kill(feeder)


@dataclass(frozen=True)
class PipelineJob:
    """One run's Ray Data pipeline: the paths, the models and how they are spread."""

    paths: list[str]
    spec: ModelSpec
    plan: ActorPlan
    batch_size: int
    max_megapixels: float
    decode_side: int | None

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        """Build the dataset and stream its result batches to whoever iterates."""
        import ray.data

        ds: ray.data.Dataset = ray.data.from_items([{"path": p} for p in self.paths])
        decode = partial(
            decode_row, max_megapixels=self.max_megapixels, decode_side=self.decode_side
        )
        ds = ds.map(
            decode,
            num_cpus=1,
            memory=DECODE_MEMORY,
        )
        ds = ds.map_batches(
            RegionActor,
            fn_constructor_kwargs={"spec": self.spec},
            compute=ray.data.ActorPoolStrategy(size=self.plan.actors),
            batch_size=self.batch_size,
            batch_format="numpy",
            num_cpus=self.plan.cpus,
            num_gpus=self.plan.gpus,
        )
        yield from ds.iter_batches(batch_size=self.batch_size, batch_format="numpy")


class ResultFeeder:
    """Runs a :class:`PipelineJob` inside the cluster for a Ray Client driver (an actor)."""

    def __init__(self, job: PipelineJob) -> None:
        from .ray_cluster import quiet_ray_data

        quiet_ray_data()
        self._batches = job.batches()

    def next(self) -> dict[str, np.ndarray] | None:
        """The next result batch, or None when the pipeline is done."""
        return next(self._batches, None)


def run_on_ray(
    stage: RayStage,
    run: IndexRun,
    spec: Callable[[], ModelSpec],
    *,
    digest: Callable[[Work], FileDigest | DecodeError],
    check_models: Callable[[bytes], None],
    sizes: RaySizes,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Settle what needs no model here, send the rest to Ray, commit what streams back.

    Files whose bytes may already be indexed (changed files, and new files while some
    indexed files are missing) are hashed here first, so moves and touches never reach
    the cluster; everything else goes straight to Ray. ``check_models`` sees each actor's
    model probe before anything it computed is stored.
    """
    plan = run.plan
    total, done = len(plan.work), 0
    maybe_known = [w for w in plan.work if w.previous is not None or plan.moved_from]
    need: list[Work] = []
    for batch in batches(((w, digest(w)) for w in maybe_known), sizes.batch_size):
        left = run.settle_known(batch)
        need += left
        done += len(batch) - len(left)
        if progress:
            progress(done, total)
    need += [w for w in plan.work if not (w.previous is not None or plan.moved_from)]
    if not need:
        return
    checked: set[bytes] = set()
    streamed = stage.stream(
        [w.file.path for w in need],
        spec(),
        batch_size=sizes.batch_size,
        max_megapixels=sizes.max_megapixels,
        decode_side=sizes.decode_side,
    )
    for got in streamed:
        for model in {o.model for o in got if o.model} - checked:
            check_models(model)
            checked.add(model)
        run.commit_photos(
            [o.record for o in got if o.record is not None],
            [o.failure for o in got if o.failure is not None],
        )
        done += len(got)
        if progress:
            progress(done, total)
        run.save_if_due()


@dataclass(frozen=True)
class RaySizes:
    """How a run sends photos to Ray: photos per batch and the decode limits."""

    batch_size: int
    max_megapixels: float
    decode_side: int | None

"""Reaching a Ray cluster: start a local one, join a running one, or connect through Ray Client.

Ray is an optional extra (``pip install "objsearch[ray]"``) and is imported only here and
only when a run asks for it, so local indexing never pays for it. Ray is kept quiet and
offline: no usage statistics, no dashboard, no Ray Data progress bars (objsearch draws its
own), and worker logs stay in Ray's session folder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType, TracebackType

from ..errors import ObjsearchError, first_line
from ..settings import quiet_ray_usage_stats

INSTALL_HINT = (
    'Distributed indexing needs Ray, an optional extra: pip install "objsearch[ray]" '
    '(or pip install "ray[data,client]").'
)


def import_ray() -> ModuleType:
    """``ray`` with Ray Data, or a clear message saying how to install it."""
    quiet_ray_usage_stats()
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ObjsearchError(INSTALL_HINT) from None
    return ray


@dataclass(frozen=True)
class Resources:
    """What the connected cluster offers (logical Ray resources, all alive nodes)."""

    nodes: int
    cpus: float
    gpus: float


class Cluster:
    """Context manager around ``ray.init``/``ray.shutdown`` for one indexing run.

    ``address`` is ``auto`` (a running cluster if one is found, else a new local one),
    ``local`` (always a new local cluster), ``ray://HOST:PORT`` (Ray Client) or
    ``HOST:PORT`` (a cluster's GCS address, for drivers on a cluster node). When Ray is
    already initialised in this process (an app or a test set it up), that session is used
    and left running.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.started = False
        self.ray: ModuleType | None = None

    @property
    def is_client(self) -> bool:
        """Connected through Ray Client (``ray://``): Ray Data must then run in the cluster."""
        return self.ray is not None and self.ray.util.client.ray.is_connected()

    def __enter__(self) -> Cluster:
        ray = import_ray()
        self.ray = ray
        if not ray.is_initialized():
            try:
                self._init(ray)
            except ObjsearchError:
                raise
            except Exception as exc:  # ConnectionError, ValueError, gRPC errors ...
                raise ObjsearchError(
                    f"Cannot start or reach the Ray cluster {self.address!r}: {first_line(exc)}"
                ) from None
            self.started = True
        quiet_ray_data()
        return self

    def _init(self, ray: ModuleType) -> None:
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self.address in ("auto", "local"):
            if self.address == "auto":
                try:
                    ray.init(address="auto", **quiet)
                    return
                except ConnectionError:
                    pass  # no running cluster: start one here
            ray.init(address="local", include_dashboard=False, **quiet)
        else:
            ray.init(address=self.address, **quiet)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.started and self.ray is not None:
            self.ray.shutdown()
            self.started = False

    def resources(self) -> Resources:
        assert self.ray is not None
        total = self.ray.cluster_resources()
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        return Resources(max(1, nodes), float(total.get("CPU", 0)), float(total.get("GPU", 0)))


def quiet_ray_data() -> None:
    """Ray Data: no progress bars or statistics dumps, warnings only when they matter."""
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_auto_log_stats = False
    detectors = getattr(ctx, "issue_detectors_config", None)  # Ray >= 2.50
    if detectors is not None:
        detectors.detectors = []

"""One real local Ray cluster for all Ray tests, started once in the test process.

Starting Ray and loading the models in a fresh actor take seconds each, so the tests share
the cluster (``ray.init`` here; the indexer uses a session that is already running) and
keep photo counts and models tiny. Ray is an optional extra: without it these tests skip
with that reason, except in CI, which installs it (``pip install -e ".[dev,ray]"``) and
where a missing Ray fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fixtures.ray_helpers import require_ray


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local two-CPU Ray cluster for the whole session; yields its GCS address."""
    import logging

    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=256 * 2**20,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()

"""The benchmarks' process runner: a child's peak memory is its own, not its parent's.

The README's peak-RSS figures come from ``benchmarks/_common.run_own_peak``. Linux seeds a
new process's ``ru_maxrss`` with the high-water mark of the process that spawned it, so a
benchmark that has loaded a model would otherwise report that model in every child.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
HELD_MIB = 300  # what this process holds while it spawns
CHILD_MIB = 40  # what the child allocates


def allocate(mib: int) -> bytearray:
    """``mib`` MiB, every page touched so that it is resident."""
    block = bytearray(mib * 2**20)
    block[:: os.sysconf("SC_PAGE_SIZE")] = b"\1" * len(block[:: os.sysconf("SC_PAGE_SIZE")])
    return block


@pytest.fixture
def common() -> Iterator[object]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _common

        yield _common
    finally:
        sys.path.remove(str(BENCHMARKS))


CHILD = (
    f"import sys; b = bytearray({CHILD_MIB} * 2**20); b[::4096] = b'1' * len(b[::4096]); "
    "print('out'); print('err', file=sys.stderr); sys.exit(3)"
)


@pytest.mark.skipif(
    sys.platform != "linux", reason="ru_maxrss in KiB and its inheritance are Linux's"
)
def test_a_child_reports_its_own_peak_while_the_parent_holds_more(common: object) -> None:
    held = allocate(HELD_MIB)
    run = common.run_own_peak([sys.executable, "-c", CHILD])  # type: ignore[attr-defined]
    assert run.returncode == 3
    assert (run.stdout, run.stderr) == ("out\n", "err\n")
    assert CHILD_MIB <= run.peak_rss_mib < CHILD_MIB + 60
    assert run.wall_s > 0
    # Why the launcher exists: the same child spawned straight from here reports at least
    # what this process holds.
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    assert usage.ru_maxrss / 1024 >= HELD_MIB
    del held


def test_a_command_that_cannot_start_is_a_clear_error(common: object) -> None:
    with pytest.raises(SystemExit, match="could not start"):
        common.run_own_peak(["/nonexistent/objsearch-benchmark-command"])  # type: ignore[attr-defined]

"""Helpers shared by the benchmark scripts (paths, the cached random CLIP, tables, JSON).

Imported as ``_common`` by ``benchmarks/index_speed.py`` and ``benchmarks/query_speed.py``:
running a script puts its own folder first on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
SHARED_ASSETS = REPO_ROOT.parent / "shared" / "assets"
DEFAULT_PHOTOS = SHARED_ASSETS / "coco-dev" / "images"
DEFAULT_DETECTOR = SHARED_ASSETS / "detector" / "yolo11n-coco.pt"
CLIP_CACHE = RESULTS_DIR / ".clip-vitb32"
OPEN_CLIP_PREFIX = "open_clip:"  # --families entries naming an open_clip architecture


def setup_environment() -> None:
    """Make ``indexer``/``retrieval``/``tests`` importable and keep ultralytics offline."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    # Ultralytics writes a settings file into its config folder; keep it beside the results
    # rather than in the user's home (and away from other processes' settings).
    os.environ.setdefault("YOLO_CONFIG_DIR", str(RESULTS_DIR / ".yolo-config"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Commands run as from a normal install, which caches compiled bytecode: where the
    # environment forbids it, every run compiles objsearch's own modules again (about
    # 0.1 s of each command's start-up on the 2-core machine).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the markdown tables."""
    print(message, file=sys.stderr, flush=True)


def _build_once(
    folder: Path,
    build: Any,
    what: str,
    files: tuple[str, ...] = ("config.json", "model.safetensors"),
) -> str:
    """``folder`` once it holds a saved model (``files``); else ``build(tmp)`` then rename
    into place."""
    if all((folder / name).is_file() for name in files):
        return str(folder)
    log(f"building {what} into {folder} (once) ...")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-build-", dir=folder.parent))
    try:
        build(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)


def ensure_family_model(family: str) -> str:
    """A cached random model of ``family``'s benchmark shape (see ``objsearch models``).

    CLIP is the ViT-B/32 of :func:`ensure_clip_model`; ``open_clip:NAME`` is open_clip's
    architecture NAME (``tests.openclip_factory``); the others are built once with
    ``tests.family_factory.make_benchmark_model`` into ``benchmarks/results/.family-NAME``.
    """
    if family == "clip":
        return ensure_clip_model(None)
    if family.startswith(OPEN_CLIP_PREFIX):  # a model zoo architecture, e.g. MobileCLIP2-S0
        from tests.openclip_factory import make_real_shape_open_clip

        name = family[len(OPEN_CLIP_PREFIX) :]
        return _build_once(
            RESULTS_DIR / f".open_clip-{name}",
            lambda tmp: make_real_shape_open_clip(name, tmp),
            f"a random open_clip {name}",
            ("open_clip_config.json", "open_clip_model.safetensors"),
        )
    from tests.family_factory import make_benchmark_model

    return _build_once(
        RESULTS_DIR / f".family-{family}",
        lambda tmp: make_benchmark_model(family, tmp),
        f"a random {family} model",
    )


def ensure_clip_model(path: str | None) -> str:
    """The CLIP folder to use: ``path`` when given, else a cached random ViT-B/32.

    The random model is built once with ``tests.model_factory.make_vitb32_clip`` into
    ``benchmarks/results/.clip-vitb32`` (about 500 MB); it costs what the real model costs.
    """
    if path:
        return path
    from tests.model_factory import make_vitb32_clip

    return _build_once(CLIP_CACHE, make_vitb32_clip, "a random ViT-B/32 CLIP")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(
    index: Path, clip: str, *extra: str, log_path: Path | None = None
) -> Iterator[str]:
    """``objsearch serve`` on a free loopback port until the block ends; yields its URL.

    The server's output goes to ``log_path`` (else a temporary file): an unread pipe would
    fill up and stall the server.
    """
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OBJSEARCH_CLIP_MODEL": clip}
    command = [sys.executable, "-c", "from retrieval.cli import main; main()", "serve"]
    command += ["--index", str(index), "--port", str(port), "--device", "cpu", *extra]
    with open(log_path, "w+") if log_path else tempfile.TemporaryFile("w+") as output:
        proc = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                if proc.poll() is not None:
                    output.seek(0)
                    raise SystemExit(f"the server exited: {output.read()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/api/v1/status", timeout=30).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start within 300 s")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def missing_asset_message(what: str, path: Path, flag: str, hint: str) -> str:
    return (
        f"{what} not found at {path}.\n"
        f"The default comes from the shared assets beside the checkout ({SHARED_ASSETS}); "
        f"without them pass {flag} {hint}."
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, linear interpolation; NaN when empty."""
    import numpy as np

    if not len(values):
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: floats rounded, None/NaN as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# Runs one command and reports its own peak memory. Linux seeds a new process's
# ``ru_maxrss`` with the resident high-water mark of the process that spawned it (the
# memory map it replaces at exec counts), so a child of a benchmark that holds 1.4 GB
# reports at least 1.4 GB. Spawned from this small interpreter, the floor is a few MB.
_LAUNCHER = """
import json, os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
started, t = time.time(), time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t
code = os.waitstatus_to_exitcode(status)
with open(report, "w") as fh:
    json.dump({"started": started, "wall_s": wall, "maxrss_kib": usage.ru_maxrss}, fh)
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class OwnRun:
    """A command run by :func:`run_own_peak`: its exit code and output, the epoch second
    it started, its wall seconds and its own peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    started: float
    wall_s: float
    peak_rss_mib: float


def run_own_peak(cmd: Sequence[str], capture: bool = True, cwd: Path = REPO_ROOT) -> OwnRun:
    """Run ``cmd`` (its output captured, or passed through) from a small launcher process,
    so that its peak RSS (``ru_maxrss`` from ``wait4``) is its own, not this process's."""
    with tempfile.TemporaryDirectory(prefix="objsearch-run-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [sys.executable, "-S", "-c", _LAUNCHER, str(report), *cmd]
        pipe = subprocess.PIPE if capture else None
        proc = subprocess.run(argv, cwd=cwd, stdout=pipe, stderr=pipe, text=True, check=False)
        if not report.is_file():
            raise SystemExit(f"error: could not start {cmd[0]}:\n{proc.stderr or ''}")
        data = json.loads(report.read_text(encoding="utf-8"))
    return OwnRun(
        proc.returncode,
        proc.stdout or "",
        proc.stderr or "",
        data["started"],
        data["wall_s"],
        data["maxrss_kib"] / 1024.0,  # KiB on Linux
    )


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU count, load, library versions, thread counts."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for name in ("torch", "transformers", "ultralytics", "faiss", "numpy", "PIL", "sqlalchemy"):
        module = sys.modules.get(name)
        if module is not None:
            info[f"{name}_version"] = getattr(module, "__version__", "?")
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        info["faiss_threads"] = faiss.omp_get_max_threads()
    return info


def load_models(args: Any, detect: bool = True) -> tuple[Any, Any]:
    """(ClipEmbedder, Detector or None) as the benchmark flags ask for them."""
    from indexer import ClipEmbedder, Detector
    from indexer.models.openclip_files import is_open_clip

    full = ClipEmbedder
    if is_open_clip(args.clip_model):
        from indexer.models.openclip import OpenClipEmbedder

        full = OpenClipEmbedder
    embedder = full(
        args.clip_model,
        args.device,
        precision=args.precision,
        batch_size=args.embed_batch_size,
        backend=args.backend,
    )
    detector = Detector(args.detector, args.device, backend=args.backend) if detect else None
    return embedder, detector


REGION_INSERT = (
    "INSERT INTO regions (id, photo_id, kind, x1, y1, x2, y2, label, confidence, vector) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Region rows of the synthetic stores, written straight into the objsearch schema."""


def finish_synthetic_store(conn: Any) -> None:
    """Create the full-text rows and triggers (dropped while writing), checkpoint, close."""
    from indexer.store.migrations import fill_photo_text
    from indexer.store.schema import SEARCH_DDL

    with conn:
        for statement in SEARCH_DDL:
            conn.execute(statement)
        fill_photo_text(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()

"""Every setting objsearch reads from the environment, with its default and its auto choice.

One place decides which CLIP model, detector, device, precision and inference backend a run
uses, so the CLI, the Python API and the benchmarks agree. Precedence is: explicit argument
> environment variable > what the index was built with (for search) > built-in default.
No other module reads an ``OBJSEARCH_*`` variable or names a default of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ObjsearchError, UsageError

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DETECTOR = "yolo11n.pt"
DEFAULT_DEVICE = "auto"
DEFAULT_PRECISION = "auto"
DEFAULT_BACKEND = "auto"
DEFAULT_FAISS_INDEX = "auto"

ENV_INDEX = "OBJSEARCH_INDEX"
ENV_CLIP_MODEL = "OBJSEARCH_CLIP_MODEL"
ENV_DETECTOR = "OBJSEARCH_DETECTOR"
ENV_DEVICE = "OBJSEARCH_DEVICE"
ENV_PRECISION = "OBJSEARCH_PRECISION"
ENV_BACKEND = "OBJSEARCH_BACKEND"
ENV_CACHE = "OBJSEARCH_CACHE"
ENV_TOKEN = "OBJSEARCH_TOKEN"
ENV_RAY_ADDRESS = "OBJSEARCH_RAY_ADDRESS"
ENV_CALIBRATION = "OBJSEARCH_CALIBRATION"
ENV_OCR = "OBJSEARCH_OCR"

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# Precisions only a backend that quantizes (OpenVINO, on the CPU) can run.
QUANTIZED_PRECISIONS = ("int8",)
BACKENDS = ("auto", "torch", "openvino")

# Where --ray runs when given without an address: a running cluster, else a local one.
DEFAULT_RAY_ADDRESS = "auto"

# Decoding limits (see indexer.media.decode).
DEFAULT_MAX_MEGAPIXELS = 180.0
DEFAULT_DECODE_SIDE = 1280

# Reading text in photos (see indexer.models.ocr). Detection sees the photo with its longest
# side bounded by this (photos are never enlarged); recognition keeps lines it reads with at
# least this confidence (the README's accuracy table measured both).
DEFAULT_OCR_SIDE = 960
DEFAULT_OCR_MIN_CONFIDENCE = 0.6

# Near-duplicate photos: whole-photo cosine at or above this (see retrieval.duplicates).
DEFAULT_DUPLICATE_THRESHOLD = 0.95

# Watching folders (see indexer.indexing.watch): a change is indexed once its path has had
# no event for WATCH_QUIET_S, and a stream of changes is cut into batches at least every
# WATCH_MAX_WAIT_S. A file still changing after WATCH_SETTLE_LIMIT_S is indexed as it is
# (a file that is really bad becomes a recorded failure).
WATCH_QUIET_S = 0.5
WATCH_MAX_WAIT_S = 2.0
WATCH_SETTLE_LIMIT_S = 30.0

# The HTTP server (see retrieval.serve): loopback only unless a token is set.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 20.0
# Failed logins (a wrong token) from one client: the first few are answered at once, the
# next each wait LOGIN_DELAY_S, and after LOGIN_MAX_FAILURES the client gets 429 for
# LOGIN_LOCKOUT_S.
LOGIN_FREE_FAILURES = 5
LOGIN_MAX_FAILURES = 20
LOGIN_DELAY_S = 1.0
LOGIN_LOCKOUT_S = 300.0


def configure_ultralytics() -> None:
    """Keep ultralytics off the network and quiet before it is imported.

    It otherwise checks connectivity, syncs settings, tries to auto-install packages and
    downloads fonts; on an offline machine those calls hang or warn. Users can still override
    each variable in their environment.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    # ultralytics sets OMP_NUM_THREADS=1 at import when it is unset, which would leave
    # every OpenMP library (FAISS, torch) on one core; keep the machine's default instead.
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))


def expand_path(path: str | os.PathLike[str]) -> str:
    """The absolute form of a path a person typed, with ``~`` expanded.

    Shells expand ``~`` only when it is unquoted and at the start of a word; the Python
    API and quoted arguments get it literally, and both mean the home folder.
    """
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def resolve(value: str | None, env: str, default: str | None) -> str | None:
    """Return the first of: explicit value, environment variable, default."""
    if value:
        return value
    from_env = os.environ.get(env, "").strip()
    return from_env or default


def resolve_ocr(value: bool | None) -> bool:
    """Whether an index run reads the text in photos: the argument, else ``OBJSEARCH_OCR``."""
    if value is not None:
        return bool(value)
    raw = os.environ.get(ENV_OCR, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise UsageError(f"{ENV_OCR}={raw!r}: use 1 or 0.")


def resolve_clip_model(value: str | None, recorded: str | None = None) -> str:
    """The CLIP model to load: argument, environment, the index's model, then the default."""
    return resolve(value, ENV_CLIP_MODEL, recorded or DEFAULT_CLIP_MODEL) or DEFAULT_CLIP_MODEL


def resolve_detector(value: str | None, recorded: str | None = None) -> str:
    """The detector weights to load: argument, environment, the index's detector, default."""
    return resolve(value, ENV_DETECTOR, recorded or DEFAULT_DETECTOR) or DEFAULT_DETECTOR


# Device files of the GPU drivers torch can use (NVIDIA, AMD ROCm, WSL): with none of them
# present, ``--device auto`` resolves to the CPU without importing torch to ask.
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def no_gpu_visible() -> bool:
    """True when no GPU driver is visible, so torch could not use a GPU either."""
    return not any(os.path.exists(path) for path in GPU_DRIVER_PATHS)


def resolve_device(device: str | None = None) -> str:
    """Map ``auto``/``cpu``/``cuda`` (or ``cuda:N``) to a concrete torch device string.

    ``cpu``, and ``auto`` on a machine without a GPU driver, are answered without importing
    torch (seconds of start-up that a CPU run with OpenVINO never needs).
    """
    choice = device_name(device)
    base = choice.split(":", 1)[0]
    if base == "cpu" or (base == "auto" and no_gpu_visible()):
        return "cpu" if base == "auto" else choice
    import torch

    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda was asked for, but torch sees no CUDA GPU on this machine. "
            "Use --device cpu (or auto)."
        )
    return choice


def device_name(device: str | None) -> str:
    """The device asked for (argument, environment, default), refused when unknown; no
    probing, so a mistake is reported before anything loads."""
    choice = (resolve(device, ENV_DEVICE, DEFAULT_DEVICE) or DEFAULT_DEVICE).lower()
    if choice.split(":", 1)[0] not in DEVICES:
        raise UsageError(f"Unknown device {choice!r}: use one of auto, cpu, cuda (or cuda:N).")
    return choice


def precision_name(precision: str | None) -> str:
    """The precision asked for (argument, environment, default), refused when unknown."""
    value = (resolve(precision, ENV_PRECISION, DEFAULT_PRECISION) or DEFAULT_PRECISION).lower()
    if value not in PRECISIONS:
        raise UsageError(f"Unknown precision {value!r}: use one of {', '.join(PRECISIONS)}.")
    return value


def backend_name(backend: str | None) -> str:
    """The backend asked for (argument, environment, default), refused when unknown."""
    value = (resolve(backend, ENV_BACKEND, DEFAULT_BACKEND) or DEFAULT_BACKEND).lower()
    if value not in BACKENDS:
        raise UsageError(f"Unknown backend {value!r}: use one of {', '.join(BACKENDS)}.")
    return value


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_precision(precision: str | None, device: str) -> str:
    """``auto`` -> fp16 on CUDA, bf16 on CPUs with bf16 units, else fp32.

    ``int8`` (post-training quantization of the image tower) runs on the CPU only.
    """
    value = precision_name(precision)
    if value in QUANTIZED_PRECISIONS and not device.startswith("cpu"):
        raise _cpu_only(value)
    if value != "auto":
        return value
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def openvino_available() -> bool:
    """Whether OpenVINO imports here; imported as a run uses it (without its conversion
    tools, which a plain ``import openvino`` adds: about 0.13 s of every run's start)."""
    from .models.openvino import import_openvino

    try:
        import_openvino()
    except Exception:
        return False
    return True


def choose_backend(backend: str | None, device: str) -> str:
    """``auto`` -> OpenVINO on CPU when it is installed, else PyTorch."""
    value = backend_name(backend)
    if value == "openvino":
        if not device.startswith("cpu"):
            raise UsageError(
                "The OpenVINO backend runs on the CPU: use --device cpu or --backend torch."
            )
        if not openvino_available():
            raise ObjsearchError(
                "The OpenVINO backend needs the openvino package: pip install openvino."
            )
        return value
    if value == "auto":
        return "openvino" if device.startswith("cpu") and openvino_available() else "torch"
    return value


def _cpu_only(precision: str) -> UsageError:
    return UsageError(
        f"--precision {precision} quantizes the image encoder for the CPU (OpenVINO): use "
        "--device cpu, or fp16 on a GPU."
    )


def refuse_unrunnable_precision(
    precision: str | None, backend: str | None, device: str | None
) -> None:
    """Before a run touches anything: refuse int8 with a GPU or the PyTorch backend.

    Works on the values as given (no device probing), so it costs nothing; the full
    choice is made when the models load.
    """
    value = (resolve(precision, ENV_PRECISION, None) or "").lower()
    if value not in QUANTIZED_PRECISIONS:
        return
    if (resolve(device, ENV_DEVICE, None) or "").lower().startswith("cuda"):
        raise _cpu_only(value)
    chosen = (resolve(backend, ENV_BACKEND, None) or "").lower()
    if chosen == "torch":
        check_quantized_backend(value, chosen)


def check_quantized_backend(precision: str, backend: str) -> None:
    """Refuse a quantized precision on a backend that cannot run it (PyTorch)."""
    if precision in QUANTIZED_PRECISIONS and backend != "openvino":
        raise UsageError(
            f"--precision {precision} needs the OpenVINO backend (pip install openvino nncf); "
            f"the {backend} backend runs fp32, bf16 or fp16."
        )


def calibration_dir() -> Path | None:
    """A folder of photos that calibrates ``--precision int8`` (``OBJSEARCH_CALIBRATION``)."""
    value = os.environ.get(ENV_CALIBRATION, "").strip()
    return Path(expand_path(value)) if value else None


def user_cache_home() -> str:
    """The user's cache folder: ``XDG_CACHE_HOME`` or ``~/.cache``."""
    return os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")


def cache_dir() -> Path:
    """Where converted models live (``OBJSEARCH_CACHE`` or ``~/.cache/objsearch``)."""
    return Path(os.environ.get(ENV_CACHE) or os.path.join(user_cache_home(), "objsearch"))


HUB_ENDPOINT = "https://huggingface.co"


def hub_offline() -> bool:
    """True when the Hugging Face hub is switched off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def hub_endpoint() -> str:
    """The hub's address (``HF_ENDPOINT``, for mirrors)."""
    return os.environ.get("HF_ENDPOINT", HUB_ENDPOINT)


def hub_cache_root() -> str:
    """The Hugging Face hub cache folder, as ``huggingface_hub`` resolves it."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("HF_HOME") or os.path.join(user_cache_home(), "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def quiet_ray_usage_stats() -> None:
    """Ray asks to report usage unless told not to: objsearch never phones home."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@dataclass(frozen=True)
class BatchPlan:
    """How much work an indexing run keeps in flight; the defaults depend on the device."""

    photos: int
    """Photos per detector batch and per commit."""
    embed: int
    """CLIP images per forward pass."""
    decode_workers: int
    """Threads decoding photos while the models run."""


def batch_plan(
    device: str,
    photos: int | None = None,
    embed: int | None = None,
    decode_workers: int | None = None,
) -> BatchPlan:
    """Batch sizes and decode threads for ``device``, with any explicit choice kept.

    On a CPU the models already use every core, so batches stay small (a new index is
    searchable after seconds) and two threads decode; 32 images a tower batch run as fast
    as 64 there (ViT-B/32, bf16: 46 against 45 images/s) with about 85 MB less working
    memory. A GPU is fed by big batches, and decoding needs most of the host's cores to
    keep up with it.
    """
    cuda = device.startswith("cuda")
    cores = os.cpu_count() or 1
    plan = BatchPlan(
        photos=(128 if cuda else 16) if photos is None else int(photos),
        embed=(1024 if cuda else 32) if embed is None else int(embed),
        decode_workers=(max(2, min(12, cores - 2)) if cuda else 2)
        if decode_workers is None
        else int(decode_workers),
    )
    for name, value in (
        ("batch size", plan.photos),
        ("embed batch size", plan.embed),
        ("decode workers", plan.decode_workers),
    ):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    return plan


@dataclass(frozen=True)
class DetectOptions:
    """Detector knobs. Defaults favour recall of real objects over tiny clutter.

    ``padding`` widens each crop by a fraction of the box size on every side, because CLIP
    recognises an object better with a little context than with a tight cut.
    """

    confidence: float = 0.25
    max_objects: int = 20
    min_side: int = 24
    padding: float = 0.1
    dedupe_iou: float = 0.9
    imgsz: int = 640

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise UsageError(f"confidence must be in [0, 1], got {self.confidence}")
        if self.max_objects < 0:
            raise UsageError(f"max objects must be >= 0, got {self.max_objects}")
        if self.min_side < 1:
            raise UsageError(f"minimum crop side must be >= 1 px, got {self.min_side}")
        if not 0.0 <= self.padding <= 1.0:
            raise UsageError(f"crop padding must be in [0, 1], got {self.padding}")
        if not 0.0 < self.dedupe_iou <= 1.0:
            raise UsageError(f"dedupe IoU must be in (0, 1], got {self.dedupe_iou}")
        if not 32 <= self.imgsz <= 4096:
            raise UsageError(f"detector input size must be 32 to 4096 px, got {self.imgsz}")


def resolve_ray_address(value: str | None) -> str | None:
    """Where to run the model stage on Ray: ``--ray``'s value, else ``OBJSEARCH_RAY_ADDRESS``;
    None (neither given) runs everything in this process.

    ``auto`` joins a running cluster (``RAY_ADDRESS`` or one started with ``ray start``) or
    starts a local one, ``local`` always starts a local one, ``ray://HOST:PORT`` connects
    through Ray Client and ``HOST:PORT`` is a cluster's GCS address (drivers on a node).
    """
    address = (resolve(value, ENV_RAY_ADDRESS, None) or "").strip()
    if not address:
        return None
    if address in ("auto", "local") or address.startswith("ray://"):
        return address
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and "/" not in host:
        return address
    raise UsageError(
        f"Unknown Ray address {address!r}: use auto, local, ray://HOST:PORT or HOST:PORT."
    )


@dataclass(frozen=True)
class RaySettings:
    """Run the model stage on Ray: where, and the actor pool's size and resources.

    ``None`` means "from the cluster": one actor per GPU reserving one GPU each, or one
    actor per node on clusters without GPUs (see ``indexer.indexing.ray_stage``).
    """

    address: str = DEFAULT_RAY_ADDRESS
    actors: int | None = None
    cpus_per_actor: float | None = None
    gpus_per_actor: float | None = None

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise UsageError(f"Ray actors must be >= 1, got {self.actors}")
        for name in ("cpus_per_actor", "gpus_per_actor"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name.replace('_', ' ')} must be >= 0, got {value}")

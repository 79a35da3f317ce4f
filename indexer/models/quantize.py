"""``--precision int8``: post-training int8 quantization of the image tower, cached.

On CPUs with int8 dot-product units (VNNI), NNCF's post-training quantization of the
converted image tower runs markedly faster than bf16 (see the README's indexing table). It
needs calibration images to set each layer's activation ranges: whole photos plus fixed
sub-windows of them (object crops are sub-windows of photos, so they look alike to the
tower). The quantized model is cached beside the fp32 conversion, keyed by that conversion
and by a digest of the calibration photos' bytes and of the recipe, so another model or
another calibration set gets its own entry, and written atomically like every conversion.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ModelLoadError
from ..media.decode import DecodeError, read_photo
from ..settings import ENV_CALIBRATION, calibration_dir
from .openvino import publish

log = logging.getLogger("objsearch")

# Bump when the windows or the NNCF settings change: the digest then names a new model.
RECIPE = "int8-v1: whole, 2x2, centre, 3x3 windows; nncf transformer preset"
CALIBRATION_SIDE = 640  # calibration photos are decoded at about this size
# The checkout's sample photos (see data/README.md): the default calibration set.
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

Preprocess = Callable[[Sequence[Image.Image]], dict[str, np.ndarray]]


def default_calibration_photos() -> list[str]:
    """The photos in ``OBJSEARCH_CALIBRATION``, else the checkout's ``data/`` photos, else
    ``[]`` (objsearch installed from a wheel, with no folder named)."""
    folder = calibration_dir() or DATA_DIR
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def calibration_windows(image: Image.Image) -> list[Image.Image]:
    """The whole image, its quadrants, its centre half and a 3x3 grid of thirds."""
    w, h = image.size
    boxes = [(0.0, 0.0, 1.0, 1.0), (0.25, 0.25, 0.75, 0.75)]
    boxes += [(x / 2, y / 2, (x + 1) / 2, (y + 1) / 2) for y in range(2) for x in range(2)]
    boxes += [(x / 3, y / 3, (x + 1) / 3, (y + 1) / 3) for y in range(3) for x in range(3)]
    return [
        image.crop((round(a * w), round(b * h), max(round(c * w), 1), max(round(d * h), 1)))
        for a, b, c, d in boxes
    ]


def calibration_key(photos: Sequence[str]) -> str:
    """A digest of the recipe, the NNCF version and the calibration photos' bytes.

    The version comes from the package's metadata: finding a quantized tower that is
    already cached must not import NNCF (and with it torch).
    """
    from importlib.metadata import version

    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{RECIPE};nncf {version('nncf')};".encode())
    for path in photos:
        with open(path, "rb") as fh:
            digest.update(hashlib.blake2b(fh.read(), digest_size=16).digest())
    return digest.hexdigest()


def require_nncf() -> None:
    """Say how to install NNCF when it is missing, before any model is loaded."""
    try:
        import nncf  # noqa: F401
    except ImportError:
        raise ModelLoadError(
            '--precision int8 needs NNCF to quantize the image encoder: pip install "objsearch[int8]" '
            "(or pip install nncf)."
        ) from None


def calibration_samples(
    preprocess: Preprocess, photos: Sequence[str]
) -> list[dict[str, np.ndarray]]:
    """One preprocessed batch-of-one per calibration window of every readable photo."""
    samples = []
    for path in photos:
        try:
            image = read_photo(path, decode_side=CALIBRATION_SIDE).image
        except DecodeError as exc:
            log.warning("Skipping calibration photo %s: %s", path, exc)
            continue
        samples += [preprocess([window]) for window in calibration_windows(image)]
    if not samples:
        raise ModelLoadError(
            "--precision int8 found no readable calibration photos to quantize with."
        )
    return samples


INT8_SUFFIX = "-int8-"  # <tower folder>-int8-<calibration key>


def quantized_dir(xml: Path, key: str) -> Path:
    """The cache folder of the int8 copy of the tower ``xml`` calibrated as ``key`` says."""
    return xml.parent.with_name(f"{xml.parent.name}{INT8_SUFFIX}{key}")


def quantized_key(xml: Path) -> str:
    """The calibration key of a quantized tower's ``model.xml`` (see :func:`quantized_dir`)."""
    return xml.parent.name.rsplit(INT8_SUFFIX, 1)[1]


def quantized_tower(
    xml: Path,
    names: Sequence[str],
    preprocess: Preprocess,
    photos: Sequence[str],
    key: str | None = None,
) -> Path:
    """The int8 copy of the converted tower ``xml``, quantized once and cached beside it.

    ``names`` are the tower's inputs in graph order; ``photos`` calibrate it. ``key`` (a
    :func:`calibration_key`, as an index records it) names a copy that is already cached:
    it is used without the photos, which an installation without them cannot read.
    """
    if key is not None and (quantized_dir(xml, key) / "model.xml").exists():
        return quantized_dir(xml, key) / "model.xml"
    require_nncf()
    if not photos:
        raise ModelLoadError(
            "--precision int8 needs calibration photos, and this installation has no sample "
            f"photos: set {ENV_CALIBRATION} to a folder of a few typical photos (the same "
            "folder for indexing and searching), or pass ClipEmbedder(calibration=[...])."
        )
    target = quantized_dir(xml, calibration_key(photos))
    quantized = target / "model.xml"
    if quantized.exists():
        return quantized
    import nncf
    import openvino as ov

    samples = calibration_samples(preprocess, photos)
    log.info(
        "Quantizing the image encoder to int8 on %d calibration images (once)...", len(samples)
    )
    model = ov.Core().read_model(str(xml))
    dataset = nncf.Dataset(samples, lambda s: [np.ascontiguousarray(s[n]) for n in names])
    result = nncf.quantize(
        model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples)
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    ov.save_model(result, tmp / "model.xml", compress_to_fp16=False)
    publish(tmp, target)
    return quantized

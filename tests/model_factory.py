"""Build tiny, random models and sample photos on disk for tests and benchmarks.

No pretrained CLIP weights can be downloaded here (no network, no Hugging Face hub), and a
real YOLO checkpoint is not always beside the checkout. So tests write small random models to
a folder with the libraries' own ``save`` methods and load them back through the *same*
``from_pretrained`` / ``YOLO(path)`` calls a user's real model takes: the loading code is
exercised, only the weights are meaningless.

Importable as ``tests.model_factory`` from ``tests/conftest.py`` and from benchmark scripts
that put the repository root on ``sys.path``.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import tempfile
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.models.openclip_tokens import byte_symbols
from indexer.settings import configure_ultralytics

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

# Ultralytics reaches for the network (settings sync, pip auto-install, asset downloads) unless
# told otherwise; this must run before the first ``import ultralytics`` anywhere.
configure_ultralytics()
if "YOLO_CONFIG_DIR" not in os.environ:  # a private settings dir, removed at exit
    os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="objsearch-yolo-cfg-")
    atexit.register(shutil.rmtree, os.environ["YOLO_CONFIG_DIR"], ignore_errors=True)

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "EXIF_PHOTO_NAME",
    "make_clip_tokenizer",
    "make_clip_tokenizer_files",
    "make_sample_photos",
    "make_tiny_clip",
    "make_tiny_yolo",
    "make_vitb32_clip",
]

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
EOW = "</w>"  # CLIP's end-of-word suffix
# The exact pre-tokenisation regex of CLIP (and of transformers' CLIPTokenizer), so the
# merges learned here are the ones the real tokenizer pipeline will apply.
_CLIP_SPLIT_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_MIN_VOCAB = 2 * 256 + 2  # byte alphabet, its </w> variants, and the two special tokens

# A small English corpus: the 80 COCO class names, things people search photos for, colours,
# shapes and generic caption words, so common query words become single tokens.
_COCO_CLASSES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant "
    "stop sign parking meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
    "backpack umbrella handbag tie suitcase frisbee skis snowboard sports ball kite baseball "
    "bat glove skateboard surfboard tennis racket bottle wine glass cup fork knife spoon bowl "
    "banana apple sandwich orange broccoli carrot hot pizza donut cake chair couch potted plant "
    "bed dining table toilet tv laptop mouse remote keyboard cell phone microwave oven toaster "
    "sink refrigerator book clock vase scissors teddy hair drier toothbrush"
)
_EXTRA_OBJECTS = (
    "flowerpot flower butterfly kitten puppy man woman child baby face hand tree house "
    "building street road sky cloud sun beach sea mountain river lake grass garden field "
    "window door wall floor room kitchen lamp sofa desk computer screen camera picture "
    "painting shoe hat shirt bag box basket plant leaf rose tulip insect bee fish duck "
    "chicken lion tiger monkey rabbit squirrel owl eagle snow rain night city bridge tower"
)
_ATTRIBUTES = (
    "red green blue yellow orange purple pink brown black white gray grey dark light bright "
    "small big large tiny little old new young happy sleeping running sitting standing "
    "flying wooden metal plastic round square circle rectangle triangle striped fluffy cute"
)
_FUNCTION_WORDS = (
    "a an the of on in at with and or near next to under over by from is are this that "
    "there some two three many one photo picture image close up view shot"
)
_SENTENCES = (
    "a photo of a cat",
    "a photo of a dog",
    "a photo of the flowerpot",
    "a butterfly landing on the nose of a cat",
    "a close up photo of a butterfly on a flower",
    "a red car parked on the street",
    "a person sitting on a couch with a remote",
    "two cats sleeping on a couch",
    "a blue square and a red circle",
    "a picture of a small dog in the garden",
    "a black and white photo of a city street",
    "a bowl of fruit on the kitchen table",
    "there is a potted plant near the window",
    "a man riding a bicycle on the road",
    "a woman holding an umbrella in the rain",
    "a teddy bear on the bed",
    "a laptop and a cup of coffee on a desk",
    "a bird flying over the sea",
    "an elephant and a giraffe in a field",
    "a plate with pizza and a glass of wine",
)


def _corpus() -> list[str]:
    """Corpus lines; words repeat through caption templates so frequent words merge first."""
    nouns = (_COCO_CLASSES + " " + _EXTRA_OBJECTS).split()
    lines = list(_SENTENCES)
    lines += [f"a photo of a {n}" for n in nouns]
    lines += [f"a picture of the {n}" for n in nouns]
    lines.append(_ATTRIBUTES)
    lines.append(_FUNCTION_WORDS)
    return lines


def _clip_pretokenizer():
    """CLIP's normaliser + pre-tokeniser from ``tokenizers``, as transformers' CLIPTokenizer has."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    return normalizer, pre_tokenizer


def _merge_symbols(words: dict[tuple[str, ...], int], max_merges: int) -> list[tuple[str, str]]:
    """Classic BPE merge learning with ties broken by the pair itself, so runs are repeatable.

    ``words`` maps each word, as a tuple of its starting symbols, to its count.
    ``tokenizers.trainers.BpeTrainer`` breaks count ties in hash-map order, which changes from
    run to run: the same corpus then gives different merges, token ids, and text embeddings.
    """
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, n in words.items():
            for pair in pairwise(symbols):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged_words = {}
        for symbols, n in words.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged_words[tuple(out)] = n
        words = merged_words
    return merges


def _learn_merges(word_counts: Counter[str], max_merges: int) -> list[tuple[str, str]]:
    """CLIP-style merges: each word's last symbol carries the ``</w>`` end-of-word mark."""
    words = {tuple(w[:-1]) + (w[-1] + EOW,): n for w, n in sorted(word_counts.items())}
    return _merge_symbols(words, max_merges)


@functools.lru_cache(maxsize=4)
def _corpus_merges(max_merges: int) -> tuple[tuple[str, str], ...]:
    """Merges learned on the built-in corpus; cached because every CLIP factory call needs them."""
    normalizer, pre_tokenizer = _clip_pretokenizer()
    word_counts: Counter[str] = Counter()
    for line in _corpus():
        pieces = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))
        word_counts.update(piece for piece, _ in pieces)
    return tuple(_learn_merges(word_counts, max_merges))


def make_clip_tokenizer_files(out_dir: Path, vocab_size: int = 1000) -> tuple[Path, Path]:
    """Train a byte-level BPE and write it in CLIP's own ``vocab.json`` + ``merges.txt`` format.

    Why CLIP's format rather than a ``tokenizer.json``: transformers 5 rebuilds ``CLIPTokenizer``
    with CLIP's fixed pipeline (lower-casing, CLIP split regex, byte-level, ``</w>`` suffix), so
    only a vocabulary that follows CLIP's conventions round-trips through ``save_pretrained``.
    The vocabulary is laid out like OpenAI's: 256 byte symbols, the same with ``</w>``, the
    learned merges in order, then ``<|startoftext|>`` and ``<|endoftext|>`` as the last two ids.
    Every byte is in the vocabulary, so no input ever maps to the unknown token.

    Words are split with ``tokenizers``' own CLIP normaliser and pre-tokeniser; merges are
    learned in Python (see :func:`_learn_merges`) so the same arguments always give the same
    files. ``vocab_size`` is an upper bound (at least 514): the corpus may run out of merges.
    """
    if vocab_size < _MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {_MIN_VOCAB}, got {vocab_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    merges = _corpus_merges(vocab_size - _MIN_VOCAB)

    symbols = list(byte_symbols().values())
    tokens = symbols + [s + EOW for s in symbols] + ["".join(m) for m in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    if len(set(tokens)) != len(tokens):  # BPE merges always create new tokens; guard anyway
        raise RuntimeError("BPE merges produced a duplicate token")

    vocab_path = out_dir / "vocab.json"
    merges_path = out_dir / "merges.txt"
    vocab_path.write_text(
        json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False), encoding="utf-8"
    )
    merges_path.write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    return vocab_path, merges_path


def make_clip_tokenizer(out_dir: Path, vocab_size: int = 1000) -> CLIPTokenizer:
    """Write CLIP-format tokenizer files to ``out_dir`` and load them as a ``CLIPTokenizer``.

    Loaded with ``from_pretrained(out_dir)`` because in transformers 5 the constructor call
    ``CLIPTokenizer(vocab_file=..., merges_file=...)`` silently ignores both files and builds
    a 3-token vocabulary (everything becomes ``<|endoftext|>``); ``from_pretrained`` reads
    them correctly in transformers 4 and 5 alike.
    """
    from transformers import CLIPTokenizer

    make_clip_tokenizer_files(out_dir, vocab_size)
    return CLIPTokenizer.from_pretrained(str(out_dir), model_max_length=77)


def _save_clip(out_dir: Path, config_kwargs: dict | None, image_size: int, seed: int) -> Path:
    """Shared body of the CLIP factories: tokenizer, config, random weights, processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clip-tok-") as tmp:
        tokenizer = make_clip_tokenizer(Path(tmp))
    special = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        # CLIP pools the text at the first eos token; an eos id other than 2 makes transformers
        # look it up by id instead of taking argmax(input_ids) (the legacy OpenAI behaviour).
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "max_position_embeddings": 77,
    }
    if config_kwargs is None:  # default CLIPConfig(): the ViT-B/32 shape
        config = CLIPConfig(text_config=special)
    else:
        text = {**config_kwargs["text_config"], **special}
        config = CLIPConfig(
            text_config=text,
            vision_config=config_kwargs["vision_config"],
            projection_dim=config_kwargs["projection_dim"],
        )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(out_dir)

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_resize=True,
        do_center_crop=True,
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out_dir)
    return out_dir


def make_tiny_clip(
    out_dir: Path,
    *,
    projection_dim: int = 32,
    image_size: int = 224,
    patch_size: int = 32,
    seed: int = 0,
) -> Path:
    """Save a tiny random ``CLIPModel`` + ``CLIPProcessor`` to ``out_dir`` and return it.

    Loads offline with ``CLIPModel``/``CLIPProcessor``/``AutoTokenizer``/``CLIPImageProcessor``
    ``.from_pretrained(out_dir)``, exactly like a real checkpoint folder. Two 32/64-wide layers
    per tower keep it well under a second to build; weights depend only on ``seed``.
    """
    cfg = {
        "projection_dim": projection_dim,
        "text_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        "vision_config": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": image_size,
            "patch_size": patch_size,
        },
    }
    return _save_clip(out_dir, cfg, image_size, seed)


def make_vitb32_clip(out_dir: Path, seed: int = 0) -> Path:
    """Save a random CLIP with the default ``CLIPConfig()`` (ViT-B/32 shape, 512-d embeddings).

    For speed benchmarks: it costs what the real ViT-B/32 costs (only the text vocabulary is
    the small one from :func:`make_clip_tokenizer_files`, which changes one lookup table).
    About 500 MB on disk.
    """
    return _save_clip(out_dir, None, 224, seed)


def make_tiny_yolo(
    out_path: Path, *, seed: int = 0, always_detect: bool = True, detect_class: str = "cat"
) -> Path:
    """Save a random YOLO11n detector (80 COCO classes) as a ``.pt`` that ``YOLO(path)`` loads.

    Why the bias edit: a freshly initialised YOLO's activations shrink layer by layer (about
    1e-10 at the stride-32 features), so its outputs are its head biases: it detects nothing,
    even at conf 0.001, on every image, and the object code path would go untested. With
    ``always_detect`` the classification bias of the stride-32 branch is set to +4 for
    ``detect_class`` and to -10 for every other class and branch. Every image then yields the
    same lattice of roughly 50 large ``detect_class`` boxes at confidence sigmoid(4) ~ 0.982,
    independent of content (a black image included): predictable counts for tests, with the
    real predict/NMS/scaling pipeline. With ``always_detect=False`` nothing is ever detected.
    """
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import ROOT, YAML

    names = YAML.load(ROOT / "cfg" / "datasets" / "coco.yaml")["names"]
    class_ids = {name: i for i, name in names.items()}
    if detect_class not in class_ids:
        raise ValueError(f"detect_class must be a COCO class name, got {detect_class!r}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    yolo = YOLO("yolo11n.yaml")  # built from the yaml bundled with ultralytics: no download
    yolo.model.names = dict(names)  # the yaml alone gives placeholder names "0".."79"
    if always_detect:
        head = yolo.model.model[-1]
        cls_heads = [head.cv3]
        if getattr(head, "one2one_cv3", None) is not None:  # end-to-end heads (YOLO26/v10)
            cls_heads.append(head.one2one_cv3)
        with torch.no_grad():
            for cv3 in cls_heads:
                for branch in cv3:
                    branch[-1].bias.fill_(-10.0)
                cv3[-1][-1].bias[class_ids[detect_class]] = 4.0
    yolo.save(out_path)
    return out_path


EXIF_PHOTO_NAME = "exif_rotated.jpg"
_PHOTO_SIZES = ((640, 480), (320, 240), (800, 600), (480, 640), (512, 384), (400, 300))
_PHOTO_FORMATS = (("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("BMP", ".bmp"))
_PHOTO_FORMATS += (("TIFF", ".tiff"), ("GIF", ".gif"))


def _draw_photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Gradient + noise background with a few random rectangles and ellipses."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, size=(2, 3))
    t = ((xx / max(width - 1, 1)) + (yy / max(height - 1, 1)))[..., None] / 2
    bg = c0 * (1 - t) + c1 * t + rng.normal(0, 12, size=(height, width, 3))
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 5))):
        w = int(rng.integers(width // 8, width // 2))
        h = int(rng.integers(height // 8, height // 2))
        x0 = int(rng.integers(0, width - w))
        y0 = int(rng.integers(0, height - h))
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((x0, y0, x0 + w, y0 + h), fill=fill, outline=(0, 0, 0))
    return img


def make_sample_photos(out_dir: Path, n: int = 6, seed: int = 0) -> list[Path]:
    """Write ``n`` generated photos plus one EXIF-rotated JPEG; return all ``n + 1`` paths.

    Sizes cycle from 320x240 to 800x600 with one portrait (480x640); formats cycle through
    JPEG, PNG, WebP, BMP, TIFF and GIF; every third photo goes to ``nested/`` so directory
    walking must recurse. The last path is ``EXIF_PHOTO_NAME``: its pixels are stored as
    400x300 (landscape, a red block at the stored top-left) with EXIF Orientation=6, so a
    viewer that honours EXIF (``PIL.ImageOps.exif_transpose``) shows it as 300x400 portrait
    with the red block at the top-right.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    for i in range(n):
        width, height = _PHOTO_SIZES[i % len(_PHOTO_SIZES)]
        fmt, ext = _PHOTO_FORMATS[i % len(_PHOTO_FORMATS)]
        folder = out_dir / "nested" if i % 3 == 2 else out_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"photo_{i:02d}{ext}"
        img = _draw_photo(rng, width, height)
        if fmt == "GIF":
            img = img.convert("P", palette=Image.Palette.ADAPTIVE)
        img.save(path, format=fmt)
        paths.append(path)

    out_dir.mkdir(parents=True, exist_ok=True)
    img = _draw_photo(rng, 400, 300)
    ImageDraw.Draw(img).rectangle((0, 0, 79, 59), fill=(255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = out_dir / EXIF_PHOTO_NAME
    img.save(path, format="JPEG", quality=90, exif=exif.tobytes())
    paths.append(path)
    return paths

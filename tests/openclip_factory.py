"""Random open_clip checkpoints, written in the layout open_clip publishes on the hub.

Each folder holds ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and
``open_clip_model.safetensors``, and loads back through open_clip's own
``create_model("local-dir:...")``, as a downloaded checkpoint does: only the weights are
meaningless. :func:`make_tiny_open_clip` is a small ViT for tests; it takes
MobileCLIP2-S0's preprocessing (bilinear, no normalisation), the one that differs from
CLIP's. :func:`make_real_shape_open_clip` builds a model zoo architecture (MobileCLIP2-S0,
ViT-B-32-256) with random weights: the cost of the real one, for benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# MobileCLIP2-S0's preprocess_cfg in open_clip's pretrained table (its "dfndr2b" weights).
MOBILECLIP_PREPROCESS = {
    "mean": [0.0, 0.0, 0.0],
    "std": [1.0, 1.0, 1.0],
    "interpolation": "bilinear",
    "resize_mode": "shortest",
}
# The pretrained tag whose preprocessing each benchmarked architecture takes.
REAL_SHAPE_TAGS = {"MobileCLIP2-S0": "dfndr2b", "ViT-B-32-256": "datacomp_s34b_b86k"}
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def write_open_clip(
    out_dir: Path, model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any], seed: int = 0
) -> Path:
    """Write a random open_clip model of ``model_cfg`` into ``out_dir`` (created)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    (out_dir / "open_clip_config.json").write_text(json.dumps(config, indent=1))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{out_dir}", device="cpu")
    # Random init leaves some layers at exactly zero or one; spread them so a path that
    # skipped a layer would show in the vectors.
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * 0.02)
    _calibrate_batch_norms(model, model_cfg["vision_cfg"]["image_size"])
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "open_clip_model.safetensors"))
    return out_dir


def _calibrate_batch_norms(model: Any, size: int) -> None:
    """Give batch norms the statistics of real-ish inputs (noise in [0, 1]).

    Random weights with unit running statistics blow activations up until every image
    gives the same vector (MobileCLIP2-S0's FastViT does), and a test comparing vectors
    could then not fail. Averaging the statistics over a few batches keeps every image
    its own vector; ViTs (layer norms only) are left as they are.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batches below
    model.train()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(4):
            model.encode_image(torch.rand(8, 3, size, size, generator=generator))
    model.eval()


def make_tiny_open_clip(out_dir: Path) -> Path:
    """A tiny random open_clip ViT with MobileCLIP2-S0's preprocessing (32 px input)."""
    return write_open_clip(out_dir, TINY_CONFIG, {**MOBILECLIP_PREPROCESS, "size": 32})


def make_real_shape_open_clip(name: str, out_dir: Path) -> Path:
    """A random open_clip model of the zoo architecture ``name`` with its pretrained
    preprocessing (see :data:`REAL_SHAPE_TAGS`)."""
    import open_clip

    model_cfg = open_clip.get_model_config(name)
    pretrained = open_clip.get_pretrained_cfg(name, REAL_SHAPE_TAGS[name])
    keys = ("mean", "std", "interpolation", "resize_mode")
    preprocess = {k: pretrained[k] for k in keys if k in pretrained}
    preprocess["size"] = model_cfg["vision_cfg"]["image_size"]
    return write_open_clip(out_dir, model_cfg, preprocess)

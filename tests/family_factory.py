"""Tiny random SigLIP, SigLIP 2 and AltCLIP checkpoints for tests and benchmarks.

Like the tiny CLIP in ``model_factory``, each is written with ``save_pretrained`` (model,
tokenizer and image processor) and loads back through the same ``from_pretrained`` calls a
real checkpoint takes. The tokenizers are trained here, offline, on the same small corpus:

* SigLIP: a SentencePiece unigram model (``spiece.model``), as Google's SigLIP ships;
* SigLIP 2: a Gemma-style byte-fallback BPE (``tokenizer.json``), as SigLIP 2 ships;
* AltCLIP: an XLM-R-style unigram vocabulary with scores (``tokenizer.json``).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

from tests.model_factory import _corpus, _merge_symbols

# A few non-English lines so the multilingual tokenizers have pieces for other scripts.
_MULTILINGUAL = (
    "ein Foto von einer Katze",
    "une photo d'un chat",
    "una foto de un gato",
    "一只猫的照片",
    "猫の写真",
    "фотография кошки",
)


def _unigram_pieces(lines: list[str], vocab_size: int, **special: int) -> bytes:
    """A SentencePiece unigram model trained on ``lines`` (single-threaded: repeatable)."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 3),
        model_writer=buffer,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **special,
    )
    return buffer.getvalue()


def make_siglip_tokenizer(out_dir: Path, max_length: int = 16) -> Any:
    """SigLIP's SentencePiece tokenizer (``</s>`` is both end and padding, as in SigLIP)."""
    from transformers import SiglipTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    model = _unigram_pieces(_corpus(), 400, pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    (out_dir / "spiece.model").write_bytes(model)
    return SiglipTokenizer(vocab_file=str(out_dir / "spiece.model"), model_max_length=max_length)


def make_gemma_tokenizer(max_length: int = 16, max_merges: int = 300) -> Any:
    """A Gemma-style BPE: special tokens, 256 byte-fallback tokens, characters, merges.

    Words are learned as ``▁word`` (Gemma marks spaces with ``▁``); merges come from
    :func:`tests.model_factory._merge_symbols`, so the same corpus always gives the same
    vocabulary.
    """
    from transformers import GemmaTokenizer

    counts: Counter[str] = Counter()
    for line in _corpus():
        counts.update("▁" + word for word in line.lower().split())
    merges = _merge_symbols({tuple(w): n for w, n in sorted(counts.items())}, max_merges)
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    tokens += sorted({c for word in counts for c in word})
    tokens += ["".join(m) for m in merges]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    return GemmaTokenizer(
        vocab=vocab, merges=merges, model_max_length=max_length, padding_side="right"
    )


def make_xlmr_tokenizer(out_dir: Path, max_length: int = 32) -> Any:
    """An XLM-R-style unigram tokenizer (``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ..., ``<mask>``)."""
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    model = _unigram_pieces(_corpus() + list(_MULTILINGUAL), 300, unk_id=0, bos_id=-1, eos_id=-1)
    sp = spm.SentencePieceProcessor(model_proto=model)
    pieces = [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(1, sp.get_piece_size())]
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *pieces, ("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=max_length)


def _tower(hidden: int, layers: int = 2, heads: int = 2, mlp: int = 2) -> dict[str, int]:
    return {
        "hidden_size": hidden,
        "intermediate_size": mlp * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
    }


BASE_TOWER = _tower(768, 12, 12, 4)  # ViT-B and its text tower
LARGE_TOWER = _tower(1024, 24, 16, 4)  # ViT-L and XLM-R large


def _text_ids(tokenizer: Any, max_length: int) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "max_position_embeddings": max_length,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }


def _save(model_class: Any, config: Any, processor: Any, out_dir: Path, seed: int) -> Path:
    """Random weights (depending only on ``seed``) and the processor, saved to ``out_dir``."""
    import torch

    torch.manual_seed(seed)
    model_class(config).eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def make_tiny_siglip(
    out_dir: Path,
    *,
    tokenizer: str = "sentencepiece",
    image_size: int = 64,
    patch_size: int = 16,
    seed: int = 0,
    max_length: int = 16,
    text_layers: dict[str, int] | None = None,
    vision_layers: dict[str, int] | None = None,
) -> Path:
    """Save a random ``SiglipModel`` + ``SiglipProcessor`` (32-d embeddings by default).

    ``tokenizer="gemma"`` gives the layout of the fixed-resolution SigLIP 2 checkpoints
    (a ``SiglipModel`` with a Gemma tokenizer).
    """
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = (
        make_gemma_tokenizer(max_length)
        if tokenizer == "gemma"
        else make_siglip_tokenizer(out_dir, max_length)
    )
    text = {**(text_layers or _tower(32)), **_text_ids(tok, max_length)}
    vision = {**(vision_layers or _tower(32)), "image_size": image_size, "patch_size": patch_size}
    config = SiglipConfig(text_config=text, vision_config=vision)
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    processor = SiglipProcessor(image_processor=image_processor, tokenizer=tok)
    return _save(SiglipModel, config, processor, out_dir, seed)


def make_tiny_siglip2(
    out_dir: Path,
    *,
    patch_size: int = 16,
    max_num_patches: int = 64,
    seed: int = 0,
    max_length: int = 16,
    text_layers: dict[str, int] | None = None,
    vision_layers: dict[str, int] | None = None,
) -> Path:
    """Save a random NaFlex ``Siglip2Model`` + ``Siglip2Processor`` (32-d embeddings)."""
    from transformers import (
        Siglip2Config,
        Siglip2ImageProcessor,
        Siglip2Model,
        Siglip2Processor,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = make_gemma_tokenizer(max_length)
    text = {**(text_layers or _tower(32)), **_text_ids(tok, max_length)}
    vision = {
        **(vision_layers or _tower(32)),
        "patch_size": patch_size,
        "num_patches": max_num_patches,
    }
    config = Siglip2Config(text_config=text, vision_config=vision)
    image_processor = Siglip2ImageProcessor(patch_size=patch_size, max_num_patches=max_num_patches)
    processor = Siglip2Processor(image_processor=image_processor, tokenizer=tok)
    return _save(Siglip2Model, config, processor, out_dir, seed)


def make_tiny_altclip(
    out_dir: Path,
    *,
    image_size: int = 64,
    patch_size: int = 16,
    projection_dim: int = 24,
    seed: int = 0,
    text_layers: dict[str, int] | None = None,
    vision_layers: dict[str, int] | None = None,
) -> Path:
    """Save a random ``AltCLIPModel`` (XLM-R text tower) + ``AltCLIPProcessor`` (24-d)."""
    from transformers import AltCLIPConfig, AltCLIPModel, AltCLIPProcessor, CLIPImageProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = make_xlmr_tokenizer(out_dir)
    text = {**(text_layers or _tower(32)), **_text_ids(tok, 40)}
    text["project_dim"] = text["hidden_size"]
    vision = {**(vision_layers or _tower(32)), "image_size": image_size, "patch_size": patch_size}
    config = AltCLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    processor = AltCLIPProcessor(image_processor=image_processor, tokenizer=tok)
    return _save(AltCLIPModel, config, processor, out_dir, seed)


def make_benchmark_model(family: str, out_dir: Path) -> Path:
    """A random model of the shape ``objsearch models`` reports speed for (see the registry).

    SigLIP: ViT-B/16 at 224 px (``google/siglip-base-patch16-224``); SigLIP 2 NaFlex: ViT-B/16
    with 256 patches; AltCLIP: ViT-L/14 with an XLM-R large text tower (``BAAI/AltCLIP-m18``).
    Only the vocabularies are small, which changes one lookup table, not the cost.
    """
    if family == "siglip":
        return make_tiny_siglip(
            out_dir, image_size=224, max_length=64, text_layers=BASE_TOWER, vision_layers=BASE_TOWER
        )
    if family == "siglip2":
        return make_tiny_siglip2(
            out_dir,
            max_num_patches=256,
            max_length=64,
            text_layers=BASE_TOWER,
            vision_layers=BASE_TOWER,
        )
    if family == "altclip":
        return make_tiny_altclip(
            out_dir,
            image_size=224,
            patch_size=14,
            projection_dim=768,
            text_layers=LARGE_TOWER,
            vision_layers=LARGE_TOWER,
        )
    raise ValueError(f"no benchmark model for family {family!r}")

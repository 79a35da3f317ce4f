"""open_clip's text tokenizer as a ``tokenizers`` tokenizer, so queries need no torch.

open_clip models (MobileCLIP2, the DataComp and LAION CLIPs) tokenize with OpenAI CLIP's
byte-level BPE, shipped inside the open_clip package as ``bpe_simple_vocab_16e6.txt.gz``,
in plain Python that imports torch. The same vocabulary and merges written as a
``tokenizers`` BPE give the same ids: the text is cleaned as open_clip cleans it
(:func:`clean_query`: ``ftfy``, HTML entities, whitespace, lower case), split with CLIP's
pattern, mapped to byte symbols, merged with ``</w>`` ending each word, and framed by
``<start_of_text>`` / ``<end_of_text>``. Padding (ids of 0 up to the context length, 77)
and truncation (the end token kept last) come from the recorded
:class:`~indexer.models.text.QueryRecipe`.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import unicodedata
from pathlib import Path
from typing import Any

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
START, END = "<start_of_text>", "<end_of_text>"
PAD_ID = 0  # open_clip pads with zeros (the id of "!"); the model pools at the end token
CLEAN = "open_clip"  # the QueryRecipe.clean value that selects clean_query
# CLIP's split pattern (open_clip's SimpleTokenizer), less its special tokens, which the
# tokenizer matches as added tokens before splitting.
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
MERGES = 49152 - 256 - 2  # the merges open_clip reads from the file


def bpe_path() -> Path:
    """The BPE file inside the installed open_clip package (found without importing it,
    which would import torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed: pip install 'objsearch[openclip]'")
    path = Path(next(iter(spec.submodule_search_locations))) / BPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"open_clip's BPE vocabulary is missing: {path}")
    return path


def byte_symbols() -> dict[int, str]:
    """CLIP's reversible map from bytes to printable characters (GPT-2's byte encoder)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    codes = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes, strict=True)}


def vocabulary(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """open_clip's token ids and merges, in its order: bytes, bytes + ``</w>``, merges,
    then the two special tokens."""
    with gzip.open(path) as fh:
        lines = fh.read().decode("utf-8").split("\n")[1 : MERGES + 1]
    merges = [(a, b) for a, b in (line.split() for line in lines)]
    symbols = list(byte_symbols().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges)]
    tokens += [START, END]
    return {t: i for i, t in enumerate(tokens)}, merges


def build_tokenizer(path: Path | None = None) -> Any:
    """A ``tokenizers.Tokenizer`` giving open_clip's ids for text :func:`clean_query` made."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab, merges = vocabulary(path or bpe_path())
    tokenizer = Tokenizer(models.BPE(vocab, merges, end_of_word_suffix="</w>", fuse_unk=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip(), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.BPEDecoder(suffix="</w>")
    tokenizer.add_special_tokens([AddedToken(START), AddedToken(END)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{START} $A {END}",
        special_tokens=[(START, vocab[START]), (END, vocab[END])],
    )
    return tokenizer


def clean_query(text: str) -> str:
    """The text as open_clip's ``lower`` cleaning leaves it: ``ftfy`` repairs (when
    installed, as it is wherever open_clip is), HTML entities decoded twice, runs of
    whitespace collapsed, lower case."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # the cache was copied to a machine without open_clip
        text = unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()

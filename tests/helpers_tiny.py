"""Tiny, offline, randomly initialised models and tokenizers for the test-suite.

Everything here is built in-process (no network, no Hugging Face hub):

* :func:`make_tokenizer` trains a small fast tokenizer (vocab ~400) on :data:`CORPUS` with the
  ``tokenizers`` library and wraps it in ``transformers.PreTrainedTokenizerFast``:
  ``"bpe"`` = GPT-2 style byte-level BPE (``<|endoftext|>`` is BOS, EOS and PAD, no BOS is
  added to inputs, as GPT-2/SmolLM2 do); ``"sp"`` = SentencePiece-style BPE with a Metaspace
  pre-tokenizer, ``<s>`` BOS (prepended by the post-processor), ``</s>`` EOS, ``<pad>``.
  Both know the ChatML markers ``<|im_start|>`` / ``<|im_end|>``; with ``chat_template=True``
  the tokenizer gets :data:`CHATML_TEMPLATE` (preceded by ``{{ bos_token }}`` for ``"sp"``).
* :func:`make_tiny_model` builds a tiny causal LM of any family of
  :data:`tuneshift.models.anatomy.SUPPORTED_FAMILIES` (``"gemma3"`` and ``"gemma3_text"`` both
  give a text-only ``Gemma3ForCausalLM``) with the tokenizer's vocabulary and special ids; the
  family-specific config comes from the family's ``Anatomy.tiny_config``.
* :func:`make_tiny_model_dir` saves model + tokenizer with ``save_pretrained`` into a folder
  that ``tuneshift.load_model(str(path))`` loads as a ``local`` spec. (Caveat: for
  ``qwen2`` folders, transformers 5 ``AutoTokenizer`` substitutes its own ``Qwen2Tokenizer``,
  which tokenizes the ``"sp"`` vocabulary differently; use ``"bpe"`` with ``qwen2``.)
* :data:`TINY_PROMPTS` / :func:`write_prompts_jsonl`: a small JSONL prompt file whose words
  are in the corpus (so prompts are a handful of tokens each).

Random weights are drawn with ``initializer_range=0.2`` (not the 0.02 default) so that the
next-token distributions are far from uniform and attributions are not all ~1e-7.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

CORPUS: list[str] = [
    "Rewrite the sentence politely.",
    "Input: send the report now",
    "Summarise the paragraph in one sentence.",
    "Answer the question with one word.",
    "Translate the sentence into French.",
    "Please send the report to the team now.",
    "Output: the report is ready",
    "List three colours of the sky.\nThe sky is blue, grey and red.",
    "Write a short poem about the sea and the wind.",
    "Classify the review as positive or negative.\nReview: the food was good",
    "Explain why the sky is blue in simple words.",
    "The team sent the report to the manager before noon.",
    "Could you please send me the report? Thank you so much!",
    "Give me a title for the story about a small cat.",
]

VOCAB_WORDS: list[str] = [
    "report",
    "sky",
    "sentence",
    "team",
    "poem",
    "wind",
    "review",
    "food",
    "story",
    "cat",
    "sea",
    "blue",
    "manager",
    "paragraph",
    "question",
    "colours",
    "title",
    "word",
    "french",
    "negative",
    "positive",
]
"""Words of the tiny corpus, the vocabulary of the weight-based methods in tests (``vocab_file``)."""

BPE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SP_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

TOKENIZER_KINDS = ("bpe", "sp")

_TOKENIZER_CACHE: dict = {}


def _train(kind: str, vocab_size: int):
    from tokenizers import ByteLevelBPETokenizer, SentencePieceBPETokenizer, processors

    corpus = CORPUS * 10
    if kind == "bpe":
        bl = ByteLevelBPETokenizer()
        bl.train_from_iterator(
            corpus, vocab_size=vocab_size, min_frequency=1, special_tokens=BPE_SPECIALS, show_progress=False
        )
        return bl._tokenizer
    if kind == "sp":
        sp = SentencePieceBPETokenizer(unk_token="<unk>")
        sp.train_from_iterator(
            corpus, vocab_size=vocab_size, min_frequency=1, special_tokens=SP_SPECIALS, show_progress=False
        )
        sp.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", sp.token_to_id("<s>"))]
        )
        return sp._tokenizer
    raise ValueError(f"unknown tokenizer kind {kind!r}; choose one of {TOKENIZER_KINDS}")


def make_tokenizer(kind: str = "bpe", chat_template: bool | str = False, vocab_size: int = 400):
    """A fast tokenizer trained offline on :data:`CORPUS`.

    Args:
        kind: ``"bpe"`` (byte-level, GPT-2 style) or ``"sp"`` (SentencePiece-style Metaspace BPE).
        chat_template: False (none), True (ChatML, see module docstring) or a Jinja string.
        vocab_size: target vocabulary size (byte-level needs > 259).

    Returns:
        A new ``transformers.PreTrainedTokenizerFast`` (training is memoised; the wrapper is
        fresh each call, so callers may change it).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    key = (kind, vocab_size)
    if key not in _TOKENIZER_CACHE:
        _TOKENIZER_CACHE[key] = _train(kind, vocab_size).to_str()
    backend = Tokenizer.from_str(_TOKENIZER_CACHE[key])
    if kind == "bpe":
        tok = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<|endoftext|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            unk_token="<|endoftext|>",
            additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        )
    else:
        tok = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<s>",
            eos_token="</s>",
            pad_token="<pad>",
            unk_token="<unk>",
            additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        )
    if chat_template is True:
        tok.chat_template = ("{{ bos_token }}" if kind == "sp" else "") + CHATML_TEMPLATE
    elif isinstance(chat_template, str):
        tok.chat_template = chat_template
    return tok


def tiny_config(
    family: str,
    vocab_size: int,
    bos_token_id: int,
    eos_token_id: int,
    pad_token_id: int,
    max_positions: int = 128,
    initializer_range: float = 0.2,
    **overrides,
):
    """(config, model class) of a tiny model of ``family`` (hidden 32, FFN 64, 2 layers, 4 heads).

    The family-specific part (config class, grouped-query heads, head_dim, ...) is the family's
    own ``tiny_config`` next to its anatomy class (``tuneshift/models/anatomy/<family>.py``), so a
    newly registered family needs no change here. ``overrides`` are set on the config afterwards.

    Raises:
        ValueError: ``family`` (a ``model_type``, aliases such as ``gemma3_text`` included) has
            no registered anatomy.
    """
    from tuneshift.models.anatomy import TinyDims, anatomy_class, registered_model_types

    cls = anatomy_class(family)
    if cls is None:
        raise ValueError(f"no tiny config for family {family!r}; registered: {', '.join(registered_model_types())}")
    dims = TinyDims(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_layers=2,
        num_heads=4,
        max_positions=max_positions,
        initializer_range=initializer_range,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    cfg, model_cls = cls.tiny_config(dims)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg, model_cls


def make_tiny_model(
    tokenizer,
    family: str = "llama",
    seed: int = 0,
    max_positions: int = 128,
    initializer_range: float = 0.2,
    **overrides,
):
    """A tiny randomly initialised causal LM (eval mode, float32) matching ``tokenizer``."""
    import torch

    cfg, cls = tiny_config(
        family,
        len(tokenizer),
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        max_positions=max_positions,
        initializer_range=initializer_range,
        **overrides,
    )
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    return model


def make_tiny_model_dir(
    path,
    family: str = "llama",
    tokenizer_kind: str = "bpe",
    chat_template: bool | str = False,
    seed: int = 0,
    max_positions: int = 128,
    **overrides,
) -> Path:
    """Save a tiny model + its tokenizer (``save_pretrained``) into ``path`` and return it.

    ``tuneshift.load_model(str(path))`` loads the folder (spec kind ``local``).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(tokenizer_kind, chat_template=chat_template)
    model = make_tiny_model(tok, family, seed=seed, max_positions=max_positions, **overrides)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


TINY_PROMPTS: list[dict] = [
    {
        "id": "rewrite",
        "prompt": "Rewrite the sentence politely.\nInput: send the report now",
        "instruction": ["Rewrite the sentence politely."],
        "context": "send the report now",
        "response": "Could you please send the report?",
    },
    {
        "id": "summary",
        "prompt": "Summarise the paragraph in one sentence.",
        "instruction": ["Summarise the paragraph in one sentence."],
        "response": "The team sent the report.",
    },
    {
        "id": "answer",
        "prompt": "Explain why the sky is blue. Answer with one word.",
        "instruction": ["Answer with one word."],
        "response": "Light",
    },
    {
        "id": "translate",
        "prompt": "Translate the sentence into French: the report is ready",
        "instruction": ["Translate the sentence into French:"],
        "context": "the report is ready",
        "response": "the report is ready",
    },
    {
        "id": "classify",
        "prompt": "Classify the review as positive or negative.\nReview: the food was good",
        "instruction": ["Classify the review as positive or negative."],
        "context": "the food was good",
        "response": "positive",
        "rating": 3,
    },
    {
        "id": "poem",
        "prompt": "Write a short poem about the sea and the wind.",
        "instruction": ["Write a short poem"],
        "response": "The sea and the wind, the sky is blue.",
        "group": "write",
    },
]


def write_prompts_jsonl(path, records: Sequence[dict] = TINY_PROMPTS) -> Path:
    """Write ``records`` as a JSONL prompt file and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@dataclass
class CliResult:
    """What a CLI invocation returned: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def assert_one_line_error(r: CliResult, *needles: str) -> None:
    """Exit code 2, no traceback, last stderr line ``error: ...``, every needle in stderr."""
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    assert r.err.strip().splitlines()[-1].startswith("error:")
    for n in needles:
        assert n in r.err, r.err


def paper_dir() -> Path | None:
    """The paper's reference data folder (``datasets/`` and ``results/attribution_interpret/`` or
    ``released_attributions/``): ``$TUNESHIFT_PAPER_DATA`` when set (a user's clone of the authors'
    repository; ``make test`` sets it, see the Makefile's ``PAPER_DATA``), else -- a fallback the
    library does not have -- ``../shared/paper`` next to the repository. None if the chosen folder
    has no ``datasets/FinalDataset.tsv``; tests that need it skip with :func:`paper_skip_reason`."""
    env = os.environ.get("TUNESHIFT_PAPER_DATA", "").strip()
    cands = [Path(env).expanduser()] if env else [Path(__file__).resolve().parents[2] / "shared" / "paper"]
    for cand in cands:
        if (cand / "datasets" / "FinalDataset.tsv").is_file():
            return cand
    return None


def paper_skip_reason() -> str:
    """Why the paper-data tests are skipped (names the variable to set)."""
    env = os.environ.get("TUNESHIFT_PAPER_DATA", "").strip()
    if env:
        return f"TUNESHIFT_PAPER_DATA={env} has no datasets/FinalDataset.tsv"
    return (
        "the paper's released data is absent: set TUNESHIFT_PAPER_DATA to a clone of the authors' repository "
        "(docs/paper_reproduction.md)"
    )


def make_lora_adapter(
    model_dir,
    out,
    r: int = 2,
    targets: Sequence[str] = ("q_proj", "v_proj", "down_proj"),
    seed: int = 3,
    std: float = 0.5,
):
    """Save a PEFT LoRA adapter of rank ``r`` on ``targets`` of the tiny model in ``model_dir``
    into ``out``, with ``lora_B ~ N(0, std)`` (a non-zero update). Returns ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model_dir))
    peft_model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets)))
    torch.manual_seed(seed)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, std)
    peft_model.save_pretrained(str(out))
    return Path(out)

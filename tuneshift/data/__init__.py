"""Data layer of tuneshift: prompt datasets, instruction spans, and prompt encoding.

Implements the inputs of Method A of Wu et al., "From Language Modeling to Instruction
Following" (NAACL 2024, arXiv 2310.00492): prompts with annotated instruction spans
(:mod:`tuneshift.data.prompts`, :mod:`tuneshift.data.spans`) and their encoding into token ids
with one role per token (:mod:`tuneshift.data.encoding`).
"""

from tuneshift.data.encoding import ROLES, EncodedPrompt, encode_prompt, encode_response
from tuneshift.data.prompts import (
    PromptRecord,
    PromptSet,
    bundled_prompts_path,
    group_from_id,
    read_prompts,
)
from tuneshift.data.spans import locate_span, locate_spans

__all__ = [
    "ROLES",
    "EncodedPrompt",
    "PromptRecord",
    "PromptSet",
    "bundled_prompts_path",
    "encode_prompt",
    "encode_response",
    "group_from_id",
    "locate_span",
    "locate_spans",
    "read_prompts",
]

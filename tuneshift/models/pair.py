"""A pre-trained model and its instruction-tuned counterpart, with the labels reports use."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelPair", "DEMO_PAIR", "PAPER_PAIR"]


@dataclass(frozen=True)
class ModelPair:
    """The two models a comparison is about.

    Attributes:
        base: the pre-trained model (a model spec such as ``gemma-3-270m``, or a name).
        tuned: its instruction-tuned counterpart (spec or name).
        labels: how reports name them, ``(base label, tuned label)``; default the names.
    """

    base: str
    tuned: str
    labels: tuple[str, str] | None = None

    @property
    def base_label(self) -> str:
        """Display label of the pre-trained model (str)."""
        return self.labels[0] if self.labels else self.base

    @property
    def tuned_label(self) -> str:
        """Display label of the instruction-tuned model (str)."""
        return self.labels[1] if self.labels else self.tuned


#: the pair `tuneshift demo` compares: the packaged Gemma 3 270M and the LoRA adapter shipped with
#: tuneshift (docs/tuning.md).
DEMO_PAIR = ModelPair("gemma-3-270m", "gemma-3-270m-instruct")
#: the pair of the paper's released attributions (Wu et al., NAACL 2024): LLaMA-7B and Vicuna-7B v1.1.
PAPER_PAIR = ModelPair("paper:llama_7b", "paper:vicuna_7b", ("LLaMA-7B", "Vicuna-7B"))

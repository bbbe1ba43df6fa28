"""The :class:`Attribution` result object: one prompt, one response, one model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuneshift.data.token_text import pieces_for_display


@dataclass
class Attribution:
    """Input -> output attribution of one record (Wu et al. 2024, Sec. 3.1).

    Rows are the *user-prompt* tokens only (BOS and chat-template tokens are never
    attributed); columns are the response tokens (EOS excluded).

    Attributes:
        record_id, group, rating: from the prompt record (rating None when unrated).
        prompt_token_ids: ``[n_prompt_tokens]`` ids of the user-prompt tokens.
        prompt_tokens: ``[n_prompt_tokens]`` raw token strings (the tokenizer's vocabulary
            entries, e.g. ``Ã©`` for "é" in a byte-level BPE; for matching, not for display).
        prompt_roles: ``[n_prompt_tokens]`` roles: ``instruction``, ``context`` or ``prompt``.
        prompt_positions: ``[n_prompt_tokens]`` positions of these tokens in the model input.
        response_token_ids, response_tokens: ``[n_response_tokens]``.
        response_text: the decoded response.
        raw: signed attribution, ``[n_prompt_tokens, n_response_tokens]`` float32, in the
            units of the run's target. With the defaults (method ``gradient_x_input``, target
            ``probability``, the paper's): d p(y_j) / d e_n . e_n, units of probability. The
            method and target are recorded in the run manifest (``Run.method``).
        instruction_mask: ``[n_prompt_tokens]`` bool, role == instruction.
        density: ``[n_prompt_tokens]`` importance density in [0, 1].
        instruction_score: sum of density over instruction tokens / log2(2 + n); NaN
            when the prompt has no instruction token.
        short_response: response shorter than the minimum length (excluded from stats).
        truncated: the response was cut to fit the model's context window.
        ended_with_eos: generation ended with EOS (None for given responses).
        n_input_tokens: length of the full model input before the response.
        unlocated_spans: instruction/context spans that could not be found in the prompt.
        prompt_pieces, response_pieces: ``[n_prompt_tokens]`` / ``[n_response_tokens]`` readable
            text of each token (what ``show`` and the report print), from the tokenizer at
            attribution time (:func:`tuneshift.data.token_text.token_pieces`). None (runs
            written before they were stored): derived from the raw token strings without the
            tokenizer (:func:`tuneshift.data.token_text.pieces_for_display`).
    """

    record_id: str
    prompt_token_ids: np.ndarray
    prompt_tokens: list[str]
    prompt_roles: list[str]
    prompt_positions: np.ndarray
    response_token_ids: np.ndarray
    response_tokens: list[str]
    response_text: str
    raw: np.ndarray
    instruction_mask: np.ndarray
    density: np.ndarray
    instruction_score: float
    group: str = "default"
    rating: int | None = None
    short_response: bool = False
    truncated: bool = False
    ended_with_eos: bool | None = None
    n_input_tokens: int = 0
    unlocated_spans: list[str] = field(default_factory=list)
    prompt_pieces: list[str] | None = None
    response_pieces: list[str] | None = None

    def __post_init__(self):
        if self.prompt_pieces is None or self.response_pieces is None:
            p, r = pieces_for_display(self.prompt_tokens, self.response_tokens)
            self.prompt_pieces = p if self.prompt_pieces is None else list(self.prompt_pieces)
            self.response_pieces = r if self.response_pieces is None else list(self.response_pieces)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_prompt_tokens, n_response_tokens)``."""
        return tuple(self.raw.shape)  # type: ignore[return-value]

    def to_row(self) -> dict:
        """A flat dict of Arrow-friendly values (lists, not arrays) for the run's Parquet."""
        return {
            "id": self.record_id,
            "group": self.group,
            "rating": self.rating,
            "prompt_token_ids": [int(x) for x in self.prompt_token_ids],
            "prompt_tokens": list(self.prompt_tokens),
            "prompt_roles": list(self.prompt_roles),
            "prompt_positions": [int(x) for x in self.prompt_positions],
            "response_token_ids": [int(x) for x in self.response_token_ids],
            "response_tokens": list(self.response_tokens),
            "response_text": self.response_text,
            "n_prompt_tokens": int(self.raw.shape[0]),
            "n_response_tokens": int(self.raw.shape[1]),
            "raw": np.asarray(self.raw, dtype=np.float32).ravel().tolist(),
            "instruction_mask": [bool(x) for x in self.instruction_mask],
            "density": [float(x) for x in self.density],
            "instruction_score": float(self.instruction_score),
            "short_response": bool(self.short_response),
            "truncated": bool(self.truncated),
            "ended_with_eos": self.ended_with_eos,
            "n_input_tokens": int(self.n_input_tokens),
            "unlocated_spans": list(self.unlocated_spans),
            "prompt_pieces": list(self.prompt_pieces),
            "response_pieces": list(self.response_pieces),
        }

    @classmethod
    def from_row(cls, row: dict) -> "Attribution":
        """Inverse of :meth:`to_row`."""
        n, r = int(row["n_prompt_tokens"]), int(row["n_response_tokens"])
        rating = row.get("rating")
        if rating is not None and not (isinstance(rating, float) and np.isnan(rating)):
            rating = int(rating)
        else:
            rating = None
        eos = row.get("ended_with_eos")
        return cls(
            record_id=str(row["id"]),
            group=str(row.get("group") or "default"),
            rating=rating,
            prompt_token_ids=np.asarray(row["prompt_token_ids"], dtype=np.int64),
            prompt_tokens=list(row["prompt_tokens"]),
            prompt_roles=list(row["prompt_roles"]),
            prompt_positions=np.asarray(row["prompt_positions"], dtype=np.int64),
            response_token_ids=np.asarray(row["response_token_ids"], dtype=np.int64),
            response_tokens=list(row["response_tokens"]),
            response_text=str(row.get("response_text") or ""),
            raw=np.asarray(row["raw"], dtype=np.float32).reshape(n, r),
            instruction_mask=np.asarray(row["instruction_mask"], dtype=bool),
            density=np.asarray(row["density"], dtype=np.float64),
            instruction_score=float(row["instruction_score"]),
            short_response=bool(row.get("short_response", False)),
            truncated=bool(row.get("truncated", False)),
            ended_with_eos=None if eos is None or (isinstance(eos, float) and np.isnan(eos)) else bool(eos),
            n_input_tokens=int(row.get("n_input_tokens") or 0),
            unlocated_spans=list(row.get("unlocated_spans") or []),
            prompt_pieces=None if row.get("prompt_pieces") is None else list(row["prompt_pieces"]),
            response_pieces=None if row.get("response_pieces") is None else list(row["response_pieces"]),
        )

"""Annotator backends: who answers the three annotation prompts.

Source: Wu et al. 2024, feed-forward explanation (concepts named by an LLM; the paper used
GPT-4). Every backend has ``name``, ``model_name``, ``concurrency`` (how many requests may run
at once), ``sampler`` (its sampling rule's version, part of the cache key; None when the server
samples) and ``complete(prompt, params, run) -> str``; a batching backend also has
``complete_batch(prompts, params, runs) -> list[str]``, which the driver then prefers.
:func:`make_backend` builds one from an ``--annotator`` spec:

* ``local:SPEC`` -> :class:`LocalBackend`, a transformers model loaded with
  :func:`~tuneshift.models.loading.load_model` (offline; default ``smollm2-135m-instruct``);
  batched, left-padded generation with the per-row :class:`GumbelMaxSampler`.
* ``openai:MODEL`` -> :class:`OpenAIBackend`, any OpenAI-compatible chat server (OpenAI, vLLM,
  llama.cpp server, Ollama) through the ``openai`` package.

Retry policy of :class:`OpenAIBackend` (decided here, see ``docs/concepts.md``): the ``openai``
client retries 408/409/429/5xx, timeouts and dropped connections with exponential backoff and
jitter (0.5 s doubling to 8 s, ``Retry-After`` honoured), ``max_retries`` times; a response
that is not valid chat-completion JSON is retried the same number of times by this module.
401/403 (bad or missing key), 404 (unknown model), 400 (request refused) and an unreachable
server stop the whole annotation with :class:`AnnotatorFatalError`; anything else that still
fails after the retries counts as one failed component (the rest go on; re-running resumes
from the cache). The API key is read from an environment variable and is never written to the
cache, the outputs or any message.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time

from tuneshift.errors import ModelSpecError, OptionError, TuneshiftError

__all__ = [
    "DEFAULT_LOCAL_ANNOTATOR",
    "LOCAL_SAMPLER",
    "AnnotatorFatalError",
    "GumbelMaxSampler",
    "LocalBackend",
    "OpenAIBackend",
    "make_backend",
    "MalformedResponseError",
]

DEFAULT_LOCAL_ANNOTATOR = "local:smollm2-135m-instruct"
#: sampling parameters of every annotation request: the label, level and tasks fit in ~30 tokens.
DEFAULT_PARAMS = {"temperature": 1.0, "max_new_tokens": 48}


class AnnotatorFatalError(TuneshiftError):
    """The annotator cannot answer any request (bad key, unknown model, refused request, no server)."""


class MalformedResponseError(RuntimeError):
    """The server answered, but not with a chat completion that has text."""


def _seed(prompt: str, run: int) -> int:
    """A per-(prompt, run) seed: 31 bits of sha256("run\\nprompt")."""
    return int.from_bytes(hashlib.sha256(f"{run}\n{prompt}".encode()).digest()[:4], "little") & 0x7FFFFFFF


#: the local backend's sampling rule, part of its cache key and of ``annotations.json``: answers
#: of another rule (before version 1: HF ``generate(do_sample=True)`` under ``torch.manual_seed``)
#: are other samples and are never mixed with these.
LOCAL_SAMPLER = "gumbel-max-v1"


class GumbelMaxSampler:
    """A logits processor that makes greedy decoding sample, one independent RNG per row.

    Gumbel-max: ``argmax(logits / T + G)`` with ``G = -log(-log(U))``, ``U ~ Uniform(0, 1)``
    i.i.d. per vocabulary entry, is an exact sample from ``softmax(logits / T)``. Row ``i``
    draws its noise from ``generators[i]`` (one vector of the vocabulary's size per decoding
    step), so its tokens depend only on its own seed and logits, not on the other rows of the
    batch nor on the batch size.

    Args:
        generators: one ``torch.Generator`` per batch row (CPU), seeded by the caller.
        temperature: > 0.

    Raises:
        ValueError: ``temperature`` <= 0.
    """

    def __init__(self, generators, temperature: float):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.generators = list(generators)
        self.temperature = float(temperature)

    def noise(self, n_vocab: int):
        """One Gumbel(0, 1) vector per row, float64 ``[rows, n_vocab]`` (advances every generator)."""
        import torch

        u = torch.stack([torch.rand(n_vocab, generator=g, dtype=torch.float64) for g in self.generators])
        u = u.clamp_(min=torch.finfo(torch.float64).tiny)  # rand is in [0, 1): avoid log(0)
        return -torch.log(-torch.log(u))

    def __call__(self, input_ids, scores):
        """``scores [rows, vocab]`` -> ``scores / T + Gumbel noise`` (float64): their argmax is the sample."""
        if scores.shape[0] != len(self.generators):
            raise ValueError(f"{scores.shape[0]} rows of scores for {len(self.generators)} generators")
        import torch

        g = self.noise(scores.shape[-1]).to(scores.device)
        return scores.to(torch.float64) / self.temperature + g


class LocalBackend:
    """A local transformers chat model as annotator, answering a batch of prompts in one ``generate``.

    Args:
        spec: anything :func:`~tuneshift.models.loading.load_model` accepts.
        loaded: an already loaded model (tests), instead of ``spec``.
        device, dtype: for :func:`~tuneshift.models.loading.load_model`.

    ``complete_batch(prompts, params, runs)``: every prompt as one user message through the
    tokenizer's chat template (raw text if it has none), left-padded into one batch, at most
    ``params["max_new_tokens"]`` (default 48) new tokens each; ``temperature`` > 0 samples with
    :class:`GumbelMaxSampler` seeded per row by ``sha256(run, prompt)`` (so an answer does not
    depend on the batch it was in), 0 is greedy. ``complete(prompt, params, run)`` is a batch
    of one. ``sampler`` (:data:`LOCAL_SAMPLER`) names the sampling rule for the cache key.
    """

    name = "local"
    concurrency = 1
    sampler = LOCAL_SAMPLER

    def __init__(self, spec: str | None = None, loaded=None, device: str = "cpu", dtype: str = "float32"):
        if loaded is None:
            from tuneshift.models.loading import load_model

            loaded = load_model(spec, progress=False, device=device, dtype=dtype)
        self.loaded = loaded
        self.model_name = str(loaded.describe().get("spec") or spec)

    def _ids(self, prompt: str) -> list[int]:
        tok = self.loaded.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
            )
            return list(tok(text, add_special_tokens=False)["input_ids"])
        return list(tok(prompt)["input_ids"])

    def _eos_ids(self) -> set[int]:
        eos = getattr(self.loaded.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.loaded.tokenizer.eos_token_id
        return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None}

    def complete(self, prompt: str, params: dict, run: int) -> str:
        """One answer: ``complete_batch([prompt], params, [run])[0]``."""
        return self.complete_batch([prompt], params, [run])[0]

    def complete_batch(self, prompts: list[str], params: dict, runs: list[int]) -> list[str]:
        """The answers to ``prompts`` (one ``generate`` call; see the class docstring).

        Args:
            prompts: the user messages. params: ``temperature`` (default 1.0) and
                ``max_new_tokens`` (default 48). runs: the run index of each prompt (its seed).

        Returns:
            the decoded new text of each prompt, in order, cut at the row's first end-of-sequence
            token (rows stop independently).

        Raises:
            ValueError: ``prompts`` and ``runs`` differ in length.
        """
        import torch

        prompts, runs = list(prompts), [int(r) for r in runs]
        if len(prompts) != len(runs):
            raise ValueError(f"{len(prompts)} prompts but {len(runs)} runs")
        if not prompts:
            return []
        tok = self.loaded.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        rows = [self._ids(p) for p in prompts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)  # left padding
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        temperature = float(params.get("temperature", DEFAULT_PARAMS["temperature"]))
        gen = dict(
            max_new_tokens=int(params.get("max_new_tokens", DEFAULT_PARAMS["max_new_tokens"])),
            pad_token_id=pad,
            do_sample=False,
        )
        if temperature > 0:
            from transformers import LogitsProcessorList

            gens = [torch.Generator().manual_seed(_seed(p, r)) for p, r in zip(prompts, runs)]
            gen["logits_processor"] = LogitsProcessorList([GumbelMaxSampler(gens, temperature)])
        dev = self.loaded.device
        with torch.no_grad():
            out = self.loaded.model.generate(ids.to(dev), attention_mask=mask.to(dev), **gen)
        eos, answers = self._eos_ids(), []
        for row in out[:, width:].tolist():
            cut = next((i for i, t in enumerate(row) if t in eos), len(row))
            answers.append(tok.decode(row[:cut], skip_special_tokens=True))
        return answers


class OpenAIBackend:
    """An OpenAI-compatible chat-completions server as annotator.

    Args:
        model: the model name the server knows (e.g. ``gpt-4o``, or what vLLM/Ollama serve).
        base_url: the server's ``/v1`` URL (None: the ``openai`` default, api.openai.com, or
            ``$OPENAI_BASE_URL``).
        api_key_env: name of the environment variable holding the key. It may be unset for a
            local server (``base_url`` given): a placeholder is sent. Never stored or printed.
        concurrency: requests in flight at once (>= 1).
        max_retries: retries per request (429, 5xx, timeouts, connection drops, malformed JSON).
        timeout: seconds per request attempt.
        retry_delay: first backoff delay for malformed responses, seconds (doubles, capped at 8 s).

    ``complete(prompt, params, run)`` sends one user message with ``temperature``,
    ``max_tokens`` (from ``params["max_new_tokens"]``) and ``seed`` = sha256(prompt, run), and
    returns the message text.

    Raises:
        ModelSpecError: the package ``openai`` is missing, no key for the default OpenAI
            server, or bad numbers. ``complete`` raises :class:`AnnotatorFatalError` (401, 403,
            404, 400, unreachable server) or the last error after the retries. A refused key names
            the variable (``api_key_env``, e.g. ``OPENAI_API_KEY``) and says whether it was unset.
    """

    name = "openai"
    sampler = None  # the server samples (with ``seed``); no version of tuneshift's own

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
        retry_delay: float = 0.5,
    ):
        try:
            import openai
        except ImportError as e:  # pragma: no cover - openai is a dependency
            raise ModelSpecError("the openai: annotator needs the package 'openai' (pip install openai)") from e
        if not model:
            raise ModelSpecError("openai: needs a model name, e.g. openai:gpt-4o")
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise OptionError("concurrency", "must be >= 1, max_retries >= 0 and timeout > 0")
        key = os.environ.get(api_key_env, "")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if not key:
            if base_url is None:
                raise ModelSpecError(
                    f"the openai: annotator needs an API key in the environment variable {api_key_env} "
                    "(or a base URL, --base-url / base_url=, for a local server that needs none)"
                )
            key = "none"  # local servers (vLLM, llama.cpp, Ollama) accept any key
        self.api_key_env = api_key_env
        self._key_was_set = key != "none"
        self._secret = key
        self.model_name = model
        self.base_url = base_url
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.retry_delay = float(retry_delay)
        self._openai = openai
        self._client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=max_retries, timeout=timeout)

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret and self._secret != "none" else text

    def complete(self, prompt: str, params: dict, run: int) -> str:
        """One answer (see the class docstring)."""
        oa = self._openai
        where = self.base_url or "the OpenAI API"
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._client.chat.completions.create(
                    model=self.model_name,
                    messages=[{"role": "user", "content": prompt}],
                    temperature=float(params.get("temperature", DEFAULT_PARAMS["temperature"])),
                    max_tokens=int(params.get("max_new_tokens", DEFAULT_PARAMS["max_new_tokens"])),
                    seed=_seed(prompt, run),
                )
                if not getattr(resp, "choices", None):
                    raise MalformedResponseError("the response has no choices")
                text = resp.choices[0].message.content
                if text is None:
                    raise MalformedResponseError("the response has no message text")
                return text
            except (oa.AuthenticationError, oa.PermissionDeniedError) as e:
                hint = (
                    f"set a valid key in the environment variable {self.api_key_env}"
                    if self._key_was_set
                    else f"the environment variable {self.api_key_env} is not set; put the key there"
                )
                raise AnnotatorFatalError(f"{where} refused the API key (HTTP {e.status_code}); {hint}") from None
            except oa.NotFoundError as e:
                raise AnnotatorFatalError(
                    f"{where} does not know the model {self.model_name!r} or the URL is wrong "
                    f"(HTTP 404: {self._scrub(str(e))[:200]})"
                ) from None
            except oa.BadRequestError as e:
                raise AnnotatorFatalError(
                    f"{where} refused the request (HTTP 400: {self._scrub(str(e))[:300]})"
                ) from None
            except oa.APITimeoutError:
                raise  # already retried by the client
            except oa.APIConnectionError as e:
                raise AnnotatorFatalError(
                    f"cannot reach {where} ({self._scrub(str(e.__cause__ or e))[:200]})"
                ) from None
            except (
                MalformedResponseError,
                oa.APIResponseValidationError,
                json.JSONDecodeError,
                AttributeError,
                IndexError,
                TypeError,
            ) as e:
                if attempt == self.max_retries:
                    raise MalformedResponseError(
                        f"malformed response from {where} after {attempt + 1} attempts: {self._scrub(str(e))[:200]}"
                    ) from None
                time.sleep(min(self.retry_delay * 2**attempt, 8.0) * (0.75 + 0.5 * random.random()))
        raise AssertionError("unreachable")  # pragma: no cover


def make_backend(
    spec: str,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    max_retries: int = 6,
    timeout: float = 60.0,
    device: str = "cpu",
    dtype: str = "float32",
):
    """``local:SPEC`` -> :class:`LocalBackend`; ``openai:MODEL`` -> :class:`OpenAIBackend`.

    ``device`` and ``dtype`` are for ``local:`` only (:func:`~tuneshift.models.loading.load_model`);
    the other arguments for ``openai:`` only (see :class:`OpenAIBackend`).

    Raises:
        ModelSpecError: an unknown backend, an empty model, or a bad ``openai:`` setting.
    """
    if spec.startswith("local:") and spec[6:]:
        return LocalBackend(spec[6:], device=device, dtype=dtype)
    if spec.startswith("openai:") and spec[7:]:
        return OpenAIBackend(
            spec[7:],
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            max_retries=max_retries,
            timeout=timeout,
        )
    raise ModelSpecError(
        f"unknown annotator {spec!r}: use local:SPEC (e.g. {DEFAULT_LOCAL_ANNOTATOR}) "
        "or openai:MODEL (a hosted model, or any OpenAI-compatible server with --base-url)"
    )

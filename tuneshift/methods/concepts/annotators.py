"""Annotator backends: who answers the three annotation prompts.

Source: Wu et al. 2024, feed-forward explanation (concepts named by an LLM; the paper used
GPT-4). Every backend has ``name``, ``model_name``, ``concurrency`` (how many requests may run
at once) and ``complete(prompt, params, run) -> str``; :func:`make_backend` builds one from an
``--annotator`` spec:

* ``local:SPEC`` -> :class:`LocalBackend`, a transformers model loaded with
  :func:`~tuneshift.models.loading.load_model` (offline; default ``smollm2-135m-instruct``).
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

__all__ = ["DEFAULT_LOCAL_ANNOTATOR", "AnnotatorFatalError", "LocalBackend", "OpenAIBackend", "make_backend",
           "MalformedResponseError"]

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


class LocalBackend:
    """A local transformers chat model as annotator (one request at a time).

    Args:
        spec: anything :func:`~tuneshift.models.loading.load_model` accepts.
        loaded: an already loaded model (tests), instead of ``spec``.

    ``complete(prompt, params, run)``: the prompt as one user message through the tokenizer's
    chat template (raw text if it has none), sampled (``temperature`` > 0) or greedy, at most
    ``params["max_new_tokens"]`` (default 48) new tokens, seeded by ``sha256(prompt, run)``;
    returns the decoded new text.
    """

    name = "local"
    concurrency = 1

    def __init__(self, spec: str | None = None, loaded=None, device: str = "cpu", dtype: str = "float32"):
        if loaded is None:
            from tuneshift.models.loading import load_model

            loaded = load_model(spec, progress=False, device=device, dtype=dtype)
        self.loaded = loaded
        self.model_name = str(loaded.describe().get("spec") or spec)

    def complete(self, prompt: str, params: dict, run: int) -> str:
        """One answer (see the class docstring)."""
        import torch

        tok = self.loaded.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
            ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        else:
            ids = tok(prompt, return_tensors="pt")["input_ids"]
        temperature = float(params.get("temperature", DEFAULT_PARAMS["temperature"]))
        gen = dict(max_new_tokens=int(params.get("max_new_tokens", DEFAULT_PARAMS["max_new_tokens"])), pad_token_id=tok.pad_token_id or tok.eos_token_id)
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            gen.update(do_sample=False)
        with torch.no_grad():
            torch.manual_seed(_seed(prompt, run))
            ids = ids.to(self.loaded.device)
            out = self.loaded.model.generate(ids, attention_mask=torch.ones_like(ids), **gen)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


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

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, max_retries: int = 6, timeout: float = 60.0, retry_delay: float = 0.5):
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
                raise ModelSpecError(f"the openai: annotator needs an API key in the environment variable {api_key_env} "
                                     "(or a base URL, --base-url / base_url=, for a local server that needs none)")
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
                    model=self.model_name, messages=[{"role": "user", "content": prompt}],
                    temperature=float(params.get("temperature", DEFAULT_PARAMS["temperature"])), max_tokens=int(params.get("max_new_tokens", DEFAULT_PARAMS["max_new_tokens"])),
                    seed=_seed(prompt, run))
                if not getattr(resp, "choices", None):
                    raise MalformedResponseError("the response has no choices")
                text = resp.choices[0].message.content
                if text is None:
                    raise MalformedResponseError("the response has no message text")
                return text
            except (oa.AuthenticationError, oa.PermissionDeniedError) as e:
                hint = (f"set a valid key in the environment variable {self.api_key_env}" if self._key_was_set else
                        f"the environment variable {self.api_key_env} is not set; put the key there")
                raise AnnotatorFatalError(f"{where} refused the API key (HTTP {e.status_code}); {hint}") from None
            except oa.NotFoundError as e:
                raise AnnotatorFatalError(f"{where} does not know the model {self.model_name!r} or the URL is wrong "
                                          f"(HTTP 404: {self._scrub(str(e))[:200]})") from None
            except oa.BadRequestError as e:
                raise AnnotatorFatalError(f"{where} refused the request (HTTP 400: {self._scrub(str(e))[:300]})") from None
            except oa.APITimeoutError:
                raise  # already retried by the client
            except oa.APIConnectionError as e:
                raise AnnotatorFatalError(f"cannot reach {where} ({self._scrub(str(e.__cause__ or e))[:200]})") from None
            except (MalformedResponseError, oa.APIResponseValidationError, json.JSONDecodeError, AttributeError,
                    IndexError, TypeError) as e:
                if attempt == self.max_retries:
                    raise MalformedResponseError(f"malformed response from {where} after {attempt + 1} attempts: "
                                                 f"{self._scrub(str(e))[:200]}") from None
                time.sleep(min(self.retry_delay * 2 ** attempt, 8.0) * (0.75 + 0.5 * random.random()))
        raise AssertionError("unreachable")  # pragma: no cover


def make_backend(spec: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4,
                 max_retries: int = 6, timeout: float = 60.0, device: str = "cpu", dtype: str = "float32"):
    """``local:SPEC`` -> :class:`LocalBackend`; ``openai:MODEL`` -> :class:`OpenAIBackend`.

    ``device`` and ``dtype`` are for ``local:`` only (:func:`~tuneshift.models.loading.load_model`);
    the other arguments for ``openai:`` only (see :class:`OpenAIBackend`).

    Raises:
        ModelSpecError: an unknown backend, an empty model, or a bad ``openai:`` setting.
    """
    if spec.startswith("local:") and spec[6:]:
        return LocalBackend(spec[6:], device=device, dtype=dtype)
    if spec.startswith("openai:") and spec[7:]:
        return OpenAIBackend(spec[7:], base_url=base_url, api_key_env=api_key_env, concurrency=concurrency,
                             max_retries=max_retries, timeout=timeout)
    raise ModelSpecError(f"unknown annotator {spec!r}: use local:SPEC (e.g. {DEFAULT_LOCAL_ANNOTATOR}) "
                         "or openai:MODEL (a hosted model, or any OpenAI-compatible server with --base-url)")

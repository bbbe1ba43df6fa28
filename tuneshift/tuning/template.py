"""The chat template of a tuned model, and the tokenisation of one training example.

Decision: a base model without a chat template (e.g. the pre-trained Gemma 3 270M) gets
:data:`TUNESHIFT_TEMPLATE`, a plain-text "### Instruction / ### Response" format (as in
Alpaca-style tuning) that uses only ordinary words of the base vocabulary, so no new or untrained
token embeddings are needed and LoRA on the linear layers suffices. A base that already has a
chat template keeps it. The template is registered on the tokenizer (``tokenizer.chat_template``)
and saved next to the adapter as ``chat_template.jinja``; attribution then sees its tokens with
the role ``template``.

Rendering of ``[{"role": "user", "content": U}]`` with ``add_generation_prompt=True``::

    <bos>### Instruction:\\nU\\n\\n### Response:\\n

and an assistant turn ``A`` continues with ``A<eos>``.
"""

from __future__ import annotations

from tuneshift.errors import TuneshiftError

__all__ = ["TUNESHIFT_TEMPLATE", "ensure_chat_template", "encode_example", "prompt_text"]

TUNESHIFT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}### Instruction:\n{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'assistant' %}### Response:\n{{ message['content'] }}{{ eos_token }}\n\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}### Response:\n{% endif %}"
)


def ensure_chat_template(tokenizer) -> str:
    """Give ``tokenizer`` a chat template if it has none (:data:`TUNESHIFT_TEMPLATE`).

    Returns:
        "kept" (it had one) or "registered".
    """
    if getattr(tokenizer, "chat_template", None):
        return "kept"
    tokenizer.chat_template = TUNESHIFT_TEMPLATE
    return "registered"


def prompt_text(tokenizer, user: str) -> str:
    """The user turn rendered through the chat template, ending with the generation prompt."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
    )


def encode_example(tokenizer, user: str, response: str, max_length: int) -> tuple[list[int], list[int], bool]:
    """Token ids and labels of one example: loss on the response and the final EOS only.

    The prompt (template + user turn + generation prompt) and the response are tokenised
    separately and concatenated (so the boundary is exact), then EOS is appended.

    Args:
        tokenizer: with a chat template (see :func:`ensure_chat_template`) and an EOS token.
        user: the user turn. response: the target answer. max_length: longest sequence, tokens.

    Returns:
        ``(input_ids, labels, truncated)``, both lists of length ``n <= max_length``; labels are
        ``-100`` on every prompt token and the token ids on the response and EOS. ``truncated``:
        the response was cut to fit (its EOS is then lost).

    Raises:
        TuneshiftError: no EOS token, or the prompt alone leaves no room for a response token.
    """
    if tokenizer.eos_token_id is None:
        raise TuneshiftError("the tokenizer has no EOS token; a tuned model could not learn to stop")
    p = tokenizer(prompt_text(tokenizer, user), add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(p) >= max_length:
        raise TuneshiftError(f"a prompt has {len(p)} tokens, not less than max_length {max_length}")
    truncated = len(p) + len(r) > max_length
    r = r[: max_length - len(p)]
    return p + r, [-100] * len(p) + r, truncated

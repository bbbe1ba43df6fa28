"""How long Ctrl-C takes to act inside a long backward pass of gradient x input.

Loads a model (default: the packaged gemma-3-270m), attributes one random prompt of N tokens
(default 3000) with 2 response tokens, and sends SIGINT to itself S seconds (default 2) into
the first backward pass; prints how long after the signal the KeyboardInterrupt arrived.

    OMP_NUM_THREADS=1 python benchmarks/interrupt_latency.py [MODEL] [N] [S]

Measured (docs/attribution.md, "Ctrl-C inside a long backward pass"): gemma-3-270m, 3000
tokens, one CPU thread: 26.3 s before the per-block interrupt points, 3.2 s after.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import torch


def main() -> None:
    import tuneshift
    from tuneshift.methods.attribution.gradient import SequencePair, gradient_x_input

    spec = sys.argv[1] if len(sys.argv) > 1 else "gemma-3-270m"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    torch.set_num_threads(1)
    m = tuneshift.load_model(spec, progress=False)
    real, sent = torch.autograd.grad, []

    def grad(*a, **kw):  # the first backward pass arms the signal
        if not sent:
            sent.append(None)
            threading.Timer(delay, lambda: (sent.append(time.time()), os.kill(os.getpid(), signal.SIGINT))).start()
        return real(*a, **kw)

    torch.autograd.grad = grad
    g = torch.Generator().manual_seed(0)
    bos = m.tokenizer.bos_token_id if m.tokenizer.bos_token_id is not None else 0
    pair = SequencePair(
        prompt_ids=[bos] + torch.randint(1000, 20000, (n - 1,), generator=g).tolist(), response_ids=[1000, 1001]
    )
    try:
        gradient_x_input(m.model, [pair])
        print("the backward passes ended before the signal; use a longer prompt or a shorter delay")
    except KeyboardInterrupt:
        print(
            f"{spec}, {n} tokens: SIGINT acted on {time.time() - sent[1]:.2f} s after it was sent "
            f"({delay:g} s into a backward pass)"
        )
    finally:
        torch.autograd.grad = real


if __name__ == "__main__":
    main()

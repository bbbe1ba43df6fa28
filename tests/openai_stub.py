"""A local OpenAI-compatible chat server for the annotator tests (127.0.0.1, random port).

It answers ``POST /v1/chat/completions`` with canned answers chosen from the prompt's last
line (``Concept:`` / ``Level:`` / ``Tasks:``), and injects faults from a queue: each request
takes the next fault, if any: ``"429"``, ``"500"``, ``"401"``, ``"403"``, ``"404"``, ``"slow"``
(sleeps ``slow_seconds`` first), ``"malformed"`` (invalid JSON with status 200) or
``"nochoices"`` (valid JSON without choices). It records every request (body and headers).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def canned_answer(prompt: str) -> str:
    last = prompt.rstrip().splitlines()[-1]
    if last.startswith("Words:") or prompt.rstrip().endswith("Concept:"):
        words = prompt.rstrip().splitlines()[-2]
        return "Cannot tell." if "zzz" in words else "**Concept:** Programming and source code."
    if prompt.rstrip().endswith("Level:"):
        return "Semantics"
    return "Coding, and professional writing."


class StubServer:
    """``with StubServer() as s:`` -> ``s.base_url``, ``s.faults`` (a list, consumed from the
    front), ``s.requests`` (recorded JSON bodies), ``s.headers`` (recorded header dicts, lower-case names),
    ``s.max_in_flight`` (most requests served at once)."""

    def __init__(self, slow_seconds: float = 1.0):
        self.faults: list[str] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.slow_seconds = slow_seconds
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, extra: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                try:
                    self._post()
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

            def _post(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                with stub.lock:
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    stub.requests.append(body)
                    stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                    fault = stub.faults.pop(0) if stub.faults else None
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, b'{"error": {"message": "no such route"}}')
                fast = {"retry-after-ms": "10"}
                if fault in ("429", "500"):
                    return self._send(int(fault), b'{"error": {"message": "injected"}}', fast)
                if fault in ("401", "403", "404"):
                    return self._send(int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode())
                if fault == "malformed":
                    return self._send(200, b'{"choices": [ {"message": ')
                if fault == "nochoices":
                    return self._send(
                        200, b'{"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}'
                    )
                if fault == "slow":
                    time.sleep(stub.slow_seconds)
                prompt = body["messages"][-1]["content"]
                answer = {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": canned_answer(prompt)},
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                return self._send(200, json.dumps(answer).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

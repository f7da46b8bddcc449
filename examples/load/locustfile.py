"""Load test of a DeepSeekDeployment's chat Service with Locust: streamed chat requests with
short and long prompts, time to first token reported as its own entry.

    pip install locust
    kubectl port-forward svc/smollm2 8080:80 &
    locust -f examples/load/locustfile.py --host http://127.0.0.1:8080 \
        --users 16 --spawn-rate 4 --run-time 2m --headless

Environment: MODEL (served model name), MAX_TOKENS (per request, default 64).
"""

import json
import os
import time

from locust import HttpUser, between, events, task

MODEL = os.environ.get("MODEL", "smollm2-135m-instruct")
MAX_TOKENS = int(os.environ.get("MAX_TOKENS", "64"))
SHORT = "Give me one tip for writing clear emails."
LONG = " ".join(["Summarize the following notes in two sentences."] + ["The quarterly report shows growth."] * 40)


def body(prompt: str, stream: bool) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }


class ChatUser(HttpUser):
    wait_time = between(0.5, 2.0)

    def streamed(self, name: str, prompt: str) -> None:
        start = time.perf_counter()
        first = None
        chunks = 0
        with self.client.post(
            "/v1/chat/completions", json=body(prompt, True), stream=True, name=name, catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            for line in resp.iter_lines():
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                delta = json.loads(line[6:])["choices"]
                if delta and delta[0]["delta"].get("content"):
                    chunks += 1
                    if first is None:
                        first = time.perf_counter() - start
            if chunks == 0:
                resp.failure("no content streamed")
                return
            resp.success()
        events.request.fire(
            request_type="TTFT", name=name, response_time=first * 1000, response_length=chunks, exception=None, context={}
        )

    @task(3)
    def short_prompt(self) -> None:
        self.streamed("chat short (stream)", SHORT)

    @task(1)
    def long_prompt(self) -> None:
        self.streamed("chat long (stream)", LONG)

    @task(1)
    def non_streamed(self) -> None:
        self.client.post("/v1/chat/completions", json=body(SHORT, False), name="chat short (json)")

"""Compatibility check with the official `openai` Python package (driven by serve_model.rs).

Runs a chat, a streamed chat (with usage), the model list and an error, against the server at
$DSR_BASE_URL serving $DSR_MODEL_NAME. Exits non-zero with a message on any mismatch.
"""
import os
import sys

import openai
from openai import OpenAI

base = os.environ["DSR_BASE_URL"]
model = os.environ["DSR_MODEL_NAME"]
client = OpenAI(base_url=base + "/v1", api_key="not-needed", max_retries=0, timeout=600)
messages = [{"role": "user", "content": "Name a colour."}]

reply = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
text = reply.choices[0].message.content
assert reply.object == "chat.completion", reply
assert reply.choices[0].message.role == "assistant", reply
assert text, reply
assert reply.choices[0].finish_reason in ("stop", "length"), reply
assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0, reply

streamed, finish, usage, roles = "", None, None, []
stream = client.chat.completions.create(
    model=model, messages=messages, max_tokens=8, temperature=0, stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.role:
            roles.append(choice.delta.role)
        streamed += choice.delta.content or ""
        finish = choice.finish_reason or finish
assert roles == ["assistant"], roles
assert streamed == text, (streamed, text)
assert finish == reply.choices[0].finish_reason, finish
assert usage is not None and usage.completion_tokens == reply.usage.completion_tokens, usage

ids = [m.id for m in client.models.list().data]
assert model in ids, ids

try:
    client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=2)
except openai.NotFoundError as e:
    assert e.status_code == 404
else:
    sys.exit("an unknown model must raise NotFoundError")

try:
    client.chat.completions.create(model=model, messages=messages, temperature=3)
except openai.BadRequestError as e:
    body = e.body.get("error", e.body) if isinstance(e.body, dict) else {}
    assert body.get("param") == "temperature", e.body
else:
    sys.exit("temperature=3 must raise BadRequestError")

print("openai client: ok")

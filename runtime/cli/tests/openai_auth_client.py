"""The official `openai` Python client against a server that requires auth (driven by
security_auth.rs): with the credential in $DSR_API_KEY (a static API key or a JWT) a chat and a
streamed chat succeed; with a wrong credential the client raises AuthenticationError (401).
Exits non-zero with a message on any mismatch.
"""
import os
import sys

import openai
from openai import OpenAI

base = os.environ["DSR_BASE_URL"]
model = os.environ["DSR_MODEL_NAME"]
credential = os.environ["DSR_API_KEY"]
messages = [{"role": "user", "content": "Name a colour."}]

client = OpenAI(base_url=base + "/v1", api_key=credential, max_retries=0, timeout=600)
reply = client.chat.completions.create(model=model, messages=messages, max_tokens=4, temperature=0)
assert reply.object == "chat.completion", reply
assert reply.choices[0].message.content, reply

streamed = ""
for chunk in client.chat.completions.create(
    model=model, messages=messages, max_tokens=4, temperature=0, stream=True
):
    for choice in chunk.choices:
        streamed += choice.delta.content or ""
assert streamed == reply.choices[0].message.content, (streamed, reply)

wrong = OpenAI(base_url=base + "/v1", api_key=credential + "x", max_retries=0, timeout=60)
try:
    wrong.chat.completions.create(model=model, messages=messages, max_tokens=2)
except openai.AuthenticationError as e:
    assert e.status_code == 401, e
    assert e.body.get("code", (e.body.get("error") or {}).get("code")) == "invalid_api_key", e.body
else:
    sys.exit("a wrong credential must raise AuthenticationError")

print("openai auth client: ok")

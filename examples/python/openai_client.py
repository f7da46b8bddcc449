"""Call a DeepSeekDeployment's chat Service with the official OpenAI Python client.

    pip install openai
    # in the cluster: BASE_URL=http://smollm2.default.svc/v1
    kubectl port-forward svc/smollm2 8080:80 &
    BASE_URL=http://127.0.0.1:8080/v1 MODEL=smollm2-135m-instruct python examples/python/openai_client.py

Prints one plain completion, then a streamed one token by token, then the usage.
"""

import os
import sys

from openai import OpenAI


def main() -> int:
    client = OpenAI(
        base_url=os.environ.get("BASE_URL", "http://smollm2.default.svc/v1"),
        # The runtime checks a JWT only when spec.auth is set; any string works otherwise.
        api_key=os.environ.get("API_KEY", "unused"),
        timeout=float(os.environ.get("TIMEOUT_SECONDS", "300")),
    )
    model = os.environ.get("MODEL", "smollm2-135m-instruct")
    messages = [
        {"role": "system", "content": "You are a concise, helpful assistant."},
        {"role": "user", "content": os.environ.get("PROMPT", "Name three primary colors.")},
    ]
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=48, temperature=0)
    print("plain:", reply.choices[0].message.content)

    print("streamed: ", end="", flush=True)
    usage = None
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=48,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage is not None:
            usage = chunk.usage
    print()
    if usage is None:
        print("no usage chunk received", file=sys.stderr)
        return 1
    print(f"usage: prompt={usage.prompt_tokens} completion={usage.completion_tokens}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Customer-service routing on one DeepSeekDeployment: classify each request, then answer it in
the flow it belongs to (returns, technical support, or general chat), each with its own system
prompt. The same model does both steps; the classifier's answer is parsed strictly and falls
back to keywords, because small models do not always follow the label format.

    pip install openai
    kubectl port-forward svc/smollm2 8080:80 &
    BASE_URL=http://127.0.0.1:8080/v1 python examples/python/customer_service.py \
        "I want to send back the shoes I bought last week" \
        "The app crashes when I upload a photo" \
        "What are your opening hours?"
"""

import os
import sys

from openai import OpenAI

# Each flow: the system prompt its answers are written under.
ROUTES = {
    "returns": (
        "You handle returns and refunds for an online shop. Ask for the order number if it is "
        "missing, state the 30-day return window, and explain the next step in two sentences."
    ),
    "technical": (
        "You are technical support for the shop's mobile app. Ask for the app version and device, "
        "then give at most three numbered troubleshooting steps."
    ),
    "general": "You are a friendly shop assistant. Answer briefly and politely.",
}

CLASSIFIER = (
    "Classify the customer's message. Answer with exactly one word: returns, technical, or "
    "general. returns: sending items back, refunds, exchanges. technical: the app or website "
    "not working, errors, login problems. general: anything else."
)

KEYWORDS = {
    "returns": ("return", "refund", "send back", "exchange", "money back"),
    "technical": ("crash", "error", "bug", "login", "log in", "password", "not working", "app"),
}


def parse_label(answer: str, message: str) -> str:
    """The route for a classifier answer; keywords of the message when the answer is unusable."""
    words = answer.strip().lower().replace(".", " ").split()
    if words and words[0] in ROUTES:
        return words[0]
    text = message.lower()
    for route, keys in KEYWORDS.items():
        if any(k in text for k in keys):
            return route
    return "general"


def classify(client: OpenAI, model: str, message: str) -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": CLASSIFIER}, {"role": "user", "content": message}],
        max_tokens=3,
        temperature=0,
    )
    return parse_label(reply.choices[0].message.content or "", message)


def answer(client: OpenAI, model: str, route: str, message: str) -> str:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": ROUTES[route]}, {"role": "user", "content": message}],
        max_tokens=int(os.environ.get("MAX_TOKENS", "120")),
        temperature=0.3,
    )
    return reply.choices[0].message.content or ""


def main(messages: list[str]) -> int:
    client = OpenAI(
        base_url=os.environ.get("BASE_URL", "http://smollm2.default.svc/v1"),
        api_key=os.environ.get("API_KEY", "unused"),
    )
    model = os.environ.get("MODEL", "smollm2-135m-instruct")
    for message in messages or [line.strip() for line in sys.stdin if line.strip()]:
        route = classify(client, model, message)
        print(f"[{route}] {message}\n  -> {answer(client, model, route, message).strip()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

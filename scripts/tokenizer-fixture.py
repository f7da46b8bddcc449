#!/usr/bin/env python3
"""Writes the reference token ids that runtime/engine/tests/model_tokenizer.rs compares against:
llama.cpp's own tokenizer (via llama-cpp-python) on the same GGUF, for a fixed set of strings.
Run once and commit the JSON output:

    python3 -m venv /tmp/llamacpp && /tmp/llamacpp/bin/pip install llama-cpp-python
    /tmp/llamacpp/bin/python scripts/tokenizer-fixture.py \
        models/SmolLM2-135M-Instruct.Q4_1.gguf runtime/engine/tests/fixtures/tokenizer_smollm2.json
"""
import json
import sys

import llama_cpp
from llama_cpp import Llama

CASES = [
    "Hello, world! This is a simple ASCII sentence.",
    "What is the capital of France?",
    "我们的目标是让每个人都能使用人工智能。",
    "日本語のテキストと한국어 텍스트",
    "Emoji: 😀🚀👍🏽 and ❤️ and 👨‍👩‍👧",
    "def f(x):\n    if x > 1:\n        return x * 2\n\treturn None\n",
    "fn main() {\n    println!(\"{}\", 42);\n}\n",
    "a  b   c    d\n\n\nend  \n \n",
    "   leading spaces and trailing   ",
    "\t\ttabs\tand\r\nwindows newlines\r\n",
    "Numbers 1234567 and 3.14159, 2026-11-29, 0xFF, 1e-9",
    "Mixed: café naïve résumé — “quotes” ‘x’ «ok» …",
    "don't we'll I'M you're they'VE",
]


def main() -> None:
    model_path, out_path = sys.argv[1], sys.argv[2]
    llm = Llama(model_path=model_path, vocab_only=True, verbose=False)
    cases = [
        {"text": text, "ids": llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)}
        for text in CASES
    ]
    fixture = {
        "generator": "scripts/tokenizer-fixture.py",
        "tokenizer": "llama.cpp via llama-cpp-python " + llama_cpp.__version__,
        "model": model_path.rsplit("/", 1)[-1],
        "add_bos": False,
        "special": False,
        "cases": cases,
    }
    # One case per line keeps the committed fixture readable in diffs.
    header = {k: v for k, v in fixture.items() if k != "cases"}
    lines = [json.dumps(c, ensure_ascii=False) for c in cases]
    text = json.dumps(header, ensure_ascii=False, indent=1)[:-2]
    text += ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    json.loads(text)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()

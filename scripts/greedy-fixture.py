#!/usr/bin/env python3
"""Writes the reference greedy continuations that runtime/engine/tests/model_smollm2.rs compares
against: llama.cpp (via llama-cpp-python) decoding SmolLM2's chat-templated prompts greedily.
Run once and commit the JSON output:

    /tmp/llamacpp/bin/python scripts/greedy-fixture.py \
        models/SmolLM2-135M-Instruct.Q4_1.gguf runtime/engine/tests/fixtures/greedy_smollm2.json
"""
import json
import sys

import llama_cpp
from llama_cpp import Llama

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QUESTIONS = [
    "Name the capital of France.",
    "What is the capital of France?",
    "Write a haiku about autumn.",
    "Explain what a CPU cache is in two sentences.",
]
MAX_TOKENS = 24
EOS = 2


def main() -> None:
    model_path, out_path = sys.argv[1], sys.argv[2]
    llm = Llama(model_path=model_path, n_ctx=512, n_threads=2, verbose=False)
    cases = []
    for q in QUESTIONS:
        prompt = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        out = []
        for t in llm.generate(tokens, top_k=1, temp=0.0):
            if t == EOS or len(out) >= MAX_TOKENS:
                break
            out.append(t)
        cases.append({"question": q, "prompt_ids": tokens, "greedy_ids": out,
                      "text": llm.detokenize(out).decode("utf-8", errors="replace")})
    header = {
        "generator": "scripts/greedy-fixture.py",
        "reference": "llama.cpp via llama-cpp-python " + llama_cpp.__version__,
        "model": model_path.rsplit("/", 1)[-1],
        "max_tokens": MAX_TOKENS,
    }
    text = json.dumps(header, ensure_ascii=False, indent=1)[:-2]
    text += ',\n "cases": [\n  ' + ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n ]\n}\n"
    json.loads(text)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""llama.cpp's first-token log-probabilities for SmolLM2 on 12 chat prompts (issue 18, item 0):
runtime/engine/tests/model_smollm2_logprobs.rs compares ours with them.

Each prompt is one user message rendered with the GGUF's own chat template (jinja2 with
transformers' trim_blocks/lstrip_blocks) and tokenized by llama.cpp; the fixture keeps the prompt
ids, and the top 10 log-probabilities of the next token (log-softmax of llama.cpp's logits, f32
KV cache, no flash attention). Run once and commit the JSON:

    ~/.cache/deepseek-k8s/llama-cpp-python-0.3.36/venv/bin/python scripts/logprob-fixture.py \
        models/SmolLM2-135M-Instruct.Q4_1.gguf runtime/engine/tests/fixtures/logprobs_smollm2.json

(the venv as scripts/deepseek2-gguf-fixtures.py describes).
"""
import importlib.metadata
import json
import sys

import jinja2
import numpy as np
from llama_cpp import Llama

# The prompts of runtime/engine/tests/kernel_paths_logits.rs.
PROMPTS = [
    "What is the capital of France?",
    "Name the capital of France.",
    "Write a haiku about autumn.",
    "Name the largest planet in the solar system.",
    "Explain in one sentence what a CPU does.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 7?",
    "Give me a synonym for happy.",
    "Who wrote Romeo and Juliet?",
    "Describe the color of the sky on a clear day.",
    "Hi",
]
TOP = 10


def main() -> None:
    model_path, out_path = sys.argv[1], sys.argv[2]
    llm = Llama(model_path=model_path, n_ctx=512, n_threads=2, logits_all=True, type_k=0, type_v=0,
                flash_attn=False, verbose=False)
    template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(
        llm.metadata["tokenizer.chat_template"])
    cases = []
    for q in PROMPTS:
        text = template.render(messages=[{"role": "user", "content": q}], add_generation_prompt=True,
                               bos_token="", eos_token="")
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[len(ids) - 1], dtype=np.float64)
        logprobs = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        top = np.argsort(-logprobs, kind="stable")[:TOP]
        cases.append({"prompt": q, "prompt_ids": ids,
                      "top": [[int(t), round(float(logprobs[t]), 5)] for t in top],
                      "text": llm.detokenize([int(top[0])]).decode("utf-8", errors="replace")})
    out = {
        "generator": "scripts/logprob-fixture.py",
        "reference": "llama.cpp vendored in llama-cpp-python "
                     + importlib.metadata.version("llama-cpp-python")
                     + " (llama.cpp commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f), f32 KV cache",
        "model": model_path.rsplit("/", 1)[-1],
        "cases": cases,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

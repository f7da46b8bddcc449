#!/usr/bin/env python3
"""Tiny random-weight deepseek2 GGUF files and llama.cpp's logits for them (GGUF parity tests).

Writes runtime/engine/tests/fixtures/deepseek2_gguf/<variant>.gguf with llama.cpp's own GGUF
writer (the `gguf` package), in the tensor layouts and metadata llama.cpp's converter
(convert_hf_to_gguf.py, DeepseekV2Model) produces, quantized by llama.cpp's own quantizer
(`llama_model_quantize`), and <variant>.json: llama.cpp's logits for two prompts (prefill's last
token, then one row per decode step; run 0 decodes greedily, so its decode tokens are llama.cpp's
own choices) and the same rows from one batched evaluation of the whole sequence, its
tokenization of a few strings, and the chat template rendered by jinja2.

llama.cpp runs through llama-cpp-python with an f32 KV cache and without flash attention, so
what remains between it and us is summation order and, for quantized weights, the activation
quantization of its dot products.

The variants (hidden 32 unless said; 8 routed experts, 2 used; one leading dense block):
  v2lite-f32, v2lite-q4_0, v2lite-q4_1: V2-Lite-like: no q LoRA, softmax gating, 2 shared experts, no
      normalisation, split attn_k_b/attn_v_b, YaRN with mscale 0.707.
  v2-kvb-f16: V2-like, as older files have it: q LoRA, one attn_kv_b (no key_length_mla), no
      expert_gating_func key (softmax by default), 4 expert groups of which 2 are used,
      expert_weights_scale 4.
  v3-q8_0: V3-like: q LoRA, sigmoid gating with exp_probs_b, normalised weights scaled by 2.5,
      groups 4/2, YaRN with mscale 1, experts' gate and up fused in ffn_gate_up_exps.
  v3-q4_k_m: the same architecture with hidden 256 (so K-quant blocks fit; 2 blocks, 4 experts in 2 groups)
      as Q4_K_M: Q4_K and Q6_K where rows are whole super-blocks, llama.cpp's fallbacks (Q5_0,
      Q5_1, Q8_0) elsewhere; and as Q5_K_M (Q5_K and Q6_K).

Run once by hand; the outputs are committed, so `make test` needs neither llama.cpp nor Python:
  python3 -m venv ~/.cache/deepseek-k8s/llama-cpp-python-0.3.36/venv
  CMAKE_ARGS="$(scripts/peer-isa-flags.sh)" \
    ~/.cache/deepseek-k8s/llama-cpp-python-0.3.36/venv/bin/pip install \
    llama-cpp-python==0.3.36 gguf==0.19.0 numpy
  ~/.cache/deepseek-k8s/llama-cpp-python-0.3.36/venv/bin/python scripts/deepseek2-gguf-fixtures.py
Deterministic for the fixed seeds: a rerun rewrites every file byte for byte.
"""

import json
import os
import sys
import tempfile
from collections import Counter

import gguf
import jinja2
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "runtime", "engine", "tests", "fixtures", "deepseek2_gguf")
PROMPTS = [[5, 17, 42, 99, 33, 8, 60, 21], [7, 250, 50]]
DECODE_STEPS = 4
FIXED_DECODE = [62, 7, 19, 44]
TEXTS = ["Hello world", "The capital of France is Paris.", "  two  spaces\nand a line", "naïve café 123"]
CORPUS = "the capital of france is paris. hello world, the the these then there. " * 4
N_MERGES = 40
# The llama.cpp commit llama-cpp-python 0.3.36 vendors (its vendor/llama.cpp).
LLAMA_CPP_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
# DeepSeek-V2-Lite-Chat's template, slightly shortened.
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\n\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Capital of France?"}]


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (what byte-level BPE vocabularies spell)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def vocab():
    """256 byte tokens, N_MERGES merges learnt on CORPUS, then BOS and EOS (control tokens)."""
    table = bytes_to_unicode()
    tokens = [table[b] for b in range(256)]
    words = [[table[b] for b in (" " + w).encode()] for w in CORPUS.split()]
    merges = []
    for _ in range(N_MERGES):
        pairs = Counter(p for w in words for p in zip(w, w[1:]))
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        tokens.append(a + b)
        merged = []
        for w in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged.append(out)
        words = merged
    types = [gguf.TokenType.NORMAL] * len(tokens) + [gguf.TokenType.CONTROL] * 2
    tokens += [BOS, EOS]
    return tokens, types, merges


def rand(g, shape, kind):
    """Weights of order one so logits are large enough for the tolerances to mean something."""
    if kind == "norm":
        return (1.0 + 0.2 * g.standard_normal(shape)).astype(np.float32)
    if kind == "embed":
        return g.standard_normal(shape).astype(np.float32)
    if kind == "bias":
        return (0.05 * g.standard_normal(shape)).astype(np.float32)
    return (g.standard_normal(shape) * (1.5 / shape[-1] ** 0.5)).astype(np.float32)


def tensors(v, g, n_vocab):
    """name -> float32 array, numpy shapes outermost first (GGUF's ne reversed)."""
    h, heads, nope, rope, vd, kvr = v["hidden"], v["heads"], v["nope"], v["rope"], v["v"], v["kv_lora"]
    ne, ff_exp, shared = v["experts"], v["ff_exp"], v["shared"]
    t = {"token_embd.weight": rand(g, (n_vocab, h), "embed"),
         "output_norm.weight": rand(g, (h,), "norm"),
         "output.weight": rand(g, (n_vocab, h), "w")}
    for i in range(v["layers"]):
        p = f"blk.{i}."
        t[p + "attn_norm.weight"] = rand(g, (h,), "norm")
        if v["q_lora"]:
            t[p + "attn_q_a.weight"] = rand(g, (v["q_lora"], h), "w")
            t[p + "attn_q_a_norm.weight"] = rand(g, (v["q_lora"],), "norm")
            t[p + "attn_q_b.weight"] = rand(g, (heads * (nope + rope), v["q_lora"]), "w")
        else:
            t[p + "attn_q.weight"] = rand(g, (heads * (nope + rope), h), "w")
        t[p + "attn_kv_a_mqa.weight"] = rand(g, (kvr + rope, h), "w")
        t[p + "attn_kv_a_norm.weight"] = rand(g, (kvr,), "norm")
        kv_b = rand(g, (heads * (nope + vd), kvr), "w")
        if v["split_kv_b"]:
            # What the converter does: per head, k_b transposed to [kv_lora, nope]... stored
            # with ne {nope, kv_lora, heads}, i.e. numpy [heads][kv_lora][nope].
            per = kv_b.reshape(heads, nope + vd, kvr)
            t[p + "attn_k_b.weight"] = np.ascontiguousarray(per[:, :nope, :].transpose(0, 2, 1))
            t[p + "attn_v_b.weight"] = np.ascontiguousarray(per[:, nope:, :])
        else:
            t[p + "attn_kv_b.weight"] = kv_b
        t[p + "attn_output.weight"] = rand(g, (h, heads * vd), "w")
        t[p + "ffn_norm.weight"] = rand(g, (h,), "norm")
        if i < v["dense"]:
            t[p + "ffn_gate.weight"] = rand(g, (v["ff"], h), "w")
            t[p + "ffn_up.weight"] = rand(g, (v["ff"], h), "w")
            t[p + "ffn_down.weight"] = rand(g, (h, v["ff"]), "w")
            continue
        t[p + "ffn_gate_inp.weight"] = rand(g, (ne, h), "w")
        if v["probs_b"]:
            t[p + "exp_probs_b.bias"] = rand(g, (ne,), "bias")
        gate, up = rand(g, (ne, ff_exp, h), "w"), rand(g, (ne, ff_exp, h), "w")
        if v["fused_gate_up"]:
            t[p + "ffn_gate_up_exps.weight"] = np.ascontiguousarray(np.concatenate([gate, up], axis=1))
        else:
            t[p + "ffn_gate_exps.weight"], t[p + "ffn_up_exps.weight"] = gate, up
        t[p + "ffn_down_exps.weight"] = rand(g, (ne, h, ff_exp), "w")
        if shared:
            t[p + "ffn_gate_shexp.weight"] = rand(g, (ff_exp * shared, h), "w")
            t[p + "ffn_up_shexp.weight"] = rand(g, (ff_exp * shared, h), "w")
            t[p + "ffn_down_shexp.weight"] = rand(g, (h, ff_exp * shared), "w")
    return t


def write_gguf(path, v, float_type):
    tokens, types, merges = vocab()
    g = np.random.default_rng(v["seed"])
    w = gguf.GGUFWriter(path, "deepseek2")
    w.add_name(v["name"])
    w.add_block_count(v["layers"])
    w.add_context_length(v["context"])
    w.add_embedding_length(v["hidden"])
    w.add_feed_forward_length(v["ff"])
    w.add_head_count(v["heads"])
    # MLA files are MQA over the latent (one KV head); older files were plain MHA.
    w.add_head_count_kv(1 if v["split_kv_b"] else v["heads"])
    w.add_layer_norm_rms_eps(1e-6)
    w.add_leading_dense_block_count(v["dense"])
    w.add_vocab_size(len(tokens))
    # llama.cpp reads q_lora_rank unless the block count is V2-Lite's 27: 0 means no LoRA.
    w.add_q_lora_rank(v["q_lora"])
    w.add_kv_lora_rank(v["kv_lora"])
    if v["split_kv_b"]:
        w.add_key_length(v["kv_lora"] + v["rope"])
        w.add_value_length(v["kv_lora"])
        w.add_key_length_mla(v["nope"] + v["rope"])
        w.add_value_length_mla(v["v"])
    else:
        w.add_key_length(v["nope"] + v["rope"])
        w.add_value_length(v["v"])
    w.add_expert_feed_forward_length(v["ff_exp"])
    w.add_expert_count(v["experts"])
    w.add_expert_used_count(v["used"])
    w.add_expert_shared_count(v["shared"])
    w.add_expert_weights_scale(v["scale"])
    if v["norm"]:
        w.add_expert_weights_norm(True)
    if v["gating"] is not None:
        w.add_expert_gating_func(gguf.ExpertGatingFuncType(v["gating"]))
    w.add_expert_group_count(v["groups"][0])
    w.add_expert_group_used_count(v["groups"][1])
    w.add_rope_dimension_count(v["rope"])
    w.add_rope_freq_base(10000.0)
    if v["yarn"]:
        factor, orig, mscale_all_dim = v["yarn"]
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(factor)
        w.add_rope_scaling_orig_ctx_len(orig)
        w.add_rope_scaling_yarn_beta_fast(32.0)
        w.add_rope_scaling_yarn_beta_slow(1.0)
        w.add_rope_scaling_yarn_log_mul(0.1 * mscale_all_dim)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if float_type == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(v["pre"])
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 2)
    w.add_eos_token_id(len(tokens) - 1)
    w.add_add_bos_token(True)
    w.add_chat_template(CHAT_TEMPLATE)
    for name, arr in tensors(v, g, len(tokens)).items():
        # As the converter does: 1-D tensors and the router stay f32.
        keep_f32 = arr.ndim == 1 or "ffn_gate_inp" in name or float_type == "f32"
        w.add_tensor(name, arr if keep_f32 else arr.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tokens


def quantize(src, dst, ftype):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize {dst}: {rc}")


def run_llama(path, n_vocab):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, n_ctx=64, n_batch=64, n_ubatch=64, n_threads=2,
                          logits_all=True, type_k=0, type_v=0, flash_attn=False, verbose=False)
    assert llm.n_vocab() == n_vocab
    runs = []
    for r, prompt in enumerate(PROMPTS):
        llm.reset()
        llm.eval(prompt)
        logits = [llm.scores[llm.n_tokens - 1].tolist()]
        decode = []
        for s in range(DECODE_STEPS):
            tok = int(np.argmax(logits[-1])) if r == 0 else FIXED_DECODE[s]
            decode.append(tok)
            llm.eval([tok])
            logits.append(llm.scores[llm.n_tokens - 1].tolist())
        # The same tokens as one batch: llama.cpp's one-token decode graph does not always agree
        # with its own batched evaluation (seen with expert groups), so the tests know both.
        llm.reset()
        llm.eval(prompt + decode)
        batch = [llm.scores[len(prompt) - 1 + i].tolist() for i in range(len(logits))]
        rows = lambda rs: [[float(f"{x:.7g}") for x in row] for row in rs]  # noqa: E731
        runs.append({"prompt": prompt, "decode": decode, "greedy": r == 0,
                     "logits": rows(logits), "batch_logits": rows(batch)})
    tokenized = [{"text": t, "ids": llm.tokenize(t.encode(), add_bos=True, special=False)} for t in TEXTS]
    return runs, tokenized


def variant(name, **kw):
    base = dict(name=name, hidden=32, heads=2, nope=32, rope=16, v=32, kv_lora=32, q_lora=32, ff=64,
                ff_exp=32, experts=8, used=2, shared=1, layers=3, dense=1, context=64, split_kv_b=True,
                probs_b=False, fused_gate_up=False, norm=False, scale=1.0, gating=1, groups=(1, 1),
                yarn=None, pre="deepseek-llm", seed=0)
    base.update(kw)
    return base


V2LITE = variant("v2lite", q_lora=0, shared=2, yarn=(4.0, 16, 0.707), seed=11)
V2 = variant("v2-kvb", split_kv_b=False, gating=None, groups=(4, 2), scale=4.0, yarn=(4.0, 16, 0.707), seed=12)
V3 = dict(variant("v3", gating=2, probs_b=True, norm=True, scale=2.5, groups=(4, 2), yarn=(4.0, 16, 1.0),
                  pre="deepseek-v3", fused_gate_up=True, seed=13))
# Rows of 64 or more wherever llama.cpp falls back to Q5_0/Q5_1 (candle's debug build asserts an
# even number of blocks per row there).
V3_WIDE = dict(V3, name="v3-wide", hidden=256, nope=64, v=64, kv_lora=64, q_lora=64, ff_exp=64, experts=4,
               groups=(2, 1), fused_gate_up=False, layers=2, seed=14)

# llama.cpp's `llama_ftype` values.
MOSTLY_Q4_0, MOSTLY_Q4_1, MOSTLY_Q8_0, MOSTLY_Q4_K_M, MOSTLY_Q5_K_M = 2, 3, 7, 15, 17

# (file stem, architecture, float type written, llama.cpp ftype to quantize to or None)
FILES = [
    ("v2lite-f32", V2LITE, "f32", None),
    ("v2lite-q4_0", V2LITE, "f32", MOSTLY_Q4_0),
    ("v2lite-q4_1", V2LITE, "f32", MOSTLY_Q4_1),
    ("v2-kvb-f16", V2, "f16", None),
    ("v3-q8_0", V3, "f32", MOSTLY_Q8_0),
    ("v3-q4_k_m", V3_WIDE, "f32", MOSTLY_Q4_K_M),
    ("v3-q5_k_m", V3_WIDE, "f32", MOSTLY_Q5_K_M),
]


def llama_cpp_version():
    import importlib.metadata

    return (f"llama.cpp vendored in llama-cpp-python {importlib.metadata.version('llama-cpp-python')}"
            f" (llama.cpp commit {LLAMA_CPP_COMMIT}); gguf {importlib.metadata.version('gguf')}")


def tensor_types(path):
    r = gguf.GGUFReader(path)
    return sorted({t.tensor_type.name for t in r.tensors})


def main():
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[1:])
    for stem, v, float_type, ftype in FILES:
        if only and stem not in only:
            continue
        path = os.path.join(OUT, stem + ".gguf")
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "src.gguf") if ftype is not None else path
            tokens = write_gguf(src, v, float_type)
            if ftype is not None:
                quantize(src, path, ftype)
        os.chmod(path, 0o644)
        if os.environ.get("GGUF_ONLY"):
            # The files alone (to try the loader while llama.cpp builds); no reference.
            print(stem, os.path.getsize(path), "bytes", tensor_types(path), file=sys.stderr)
            continue
        runs, tokenized = run_llama(path, len(tokens))
        chat = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(CHAT_TEMPLATE).render(
            messages=CHAT, add_generation_prompt=True, bos_token=BOS, eos_token=EOS)
        ref = {
            "llama_cpp": llama_cpp_version(),
            "file": stem + ".gguf",
            "tensor_types": tensor_types(path),
            "runs": runs,
            "tokenized": tokenized,
            "chat": {"messages": CHAT, "add_generation_prompt": True, "rendered": chat},
        }
        with open(os.path.join(OUT, stem + ".json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"), ensure_ascii=False)
        print(stem, os.path.getsize(path), "bytes", ref["tensor_types"], file=sys.stderr)


if __name__ == "__main__":
    main()

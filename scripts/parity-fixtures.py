#!/usr/bin/env python3
"""Tiny random-weight checkpoints and Hugging Face reference logits for the parity tests.

Writes runtime/engine/tests/fixtures/parity/<name>/ for llama, qwen2, deepseek2 (V2-style: softmax,
group-limited routing, no q LoRA) and deepseek3 (V3-style: sigmoid routing with score bias,
q LoRA, YaRN): config.json in the published (upstream) spelling, the weights as safetensors
(llama sharded with model.safetensors.index.json, qwen2 in bf16 with tied embeddings, the
others f32) in the per-expert layout published DeepSeek checkpoints use, and reference.json:
for two prompts, the logits of the last prompt token (prefill) and of each of a few decode
steps fed fixed tokens, computed by `transformers` in float32 with its own KV cache.

Run once by hand (needs `pip install torch transformers safetensors`); its outputs are
committed, so `make test` needs neither torch nor network. Deterministic for a fixed seed.
"""

import copy
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "runtime", "engine", "tests", "fixtures", "parity")
PROMPTS = [[1, 17, 42, 5, 33, 8, 60, 21], [1, 9, 50]]
DECODE = [[11, 40, 3, 27], [62, 7, 19, 44]]
VOCAB = 64


def randomize(model, seed):
    """Weights of order one so logits are large enough for a 1e-3 tolerance to mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif "bias" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in**0.5))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn(b.shape, generator=g))


def hub_state_dict(model):
    """State dict in the published layout: per-expert MLPs instead of fused 3-D tensors."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().clone().contiguous()
        if k.endswith("mlp.experts.gate_up_proj"):
            base = k[: -len("gate_up_proj")]
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{base}{e}.gate_proj.weight"] = v[e, :inter].contiguous()
                out[f"{base}{e}.up_proj.weight"] = v[e, inter:].contiguous()
        elif k.endswith("mlp.experts.down_proj"):
            base = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[f"{base}{e}.down_proj.weight"] = v[e].contiguous()
        else:
            out[k] = v
    return out


def reference(model):
    """Prefill then one-token decode steps through the model's own cache, per prompt."""
    runs = []
    with torch.no_grad():
        for prompt, steps in zip(PROMPTS, DECODE):
            out = model(torch.tensor([prompt]), use_cache=True)
            cache = out.past_key_values
            logits = [out.logits[0, -1].tolist()]
            for tok in steps:
                out = model(torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                logits.append(out.logits[0, -1].tolist())
            runs.append({"prompt": prompt, "decode": steps, "logits": logits})
    return runs


def check_routing_margins(model, cfg):
    """Refuses a seed whose expert choice is a near-tie (a float rounding could flip it)."""
    margins = []

    def hook(module, args, output):
        logits = output[0].float()
        if getattr(cfg, "topk_method", None) == "noaux_tc" or cfg.model_type == "deepseek_v3":
            scores = logits.sigmoid() + module.e_score_correction_bias
        else:
            scores = logits.softmax(-1)
        top = scores.sort(dim=-1, descending=True).values
        k = cfg.num_experts_per_tok
        margins.append((top[:, k - 1] - top[:, k]).min().item())

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules() if n.endswith("mlp.gate")]
    reference(model)
    for h in handles:
        h.remove()
    return min(margins) if margins else 1.0


def write(name, model, cfg_json, dtype=torch.float32, shards=1):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    if dtype != torch.float32:
        # Round the weights to the stored dtype first, so the reference sees what Rust loads.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(dtype).to(torch.float32))
    state = hub_state_dict(model)
    if cfg_json.get("tie_word_embeddings"):
        state.pop("lm_head.weight", None)
    state = {k: v.to(dtype) for k, v in state.items()}
    keys = sorted(state)
    if shards == 1:
        save_file(state, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        per = (len(keys) + shards - 1) // shards
        for i in range(shards):
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: state[k] for k in keys[i * per : (i + 1) * per]}
            save_file(part, os.path.join(d, fname), metadata={"format": "pt"})
            weight_map.update({k: fname for k in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1, sort_keys=True)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg_json, f, indent=1, sort_keys=True)
    ref = {"transformers": transformers.__version__, "torch": torch.__version__, "runs": reference(model)}
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    print(name, "written", file=sys.stderr)


COMMON = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=128, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2,
              hidden_act="silu")


def llama():
    cfg = dict(COMMON, model_type="llama", architectures=["LlamaForCausalLM"], intermediate_size=32,
               num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False,
               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**copy.deepcopy(cfg))).eval()
    randomize(model, 1)
    write("llama", model, cfg, shards=2)


def qwen2():
    cfg = dict(COMMON, model_type="qwen2", architectures=["Qwen2ForCausalLM"], intermediate_size=64,
               num_key_value_heads=2, rope_theta=1000000.0, tie_word_embeddings=True)
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**copy.deepcopy(cfg))).eval()
    randomize(model, 2)
    write("qwen2", model, cfg, dtype=torch.bfloat16)


DEEPSEEK = dict(COMMON, num_hidden_layers=2, intermediate_size=32, kv_lora_rank=16, qk_nope_head_dim=8,
                qk_rope_head_dim=4, v_head_dim=8, n_routed_experts=8, num_experts_per_tok=2,
                n_shared_experts=1, moe_intermediate_size=8, first_k_dense_replace=1, moe_layer_freq=1,
                n_group=4, topk_group=2, rope_theta=10000.0, tie_word_embeddings=False,
                attention_bias=False)


def build_deepseek(cfg, cls, conf_cls, seed):
    for s in range(seed, seed + 50):
        model = cls(conf_cls(**copy.deepcopy(cfg))).eval()
        randomize(model, s)
        margin = check_routing_margins(model, model.config)
        if margin > 1e-3:
            return model
        print(f"seed {s}: routing margin {margin:.2e}, trying the next", file=sys.stderr)
    raise SystemExit("no seed with clear routing margins")


def deepseek2():
    cfg = dict(DEEPSEEK, model_type="deepseek_v2", architectures=["DeepseekV2ForCausalLM"], q_lora_rank=None,
               topk_method="group_limited_greedy", scoring_func="softmax", norm_topk_prob=False,
               routed_scaling_factor=1.5)
    model = build_deepseek(cfg, transformers.DeepseekV2ForCausalLM, transformers.DeepseekV2Config, 3)
    write("deepseek2", model, cfg)


def deepseek3():
    cfg = dict(DEEPSEEK, model_type="deepseek_v3", architectures=["DeepseekV3ForCausalLM"], q_lora_rank=16,
               topk_method="noaux_tc", scoring_func="sigmoid", norm_topk_prob=True,
               routed_scaling_factor=2.5,
               rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                             "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0})
    model = build_deepseek(cfg, transformers.DeepseekV3ForCausalLM, transformers.DeepseekV3Config, 4)
    write("deepseek3", model, cfg)


if __name__ == "__main__":
    torch.set_default_dtype(torch.float32)
    llama()
    qwen2()
    deepseek2()
    deepseek3()

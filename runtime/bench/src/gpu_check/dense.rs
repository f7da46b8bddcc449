//! Random-weight dense f16 checkpoints (config.json + model.safetensors, `model_type: llama`)
//! shaped like real models, for speed only: what a decode step costs depends on the shapes, not
//! on the values. Written straight to disk, one tensor at a time, so a 7B model needs no more
//! memory than its largest tensor's buffer.

use std::io::{BufWriter, Write};
use std::path::Path;

use serde_json::json;

/// A decoder's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub name: &'static str,
    pub hidden: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
    pub tied: bool,
}

/// `tiny` (tests), `1.5b` (Qwen2-1.5B's dimensions: GQA with 2 KV heads, tied embeddings) and
/// `7b` (Llama-2-7B's: 32 heads, no GQA).
pub fn shape(name: &str) -> Option<Shape> {
    let s = |name, hidden, layers, intermediate, heads, kv_heads, vocab, tied| Shape {
        name,
        hidden,
        layers,
        intermediate,
        heads,
        kv_heads,
        vocab,
        tied,
    };
    match name {
        "tiny" => Some(s("tiny", 64, 2, 128, 4, 2, 256, false)),
        "1.5b" => Some(s("1.5b", 1536, 28, 8960, 12, 2, 151_936, true)),
        "7b" => Some(s("7b", 4096, 32, 11008, 32, 32, 32_000, false)),
        _ => None,
    }
}

impl Shape {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Every tensor: name and [rows, cols] (norms are [1, n], stored as [n]).
    fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (h, kv) = (self.hidden, self.kv_heads * self.head_dim());
        let mut t = vec![("model.embed_tokens.weight".to_string(), vec![self.vocab, h])];
        for i in 0..self.layers {
            let p = format!("model.layers.{i}");
            t.push((format!("{p}.input_layernorm.weight"), vec![h]));
            t.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            t.push((format!("{p}.self_attn.q_proj.weight"), vec![h, h]));
            t.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, h]));
            t.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, h]));
            t.push((format!("{p}.self_attn.o_proj.weight"), vec![h, h]));
            t.push((
                format!("{p}.mlp.gate_proj.weight"),
                vec![self.intermediate, h],
            ));
            t.push((
                format!("{p}.mlp.up_proj.weight"),
                vec![self.intermediate, h],
            ));
            t.push((
                format!("{p}.mlp.down_proj.weight"),
                vec![h, self.intermediate],
            ));
        }
        t.push(("model.norm.weight".to_string(), vec![h]));
        if !self.tied {
            t.push(("lm_head.weight".to_string(), vec![self.vocab, h]));
        }
        t
    }

    /// Bytes of weights one decode step reads: every linear layer and the LM head (the
    /// embedding table only by the rows it gathers, not counted), f16.
    pub fn decode_weight_bytes(&self) -> u64 {
        let linear: usize = self
            .tensors()
            .iter()
            .filter(|(n, s)| s.len() == 2 && n != "model.embed_tokens.weight")
            .map(|(_, s)| s[0] * s[1])
            .sum();
        let lm_head = if self.tied {
            self.vocab * self.hidden
        } else {
            0
        };
        2 * (linear + lm_head) as u64
    }

    pub fn parameters(&self) -> u64 {
        self.tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    }

    /// Writes config.json and model.safetensors into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let config = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "num_hidden_layers": self.layers,
            "vocab_size": self.vocab,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "hidden_act": "silu",
            "tie_word_embeddings": self.tied,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "float16",
        });
        std::fs::write(dir.join("config.json"), config.to_string())?;
        let tensors = self.tensors();
        let mut header = serde_json::Map::new();
        let mut offset = 0usize;
        for (name, shape) in &tensors {
            let bytes = 2 * shape.iter().product::<usize>();
            header.insert(
                name.clone(),
                json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
        }
        let mut header = serde_json::Value::Object(header).to_string().into_bytes();
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        let file = std::fs::File::create(dir.join("model.safetensors"))?;
        let mut out = BufWriter::with_capacity(8 << 20, file);
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(&header)?;
        let block = random_f16_block(1 << 20, 0x9e37_79b9_7f4a_7c15);
        let one = half_one();
        for (name, shape) in &tensors {
            let n = shape.iter().product::<usize>();
            if shape.len() == 1 {
                // Norm weights of 1, so activations keep a sane scale through the layers.
                for _ in 0..n {
                    out.write_all(&one)?;
                }
                continue;
            }
            // The same random block repeated, shifted per tensor: values do not matter here.
            let shift = (name.len() * 7919) % (block.len() / 2) * 2;
            let mut left = 2 * n;
            let mut at = shift;
            while left > 0 {
                let take = left.min(block.len() - at);
                out.write_all(&block[at..at + take])?;
                left -= take;
                at = 0;
            }
        }
        out.flush()
    }
}

/// f16 bit patterns of 1.0.
fn half_one() -> [u8; 2] {
    0x3c00u16.to_le_bytes()
}

/// `n` f16 values uniform in about ±0.03 (xorshift), as little-endian bytes.
fn random_f16_block(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = (x >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let v = half::f16::from_f64((u - 0.5) * 0.06);
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_have_the_parameter_counts_they_are_named_after() {
        let b15 = shape("1.5b").map(|s| s.parameters()).unwrap_or(0);
        assert!((1_500_000_000..1_600_000_000).contains(&b15), "{b15}");
        let b7 = shape("7b").map(|s| s.parameters()).unwrap_or(0);
        assert!((6_700_000_000..6_800_000_000).contains(&b7), "{b7}");
        assert!(shape("70b").is_none());
    }

    #[test]
    fn the_written_file_is_valid_safetensors_of_the_stated_size() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = shape("tiny").unwrap_or_else(|| panic!("tiny"));
        s.write(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap_or_default();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()) as usize;
        let header: serde_json::Value =
            serde_json::from_slice(&bytes[8..8 + header_len]).unwrap_or_default();
        assert_eq!(
            bytes.len() as u64,
            8 + header_len as u64 + 2 * s.parameters()
        );
        assert_eq!(header["lm_head.weight"]["shape"], json!([256, 64]));
        assert_eq!(header["lm_head.weight"]["dtype"], "F16");
    }
}

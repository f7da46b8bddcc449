//! A Hugging Face checkpoint directory as a served model: the weights (config.json +
//! safetensors, `safetensors.rs`) dispatched by `model_type` to the batched llama/qwen2
//! `Decoder` or to `Deepseek2`, `--quantize` / `--device` applied, and the text side
//! (tokenizer.json, tokenizer_config.json) from `hf_tokenizer.rs`.

use std::path::Path;

use super::{load_hf_text, prepare_weights, LoadError, LoadOptions, LoadedModel, SafetensorsDir};
use crate::model::deepseek2::Deepseek2Weights;
use crate::model::{CausalLm, Decoder, ModelInfo};

fn tensor_err(e: candle_core::Error) -> LoadError {
    LoadError::Tensor {
        name: "linear layers".into(),
        reason: e.to_string(),
    }
}

/// `--device` for deepseek2 weights (`--quantize` happened while reading them).
fn place_deepseek2(w: &mut Deepseek2Weights, opts: &LoadOptions) -> Result<(), LoadError> {
    let device = opts.device.open().map_err(tensor_err)?;
    if !device.is_cpu() {
        w.map_linears(|l| l.to_device(&device))
            .map_err(tensor_err)?;
    }
    Ok(())
}

/// The weights of a checkpoint directory as a batched model. `opts.context_length` caps the
/// model's own `max_position_embeddings`; EOS and BOS ids come from config.json.
pub fn load_checkpoint_model(
    dir: &Path,
    opts: &LoadOptions,
) -> Result<Box<dyn CausalLm>, LoadError> {
    let mut st = SafetensorsDir::open(dir)?;
    st.quantize = opts.quantize;
    let c = &st.config;
    let arch = c.architecture()?;
    let model_context = c.max_position_embeddings;
    let info = ModelInfo {
        architecture: arch.to_string(),
        vocab_size: c.vocab_size,
        context_length: opts
            .context_length
            .map_or(model_context, |n| n.min(model_context)),
        eos_token_ids: c.eos_ids(),
        bos_token_id: c.bos_id(),
        kv_bytes_per_token: 0, // filled by the model's constructor
    };
    let model: Box<dyn CausalLm> = match arch {
        "deepseek2" => Box::new(st.deepseek2(info, |w| place_deepseek2(w, opts))?),
        _ => {
            let cfg = st.decoder_config()?;
            // Already quantized while read: only `--device` is left to apply.
            let place_only = LoadOptions {
                quantize: None,
                ..opts.clone()
            };
            let weights = prepare_weights(st.decoder_weights()?, &place_only)?;
            if weights.lm_head.out_dim() != c.vocab_size {
                return Err(LoadError::BadMetadata {
                    key: "config.json vocab_size".into(),
                    reason: format!(
                        "{} but the output layer has {} rows",
                        c.vocab_size,
                        weights.lm_head.out_dim()
                    ),
                });
            }
            Box::new(Decoder::new(cfg, weights, info))
        }
    };
    if let Some(format) = opts.quantize {
        st.stats.borrow().log(format);
    }
    tracing::info!(
        dir = %dir.display(),
        architecture = arch,
        layers = c.num_hidden_layers,
        context = model.info().context_length,
        kv_bytes_per_token = model.info().kv_bytes_per_token,
        "safetensors weights loaded"
    );
    Ok(model)
}

/// Weights, tokenizer and chat template of a checkpoint directory. The tokenizer's EOS ids
/// (tokenizer_config.json, generation_config.json) end generation.
pub fn load_checkpoint(opts: &LoadOptions) -> Result<LoadedModel, LoadError> {
    let dir = &opts.model_path;
    let text = load_hf_text(dir, opts.chat_template_path.as_deref())?;
    let mut opts = opts.clone();
    if let Some(max) = text.model_max_length {
        opts.context_length = Some(opts.context_length.map_or(max, |n| n.min(max)));
    }
    let model = load_checkpoint_model(dir, &opts)?;
    if text.tokenizer.vocab_size() > model.info().vocab_size {
        return Err(LoadError::BadMetadata {
            key: "tokenizer.json".into(),
            reason: format!(
                "{} tokens but the output layer has {} rows",
                text.tokenizer.vocab_size(),
                model.info().vocab_size
            ),
        });
    }
    let mut info = model.info().clone();
    if !text.tokenizer.eos_token_ids().is_empty() {
        info.eos_token_ids = text.tokenizer.eos_token_ids().to_vec();
    }
    info.bos_token_id = text.tokenizer.bos_token_id().or(info.bos_token_id);
    Ok(LoadedModel {
        model: Box::new(WithInfo {
            model,
            info: info.clone(),
        }),
        tokenizer: text.tokenizer,
        chat_template: text.chat_template,
        info,
    })
}

/// A model whose reported facts (EOS ids from the tokenizer files) refine its own.
struct WithInfo {
    model: Box<dyn CausalLm>,
    info: ModelInfo,
}

impl CausalLm for WithInfo {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn new_cache(&self) -> crate::model::KvCache {
        self.model.new_cache()
    }

    fn forward(&self, batch: &mut [crate::model::SeqInput<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        self.model.forward(batch)
    }
}

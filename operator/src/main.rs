//! `deepseek-operator`: run | crd | render -f CR.yaml | manifests.

use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use deepseek_operator::controller::{self, RunConfig};
use deepseek_operator::desired::manifests::{manifests, ManifestConfig, OPERATOR_NAME};
use deepseek_operator::desired::{default_runtime_image, BuildConfig, BuildError};
use deepseek_operator::render::{self, RenderError};

#[derive(Parser)]
#[command(
    name = "deepseek-operator",
    version,
    about = "Kubernetes operator for DeepSeekDeployment resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the current kubeconfig or service account.
    Run(RunArgs),
    /// Print the DeepSeekDeployment CustomResourceDefinition as YAML.
    Crd,
    /// Print, offline, the objects the controller would apply for the given DeepSeekDeployment(s).
    Render(RenderArgs),
    /// Print CRD, RBAC and operator Deployment for `kubectl apply -f -`.
    Manifests(ManifestArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Reconcile only while holding the leader-election Lease.
    #[arg(long, env = "LEADER_ELECTION")]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = OPERATOR_NAME)]
    lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Holder identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = OPERATOR_NAME)]
    identity: String,
    /// Watch only this namespace (all namespaces by default).
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Seconds between two looks at a running canary (router figures, step pauses).
    #[arg(long, env = "ANALYSIS_INTERVAL_SECONDS", default_value_t = 10)]
    analysis_interval_seconds: u64,
    /// Seconds a revision leaving the routes keeps its pods for a router whose /admin/stats
    /// cannot be read (routers that answer are waited for until they serve the new routes).
    #[arg(long, env = "UNREADABLE_ROUTER_WAIT_SECONDS", default_value_t = 150)]
    unreadable_router_wait_seconds: u64,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Args)]
struct BuildArgs {
    /// Runtime image for resources that do not set spec.runtime.image.
    #[arg(long, env = "DEEPSEEK_RUNTIME_IMAGE", default_value_t = default_runtime_image())]
    runtime_image: String,
}

impl BuildArgs {
    fn config(&self) -> BuildConfig {
        BuildConfig {
            runtime_image: self.runtime_image.clone(),
            ..BuildConfig::default()
        }
    }
}

#[derive(Args)]
struct RenderArgs {
    /// DeepSeekDeployment YAML (one or more documents); `-` reads standard input.
    #[arg(short = 'f', long = "filename")]
    file: String,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Args)]
struct ManifestArgs {
    /// Namespace of the operator.
    #[arg(long, default_value = "deepseek-system")]
    namespace: String,
    /// Operator image.
    #[arg(long, default_value_t = ManifestConfig::default().image)]
    image: String,
    /// Operator replicas.
    #[arg(long, default_value_t = 1)]
    replicas: i32,
    #[command(flatten)]
    build: BuildArgs,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Crd => print_or_fail(deepseek_crds::crd::crd_yaml().map_err(|e| e.to_string())),
        Command::Render(args) => render_command(&args),
        Command::Manifests(args) => {
            let cfg = ManifestConfig {
                namespace: args.namespace,
                image: args.image,
                runtime_image: args.build.runtime_image,
                replicas: args.replicas,
                ..ManifestConfig::default()
            };
            let yaml = manifests(&cfg)
                .map_err(|e| e.to_string())
                .and_then(|objects| render::to_yaml_stream(&objects).map_err(|e| e.to_string()));
            print_or_fail(yaml)
        }
    }
}

fn print_or_fail(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = RunConfig {
        metrics_addr: args.metrics_addr,
        leader_election: args.leader_election,
        lease_name: args.lease_name,
        lease_namespace: args.lease_namespace,
        identity: args.identity,
        watch_namespace: args.watch_namespace,
        build: args.build.config(),
        analysis_interval: std::time::Duration::from_secs(args.analysis_interval_seconds.max(1)),
        unreadable_router_wait: std::time::Duration::from_secs(args.unreadable_router_wait_seconds),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return print_or_fail(Err(format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(controller::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => print_or_fail(Err(format!("{e:#}"))),
    }
}

fn render_command(args: &RenderArgs) -> ExitCode {
    let input = if args.file == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(&args.file)
    };
    let input = match input {
        Ok(text) => text,
        Err(e) => return print_or_fail(Err(format!("cannot read {}: {e}", args.file))),
    };
    match render::render(&input, &args.build.config()) {
        Ok(yaml) => print_or_fail(Ok(yaml)),
        // One line per field error, so scripts and people see every problem at once.
        Err(RenderError::Build {
            name,
            source: BuildError::InvalidSpec(errors),
        }) => {
            eprintln!("error: DeepSeekDeployment {name:?} is invalid:");
            for error in errors {
                eprintln!("  {error}");
            }
            ExitCode::from(2)
        }
        Err(e) => print_or_fail(Err(e.to_string())),
    }
}

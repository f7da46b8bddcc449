//! A server under test: a child process with its output in a log file, polled until it answers
//! a chat request, measured (peak resident memory) and stopped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `program args...`, which must listen on 127.0.0.1:`port`; stdout and stderr go to
    /// `log_dir/NAME.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        port: u16,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        })
    }

    /// Waits until the server lists a model and completes a 2-token chat request (which also
    /// warms it up); returns the model id to send. Fails early when the process exits.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "the server exited ({}) before it was ready; last lines of {}:\n{}",
                    describe_exit(status),
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            if let Ok(model) = self.try_chat(http).await {
                return Ok(model);
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the server was not ready after {timeout:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn try_chat(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        let model = super::client::first_model(http, &self.base).await?;
        http.post(format!("{}/v1/chat/completions", self.base))
            .json(&json!({
                "model": model,
                "messages": [{"role": "user", "content": "Hello"}],
                "max_tokens": 2,
            }))
            .send()
            .await?
            .error_for_status()?;
        Ok(model)
    }

    /// The most memory the process has had resident (Linux `VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        parse_vm_hwm(&status)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An exit status in words; a death by SIGILL or SIGSEGV at start-up almost always means a
/// binary built for instructions this CPU does not run (a `-march=native` build on a VM that
/// advertises more than it allows), so the message says so.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(4) => "killed by SIGILL: built for instructions this CPU cannot run; \
                    scripts/peer-isa-flags.sh shows the flags make bench builds llama.cpp with"
            .to_string(),
        Some(11) => "killed by SIGSEGV at start-up: often a build for instructions this CPU \
                     cannot use (e.g. AMX advertised by the VM); see scripts/peer-isa-flags.sh"
            .to_string(),
        _ => status.to_string(),
    }
}

/// CPU-bound busy loops in child processes (a noisy neighbour), killed when dropped: shows how
/// a server degrades when it does not have its cores to itself.
pub struct Competitors(Vec<Child>);

impl Competitors {
    pub fn start(n: usize) -> anyhow::Result<Self> {
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            children.push(
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting a competing busy loop")?,
            );
        }
        Ok(Self(children))
    }
}

impl Drop for Competitors {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `VmHWM:   123456 kB` -> bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peak_resident_set_from_proc_status() {
        let status = "Name:\tx\nVmPeak:\t  900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn a_server_that_exits_at_once_fails_readiness_with_its_log() {
        let dir = std::env::temp_dir().join(format!("dsr-bench-{}", std::process::id()));
        let args = vec!["-c".to_string(), "echo no such model; exit 3".to_string()];
        let mut s = ServerProcess::spawn("sh", Path::new("/bin/sh"), &args, 1, &dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = reqwest::Client::new();
        let err = rt
            .block_on(s.wait_ready(&http, Duration::from_secs(30)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited"), "{err}");
        assert!(err.contains("no such model"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_peer_killed_by_sigill_is_named_as_a_cpu_mismatch() {
        let dir = std::env::temp_dir().join(format!("dsr-bench-ill-{}", std::process::id()));
        let args = vec!["-c".to_string(), "kill -ILL $$".to_string()];
        let mut s = ServerProcess::spawn("sh", Path::new("/bin/sh"), &args, 1, &dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(s.wait_ready(&reqwest::Client::new(), Duration::from_secs(30)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SIGILL"), "{err}");
        assert!(err.contains("peer-isa-flags.sh"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! A real PostgreSQL server for the conversation-store tests: `initdb` into a temp dir and
//! `postgres` on a free port of 127.0.0.1, stopped on drop. PostgreSQL refuses to run as root,
//! so as root (CI) both run as the `nobody` user. Binaries come from PATH or
//! Debian's /usr/lib/postgresql/*/bin (`scripts/test-deps.sh` installs the package).
//! The server is the direct child (the user switch is `setuid` in the child), so stopping it
//! is a signal to the postmaster itself: SIGINT, PostgreSQL's fast shutdown.
#![allow(dead_code, clippy::unwrap_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deepseek_test_support::free_port;

/// The `nobody` user and group of Debian.
const NOBODY: u32 = 65534;

pub struct Postgres {
    pub url: String,
    server: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pid = self.server.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn bin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .unwrap_or_default();
    let debian = || {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin").join(name))
            .filter(|c| c.is_file())
            .collect();
        found.sort();
        found.pop()
    };
    on_path.or_else(debian).unwrap_or_else(|| {
        panic!("{name} not found: run scripts/test-deps.sh (Debian package postgresql)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `program args`, as the unprivileged user when we are root.
fn command(program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    if is_root() {
        c.uid(NOBODY).gid(NOBODY);
    }
    c
}

impl Postgres {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            // The data directory must belong to the user that runs the server.
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let data_s = data.to_str().unwrap();
        let status = command(
            &bin("initdb"),
            &["-D", data_s, "-A", "trust", "-U", "dsr", "--no-sync"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
        assert!(status.success(), "initdb failed");
        let port = free_port();
        let port_s = port.to_string();
        let server = command(
            &bin("postgres"),
            &[
                "-D",
                data_s,
                "-p",
                &port_s,
                "-h",
                "127.0.0.1",
                "-k",
                data_s,
                "-F",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let url = format!("postgres://dsr@127.0.0.1:{port}/postgres");
        // Ready once it takes a session (it accepts TCP earlier, while still starting up).
        let ready = deepseek_test_support::eventually(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                deepseek_privacy::store::ConversationStore::open(&url)
                    .await
                    .ok()
            },
        )
        .await;
        assert!(ready.is_some(), "postgres did not start on {port}");
        Self {
            url,
            server,
            _dir: dir,
        }
    }
}

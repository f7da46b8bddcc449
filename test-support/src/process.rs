//! Ports and child processes for tests that start servers.

use std::net::{SocketAddr, TcpListener};
use std::process::Child;

/// A 127.0.0.1 address with a port the OS just handed out (and released) for a server to bind.
pub fn free_addr() -> SocketAddr {
    #[allow(clippy::unwrap_used)] // a test machine without a loopback port is broken anyway
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    #[allow(clippy::unwrap_used)]
    listener.local_addr().unwrap()
}

/// The port of [`free_addr`].
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A blocking child process killed (and reaped) when the guard drops, so a failing test never
/// leaves a server behind. For tokio's `Command`, `kill_on_drop(true)` does the same.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound_and_a_guarded_child_is_gone_after_drop() {
        let addr = free_addr();
        assert!(TcpListener::bind(addr).is_ok(), "{addr} was not free");
        let guard = ChildGuard(
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("sleep runs"),
        );
        let pid = guard.id();
        drop(guard);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(
            status.is_empty() || status.contains("State:\tZ"),
            "{status}"
        );
    }
}

//! Buckets on Redis, so every replica spends one shared budget. Each decision is one round
//! trip: a Lua script (atomic on the server) refills, checks and takes from all the request's
//! buckets, with Redis's own clock so replicas with skewed clocks agree.
//!
//! The client is the few lines of RESP this needs (SCRIPT LOAD/EVALSHA/EVAL/AUTH/SELECT over a
//! small pool of connections) rather than a general Redis library and its dependency tree.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::bucket::{BucketView, Limit};

/// KEYS: the buckets. ARGV: per bucket, its refill rate (tokens per ms) and capacity.
/// Returns {allowed, then per bucket remaining, retry_after_ms, reset_ms}.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local s = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(s[1]) or cap
  local at = tonumber(s[2]) or now
  tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  if tokens < 1 then allowed = 0 end
end
local out = {allowed}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local tokens = levels[i]
  if allowed == 1 then tokens = tokens - 1 end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(cap / rate) + 1000)
  local retry = 0
  if tokens < 1 then retry = math.ceil((1 - tokens) / rate) end
  table.insert(out, math.floor(tokens))
  table.insert(out, retry)
  table.insert(out, math.ceil((cap - tokens) / rate))
end
return out
"#;

/// Each command (connect included) must finish within this, or the store counts as down.
const OP_TIMEOUT: Duration = Duration::from_millis(500);
/// Idle connections kept for reuse.
const POOL_SIZE: usize = 32;

/// Where Redis is: `redis://[:password@]host:port[/db]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisUrl {
    pub addr: String,
    pub password: Option<String>,
    pub db: Option<u32>,
}

impl RedisUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| anyhow!("a Redis URL starts with redis:// (got {url})"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((h, "")) => (h, None),
            Some((h, d)) => (h, Some(d.parse().context("the Redis db is a number")?)),
            None => (rest, None),
        };
        let addr = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        };
        let password = auth.map(|a| a.rsplit(':').next().unwrap_or(a).to_string());
        Ok(Self { addr, password, db })
    }
}

pub struct RedisStore {
    url: RedisUrl,
    /// The script's SHA-1 as Redis reports it (`SCRIPT LOAD`), once known.
    sha: std::sync::Mutex<Option<String>>,
    pool: Mutex<Vec<Conn>>,
}

impl RedisStore {
    pub fn new(url: RedisUrl) -> Self {
        Self {
            url,
            sha: std::sync::Mutex::new(None),
            pool: Mutex::new(Vec::new()),
        }
    }

    /// One token from each keyed bucket, or none; the views in the keys' order.
    pub async fn take(&self, keys: &[(String, Limit)]) -> anyhow::Result<(bool, Vec<BucketView>)> {
        let pooled = self.pool.lock().await.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => tokio::time::timeout(OP_TIMEOUT, Conn::open(&self.url))
                .await
                .map_err(|_| anyhow!("connecting to Redis at {} timed out", self.url.addr))??,
        };
        let reply = tokio::time::timeout(OP_TIMEOUT, self.run_script(&mut conn, keys))
            .await
            .map_err(|_| anyhow!("Redis at {} did not answer in time", self.url.addr))??;
        // Only a connection that completed its exchange goes back: a timed-out one may still
        // have a reply in flight that the next user would read as its own.
        let mut pool = self.pool.lock().await;
        if pool.len() < POOL_SIZE {
            pool.push(conn);
        }
        drop(pool);
        parse_outcome(&reply, keys.len())
    }

    async fn run_script(&self, conn: &mut Conn, keys: &[(String, Limit)]) -> anyhow::Result<Reply> {
        let known = self.sha.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let sha = match known {
            Some(sha) => sha,
            None => {
                let reply = conn
                    .command(&[
                        b"SCRIPT".to_vec(),
                        b"LOAD".to_vec(),
                        SCRIPT.as_bytes().to_vec(),
                    ])
                    .await?;
                let Reply::Bulk(Some(sha)) = reply else {
                    bail!("SCRIPT LOAD answered {reply:?}");
                };
                let sha = String::from_utf8_lossy(&sha).into_owned();
                *self.sha.lock().unwrap_or_else(|e| e.into_inner()) = Some(sha.clone());
                sha
            }
        };
        let mut args: Vec<Vec<u8>> = vec![
            b"EVALSHA".to_vec(),
            sha.into_bytes(),
            keys.len().to_string().into_bytes(),
        ];
        args.extend(keys.iter().map(|(k, _)| k.clone().into_bytes()));
        for (_, l) in keys {
            args.push(format!("{}", l.per_ms()).into_bytes());
            args.push(l.capacity.to_string().into_bytes());
        }
        match conn.command(&args).await? {
            // Redis restarted since the script was loaded: send the script itself (cached again).
            Reply::Error(e) if e.starts_with("NOSCRIPT") => {
                args[0] = b"EVAL".to_vec();
                args[1] = SCRIPT.as_bytes().to_vec();
                conn.command(&args).await
            }
            r => Ok(r),
        }
    }
}

fn parse_outcome(reply: &Reply, n: usize) -> anyhow::Result<(bool, Vec<BucketView>)> {
    let items = match reply {
        Reply::Array(items) if items.len() == 1 + 3 * n => items,
        Reply::Error(e) => bail!("Redis error: {e}"),
        other => bail!("unexpected reply from the rate-limit script: {other:?}"),
    };
    let int = |i: usize| match &items[i] {
        Reply::Int(v) => Ok(*v),
        other => Err(anyhow!("expected an integer, got {other:?}")),
    };
    let allowed = int(0)? == 1;
    let mut views = Vec::with_capacity(n);
    for b in 0..n {
        views.push(BucketView {
            remaining: int(1 + 3 * b)?.max(0) as u64,
            retry_after_ms: int(2 + 3 * b)?.max(0) as u64,
            reset_ms: int(3 + 3 * b)?.max(0) as u64,
        });
    }
    Ok((allowed, views))
}

/// A RESP reply (RESP2, the subset Redis sends for these commands).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(url: &RedisUrl) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(&url.addr)
            .await
            .with_context(|| format!("connecting to Redis at {}", url.addr))?;
        tcp.set_nodelay(true)?;
        let mut conn = Self {
            stream: BufReader::new(tcp),
        };
        if let Some(pw) = &url.password {
            conn.expect_ok(&[b"AUTH".to_vec(), pw.clone().into_bytes()])
                .await?;
        }
        if let Some(db) = url.db {
            conn.expect_ok(&[b"SELECT".to_vec(), db.to_string().into_bytes()])
                .await?;
        }
        Ok(conn)
    }

    async fn expect_ok(&mut self, args: &[Vec<u8>]) -> anyhow::Result<()> {
        match self.command(args).await? {
            Reply::Simple(_) => Ok(()),
            other => bail!(
                "Redis refused {}: {other:?}",
                String::from_utf8_lossy(&args[0])
            ),
        }
    }

    async fn command(&mut self, args: &[Vec<u8>]) -> anyhow::Result<Reply> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&buf).await?;
        self.read_reply(0).await
    }

    async fn read_line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            bail!("Redis closed the connection");
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Reads one reply; arrays nest at most once (the script's reply is flat).
    async fn read_reply(&mut self, depth: usize) -> anyhow::Result<Reply> {
        let line = self.read_line().await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        Ok(match kind {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().context("RESP integer")?),
            "$" => {
                let len: i64 = rest.parse().context("RESP bulk length")?;
                if len < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut data = vec![0u8; len as usize + 2];
                    self.stream.read_exact(&mut data).await?;
                    data.truncate(len as usize);
                    Reply::Bulk(Some(data))
                }
            }
            "*" if depth == 0 => {
                let len: i64 = rest.parse().context("RESP array length")?;
                let mut items = Vec::with_capacity(len.max(0) as usize);
                for _ in 0..len.max(0) {
                    items.push(Box::pin(self.read_reply(depth + 1)).await?);
                }
                Reply::Array(items)
            }
            _ => bail!("unexpected RESP line {line:?}"),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        assert_eq!(
            RedisUrl::parse("redis://r.ns.svc:6380/2").unwrap(),
            RedisUrl {
                addr: "r.ns.svc:6380".into(),
                password: None,
                db: Some(2)
            }
        );
        assert_eq!(
            RedisUrl::parse("redis://:pw@redis").unwrap(),
            RedisUrl {
                addr: "redis:6379".into(),
                password: Some("pw".into()),
                db: None
            }
        );
        assert!(RedisUrl::parse("http://x").is_err());
    }
}

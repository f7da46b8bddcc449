//! The embedded SQLite store. rusqlite is blocking: every call runs on tokio's blocking pool
//! with the one connection behind a mutex (SQLite serialises writers anyway).

use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection};

use super::{AuditEntry, Conversation, StoreError, StoredMessage};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    model TEXT NOT NULL,
    messages TEXT NOT NULL,
    answer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_subject ON conversations (subject);
CREATE TABLE IF NOT EXISTS privacy_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let path = path.to_string();
        let conn = blocking(move || {
            let conn = Connection::open(path)?;
            conn.execute_batch(SCHEMA)?;
            Ok(conn)
        })
        .await?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Task("sqlite connection lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
    }

    pub async fn insert(&self, c: &Conversation) -> Result<(), StoreError> {
        let c = c.clone();
        let messages = serde_json::to_string(&c.messages)?;
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM conversations WHERE expires_at <= ?1",
                params![c.created_at],
            )?;
            tx.execute(
                "INSERT INTO conversations (id, subject, created_at, expires_at, model, messages, answer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![c.id, c.subject, c.created_at, c.expires_at, c.model, messages, c.answer],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub async fn export(&self, subject: &str, now: i64) -> Result<Vec<Conversation>, StoreError> {
        let subject = subject.to_string();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, subject, created_at, expires_at, model, messages, answer
                 FROM conversations WHERE subject = ?1 AND expires_at > ?2
                 ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map(params![subject, now], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, subject, created_at, expires_at, model, messages, answer) = row?;
                let messages: Vec<StoredMessage> = serde_json::from_str(&messages)?;
                out.push(Conversation {
                    id,
                    subject,
                    created_at,
                    expires_at,
                    model,
                    messages,
                    answer,
                });
            }
            Ok(out)
        })
        .await
    }

    pub async fn erase(&self, subject: &str) -> Result<u64, StoreError> {
        let subject = subject.to_string();
        self.with(move |conn| {
            let n = conn.execute(
                "DELETE FROM conversations WHERE subject = ?1",
                params![subject],
            )?;
            Ok(n as u64)
        })
        .await
    }

    pub async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        let e = e.clone();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO privacy_audit (id, at, actor, action, subject, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.id, e.at, e.actor, e.action, e.subject, e.detail],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, at, actor, action, subject, detail FROM privacy_audit ORDER BY seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    subject: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

//! The conversation store (opt-in): redacted conversations with an expiry, per data subject,
//! and the audit trail of every privacy action. An embedded SQLite file by default, PostgreSQL
//! when the URL says so. Callers redact before they store; the store keeps what it is given.
//! Expired conversations are never returned and are purged on every insert.

mod postgres;
mod sqlite;

use serde::Serialize;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// One message as stored (already redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StoredMessage {
    pub role: String,
    pub content: String,
}

/// One request and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversation {
    pub id: String,
    pub subject: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which the conversation is gone (retention).
    pub expires_at: i64,
    pub model: String,
    pub messages: Vec<StoredMessage>,
    pub answer: String,
}

/// A privacy action: who did what to whose data, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// The principal that acted (its subject).
    pub actor: String,
    /// `export`, `erase` or `processing_activities`.
    pub action: String,
    /// The data subject acted on (empty for actions on no one's data).
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conversation store (sqlite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("conversation store (postgres): {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("conversation store: stored messages do not parse: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("conversation store: background task failed: {0}")]
    Task(String),
}

/// Where conversations live.
pub enum ConversationStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl ConversationStore {
    /// `postgres://...` or `postgresql://...` is PostgreSQL; `sqlite:PATH`, `sqlite://PATH` or
    /// a plain path is an SQLite file (created with its tables when absent).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(PostgresStore::connect(url).await?));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Ok(Self::Sqlite(SqliteStore::open(path).await?))
    }

    /// `sqlite` or `postgres`, for records and receipts.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub async fn insert(&self, c: &Conversation) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.insert(c).await,
            Self::Postgres(s) => s.insert(c).await,
        }
    }

    /// The subject's conversations that have not expired at `now`, oldest first.
    pub async fn export(&self, subject: &str, now: i64) -> Result<Vec<Conversation>, StoreError> {
        match self {
            Self::Sqlite(s) => s.export(subject, now).await,
            Self::Postgres(s) => s.export(subject, now).await,
        }
    }

    /// Deletes every conversation of the subject; how many there were.
    pub async fn erase(&self, subject: &str) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.erase(subject).await,
            Self::Postgres(s) => s.erase(subject).await,
        }
    }

    pub async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.audit(e).await,
            Self::Postgres(s) => s.audit(e).await,
        }
    }

    /// The audit trail, oldest first.
    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            Self::Sqlite(s) => s.audit_log().await,
            Self::Postgres(s) => s.audit_log().await,
        }
    }
}

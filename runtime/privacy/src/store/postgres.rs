//! The PostgreSQL store: one `tokio-postgres` connection (plain TCP or a Unix socket, as the
//! URL says), its driver task spawned on the caller's runtime; the schema is created when
//! absent.

use tokio_postgres::{Client, NoTls};

use super::{AuditEntry, Conversation, StoreError, StoredMessage};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    model TEXT NOT NULL,
    messages TEXT NOT NULL,
    answer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_subject ON conversations (subject);
CREATE TABLE IF NOT EXISTS privacy_audit (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

pub struct PostgresStore {
    client: Client,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(error = %e, "conversation store connection to PostgreSQL ended");
            }
        });
        client.batch_execute(SCHEMA).await?;
        Ok(Self { client })
    }

    pub async fn insert(&self, c: &Conversation) -> Result<(), StoreError> {
        let messages = serde_json::to_string(&c.messages)?;
        self.client
            .execute(
                "DELETE FROM conversations WHERE expires_at <= $1",
                &[&c.created_at],
            )
            .await?;
        self.client
            .execute(
                "INSERT INTO conversations (id, subject, created_at, expires_at, model, messages, answer)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&c.id, &c.subject, &c.created_at, &c.expires_at, &c.model, &messages, &c.answer],
            )
            .await?;
        Ok(())
    }

    pub async fn export(&self, subject: &str, now: i64) -> Result<Vec<Conversation>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT id, subject, created_at, expires_at, model, messages, answer
                 FROM conversations WHERE subject = $1 AND expires_at > $2
                 ORDER BY created_at, id",
                &[&subject, &now],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let messages: Vec<StoredMessage> = serde_json::from_str(r.get::<_, &str>(5))?;
                Ok(Conversation {
                    id: r.get(0),
                    subject: r.get(1),
                    created_at: r.get(2),
                    expires_at: r.get(3),
                    model: r.get(4),
                    messages,
                    answer: r.get(6),
                })
            })
            .collect()
    }

    pub async fn erase(&self, subject: &str) -> Result<u64, StoreError> {
        Ok(self
            .client
            .execute("DELETE FROM conversations WHERE subject = $1", &[&subject])
            .await?)
    }

    pub async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.client
            .execute(
                "INSERT INTO privacy_audit (id, at, actor, action, subject, detail)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&e.id, &e.at, &e.actor, &e.action, &e.subject, &e.detail],
            )
            .await?;
        Ok(())
    }

    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT id, at, actor, action, subject, detail FROM privacy_audit ORDER BY seq",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                subject: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }
}

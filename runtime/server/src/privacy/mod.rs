//! Privacy in the API server: redaction of everything it logs or keeps (the degradation
//! cache, the conversation store, log lines), the opt-in conversation store, and the
//! data-subject endpoints (`endpoints`). Flags in `PrivacyArgs`; the model's input is never
//! redacted.

pub mod endpoints;
pub mod identity;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deepseek_privacy::store::{Conversation, ConversationStore, StoreError, StoredMessage};
use deepseek_privacy::{Category, Redactor};
use deepseek_protocol::validate::PromptMessage;

/// `serve` flags of the privacy features.
#[derive(Debug, Clone, clap::Args)]
pub struct PrivacyArgs {
    /// PII categories redacted from logs, the degradation cache and stored conversations
    /// (comma-separated: email, phone, cn_id, card, ip; `none` turns redaction off).
    #[arg(
        long,
        env = "DSR_REDACT",
        value_delimiter = ',',
        default_value = "email,phone,cn_id,card,ip"
    )]
    pub redact: Vec<String>,
    /// Keeps redacted conversations per data subject (opt-in): `sqlite:PATH` (or a plain
    /// path) for an embedded SQLite file, `postgres://user@host/db` for PostgreSQL.
    #[arg(long, env = "DSR_CONVERSATION_STORE")]
    pub conversation_store: Option<String>,
    /// Seconds a stored conversation is kept.
    #[arg(long, env = "DSR_CONVERSATION_RETENTION_SECS", default_value_t = 30 * 24 * 3600)]
    pub conversation_retention_secs: u64,
    /// Serves `/v1/privacy/*` (export, erase, records of processing), for callers with the
    /// `admin` role.
    #[arg(long, env = "DSR_PRIVACY_ENDPOINTS", default_value_t = false)]
    pub privacy_endpoints: bool,
    /// TESTING AND DEVELOPMENT ONLY: without an auth layer, take the caller's subject and
    /// roles from the `x-dsr-subject` and `x-dsr-roles` headers. Anyone can send those: never
    /// turn this on where clients reach the server directly.
    #[arg(long, env = "DSR_TRUST_IDENTITY_HEADERS", default_value_t = false)]
    pub trust_identity_headers: bool,
    /// Purposes of processing, for the records of processing activities (comma-separated).
    #[arg(
        long,
        env = "DSR_PRIVACY_PURPOSES",
        value_delimiter = ',',
        default_value = "answering chat requests"
    )]
    pub privacy_purposes: Vec<String>,
    /// Recipients of the personal data, for the records of processing (comma-separated).
    #[arg(long, env = "DSR_PRIVACY_RECIPIENTS", value_delimiter = ',')]
    pub privacy_recipients: Vec<String>,
}

impl Default for PrivacyArgs {
    fn default() -> Self {
        Self {
            redact: Category::ALL.iter().map(|c| c.name().to_string()).collect(),
            conversation_store: None,
            conversation_retention_secs: 30 * 24 * 3600,
            privacy_endpoints: false,
            trust_identity_headers: false,
            privacy_purposes: vec!["answering chat requests".into()],
            privacy_recipients: Vec::new(),
        }
    }
}

impl PrivacyArgs {
    /// The redactor the `--redact` list names.
    pub fn redactor(&self) -> anyhow::Result<Redactor> {
        if self.redact.iter().any(|c| c.trim() == "none") {
            return Ok(Redactor::off());
        }
        let categories = self
            .redact
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.parse::<Category>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Redactor::new(categories))
    }
}

/// The server's privacy state, shared by the handlers.
pub struct Privacy {
    pub redactor: Redactor,
    pub config: PrivacyArgs,
    pub retention: Duration,
    /// Opened by `open_store` once the async runtime runs (PostgreSQL's driver needs it).
    store: OnceLock<Arc<ConversationStore>>,
}

impl Default for Privacy {
    fn default() -> Self {
        Self::new(PrivacyArgs::default(), Redactor::default())
    }
}

impl Privacy {
    pub fn new(config: PrivacyArgs, redactor: Redactor) -> Self {
        Self {
            redactor,
            retention: Duration::from_secs(config.conversation_retention_secs),
            config,
            store: OnceLock::new(),
        }
    }

    pub fn from_args(config: &PrivacyArgs) -> anyhow::Result<Self> {
        Ok(Self::new(config.clone(), config.redactor()?))
    }

    /// Opens `--conversation-store` when one is configured.
    pub async fn open_store(&self) -> Result<(), StoreError> {
        if let Some(url) = &self.config.conversation_store {
            let store = ConversationStore::open(url).await?;
            tracing::info!(kind = store.kind(), "conversation store open");
            let _ = self.store.set(Arc::new(store));
        }
        Ok(())
    }

    pub fn store(&self) -> Option<&Arc<ConversationStore>> {
        self.store.get()
    }

    /// Redacted copy of `text` (for logs and anything kept).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text).into_owned()
    }

    /// Logs the exchange (redacted, at debug level) and, when a store is open and the caller is
    /// known, keeps it (redacted) in the background. Never fails the request.
    pub fn record(
        &self,
        subject: Option<&str>,
        model: &str,
        messages: &[PromptMessage],
        answer: &str,
    ) {
        let messages: Vec<StoredMessage> = messages
            .iter()
            .map(|m| StoredMessage {
                role: m.role.as_str().to_string(),
                content: self.redact(&m.content),
            })
            .collect();
        let answer = self.redact(answer);
        if let Some(last) = messages.last() {
            tracing::debug!(subject, prompt = %last.content, answer = %answer, "chat exchange");
        }
        let (Some(store), Some(subject)) = (self.store().cloned(), subject) else {
            return;
        };
        let now = chrono::Utc::now().timestamp();
        let conversation = Conversation {
            id: format!("conv-{}", uuid::Uuid::new_v4().simple()),
            subject: subject.to_string(),
            created_at: now,
            expires_at: now + self.retention.as_secs() as i64,
            model: model.to_string(),
            messages,
            answer,
        };
        tokio::spawn(async move {
            if let Err(e) = store.insert(&conversation).await {
                tracing::error!(error = %e, "storing a conversation failed");
            }
        });
    }
}

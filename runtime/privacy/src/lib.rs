//! deepseek-privacy: personal data kept out of logs and stored text. Is: detection of emails,
//! phone numbers, mainland-China resident ID numbers, bank card numbers and IP addresses, and
//! their replacement by typed placeholders (`[EMAIL]`, `[PHONE]`, `[CN_ID]`, `[CARD]`, `[IP]`).
//! Also: the opt-in conversation store (`store`: SQLite or PostgreSQL) with its audit trail.
//! Is NOT: anything applied to the model's input (the model sees what the user wrote); HTTP
//! endpoints (those live with the server).

pub mod category;
pub mod detect;
pub mod redact;
pub mod store;

pub use category::{Category, ParseCategoryError};
pub use detect::{find, Finding};
pub use redact::Redactor;

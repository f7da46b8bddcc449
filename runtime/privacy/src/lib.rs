//! deepseek-privacy: personal data kept out of logs and stored text. Is: detection of emails,
//! phone numbers, mainland-China resident ID numbers, bank card numbers and IP addresses, and
//! their replacement by typed placeholders (`[EMAIL]`, `[PHONE]`, `[CN_ID]`, `[CARD]`, `[IP]`).
//! Is NOT: anything applied to the model's input (the model sees what the user wrote); storage
//! or endpoints (those live with the server).

pub mod category;
pub mod detect;
pub mod redact;

pub use category::{Category, ParseCategoryError};
pub use detect::{find, Finding};
pub use redact::Redactor;

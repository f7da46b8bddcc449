//! The kinds of personal data the redactor knows, their placeholders and their names in
//! configuration (`--redact email,phone,cn_id,card,ip`).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Email,
    CnId,
    Card,
    Phone,
    Ip,
}

impl Category {
    /// All categories, in the order overlapping findings are preferred (most specific first).
    pub const ALL: [Category; 5] = [
        Category::Email,
        Category::CnId,
        Category::Card,
        Category::Phone,
        Category::Ip,
    ];

    /// What the text is replaced with.
    pub fn placeholder(self) -> &'static str {
        match self {
            Category::Email => "[EMAIL]",
            Category::CnId => "[CN_ID]",
            Category::Card => "[CARD]",
            Category::Phone => "[PHONE]",
            Category::Ip => "[IP]",
        }
    }

    /// Name in flags and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::CnId => "cn_id",
            Category::Card => "card",
            Category::Phone => "phone",
            Category::Ip => "ip",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown PII category {0:?} (known: email, phone, cn_id, card, ip)")]
pub struct ParseCategoryError(pub String);

impl FromStr for Category {
    type Err = ParseCategoryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Category::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or(ParseCategoryError(s))
    }
}

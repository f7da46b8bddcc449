//! Replacing what `detect` finds with typed placeholders. Placeholders hold no digit, `@`,
//! dot or colon, so redacting twice changes nothing (a property test holds it to that).

use std::borrow::Cow;

use super::category::Category;
use super::detect::find;

/// Redacts the configured categories; cheap to clone and share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redactor {
    categories: Vec<Category>,
}

impl Default for Redactor {
    /// Every category.
    fn default() -> Self {
        Self::new(Category::ALL)
    }
}

impl Redactor {
    pub fn new(categories: impl IntoIterator<Item = Category>) -> Self {
        let mut categories: Vec<Category> = categories.into_iter().collect();
        categories.sort();
        categories.dedup();
        Self { categories }
    }

    /// A redactor that changes nothing (redaction turned off).
    pub fn off() -> Self {
        Self::new([])
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// `text` with each finding replaced by its placeholder; borrowed when nothing was found.
    ///
    /// Repeated until nothing more is found: a candidate glued to a number is skipped, and once
    /// that number is a placeholder the candidate stands alone (`13800138000+1 415 555 2671`).
    /// Each round removes digits, `@` or `:` and adds none, so the loop ends.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        while let Some(next) = self.redact_once(&out) {
            out = Cow::Owned(next);
        }
        out
    }

    /// One round; `None` when nothing was found.
    fn redact_once(&self, text: &str) -> Option<String> {
        if self.categories.is_empty() {
            return None;
        }
        let findings = find(text, &self.categories);
        if findings.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            out.push_str(&text[at..f.range.start]);
            out.push_str(f.category.placeholder());
            at = f.range.end;
        }
        out.push_str(&text[at..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_category_gets_its_placeholder_and_unlisted_ones_stay() {
        let text = "mail a.b@example.com, call +86 138 0013 8000, ip 192.168.1.20";
        assert_eq!(
            Redactor::default().redact(text),
            "mail [EMAIL], call [PHONE], ip [IP]"
        );
        assert_eq!(
            Redactor::new([Category::Email]).redact(text),
            "mail [EMAIL], call +86 138 0013 8000, ip 192.168.1.20"
        );
        assert_eq!(Redactor::off().redact(text), text);
    }
}

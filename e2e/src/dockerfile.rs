//! A small Dockerfile reader for the image checks: instructions with line continuations joined
//! and comments dropped, `ARG` defaults, and `FROM` images with those defaults substituted.

use std::collections::BTreeMap;

/// One instruction: keyword (upper case) and its arguments as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub instructions: Vec<Instruction>,
    /// The comment lines (without `#`), where build commands are documented.
    pub comments: Vec<String>,
}

impl Dockerfile {
    pub fn parse(text: &str) -> Self {
        let mut instructions = Vec::new();
        let mut comments = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                comments.push(trimmed.trim_start_matches('#').trim().to_string());
                continue;
            }
            if trimmed.is_empty() && current.is_empty() {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                    instructions.push(Instruction {
                        keyword: keyword.to_ascii_uppercase(),
                        args: args.trim().to_string(),
                    });
                    current.clear();
                }
            }
        }
        Self {
            instructions,
            comments,
        }
    }

    /// Instructions with this keyword.
    pub fn all(&self, keyword: &str) -> Vec<&Instruction> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == keyword)
            .collect()
    }

    /// `ARG NAME=default` values (the last one wins, as in a single stage).
    pub fn arg_defaults(&self) -> BTreeMap<String, String> {
        self.all("ARG")
            .iter()
            .filter_map(|i| i.args.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect()
    }

    /// Each stage's base: (image with ARG defaults substituted, stage name).
    pub fn stages(&self) -> Vec<(String, Option<String>)> {
        let args = self.arg_defaults();
        self.all("FROM")
            .iter()
            .map(|i| {
                let parts: Vec<&str> = i
                    .args
                    .split_whitespace()
                    .filter(|p| !p.starts_with("--"))
                    .collect();
                let image = substitute(parts.first().copied().unwrap_or_default(), &args);
                let name = match parts.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                    _ => None,
                };
                (image, name)
            })
            .collect()
    }

    /// Instructions of the last stage (the image that ships).
    pub fn final_stage(&self) -> &[Instruction] {
        let start = self
            .instructions
            .iter()
            .rposition(|i| i.keyword == "FROM")
            .unwrap_or(0);
        &self.instructions[start..]
    }
}

/// Replaces `${NAME}` and `$NAME` by the ARG default.
pub fn substitute(text: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in args {
        out = out
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    out
}

/// Whether an image reference pins a version: a digest, or a tag that is not `latest` and
/// carries a version number.
pub fn is_pinned(image: &str) -> bool {
    if let Some((_, digest)) = image.split_once("@sha256:") {
        return digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
        None => false,
    }
}

/// Whether a `USER` value names a non-root user (a uid other than 0, or a name other than root).
pub fn is_non_root(user: &str) -> bool {
    let who = user.split(':').next().unwrap_or_default().trim();
    !who.is_empty() && who != "0" && who != "root"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines_join_and_arg_defaults_substitute_into_from() {
        let d = Dockerfile::parse(
            "ARG BASE=rust:1.95.0\n# a comment\nFROM ${BASE} AS build\nRUN a \\\n  b\nFROM build\n",
        );
        assert_eq!(
            d.stages(),
            vec![
                ("rust:1.95.0".to_string(), Some("build".to_string())),
                ("build".to_string(), None)
            ]
        );
        assert_eq!(d.all("RUN")[0].args, "a  b");
        assert_eq!(d.comments, vec!["a comment"]);
    }

    #[test]
    fn latest_and_untagged_images_are_not_pinned() {
        assert!(!is_pinned("debian:latest"));
        assert!(!is_pinned("debian"));
        assert!(!is_pinned("gcr.io/distroless/static-debian12:nonroot"));
        assert!(is_pinned("rust:1.95.0-bookworm"));
        assert!(is_pinned("localhost:5000/x:1.2"));
        assert!(is_pinned(
            "gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab"
        ));
    }

    #[test]
    fn root_users_are_refused() {
        assert!(!is_non_root("root"));
        assert!(!is_non_root("0:0"));
        assert!(is_non_root("65532:65532"));
        assert!(is_non_root("runtime"));
    }
}

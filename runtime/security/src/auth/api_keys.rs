//! Static API keys: the simple alternative to JWTs. The file holds one key per line, either in
//! clear or as `sha256:HEX` (so the Secret need not hold usable keys), optionally followed by a
//! space and the key's roles (`chat,admin`; `chat` when omitted). `#` starts a comment.
//! Only hashes are kept in memory, and a presented key is hashed before the lookup, so the
//! comparison never touches the clear key and takes the same time whatever its prefix.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use super::Principal;
use crate::routes::Role;

/// The keys of one version of the file, by SHA-256 of the key.
#[derive(Debug, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], HashSet<Role>>,
}

impl ApiKeys {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading API keys from {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut by_hash = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, roles) = match line.split_once(char::is_whitespace) {
                Some((k, r)) => (k, parse_roles(r.trim())),
                None => (line, HashSet::from([Role::Chat])),
            };
            let hash = match key.strip_prefix("sha256:") {
                Some(h) => {
                    let bytes = hex::decode(h)
                        .with_context(|| format!("line {}: sha256: needs 64 hex digits", n + 1))?;
                    match <[u8; 32]>::try_from(bytes.as_slice()) {
                        Ok(h) => h,
                        Err(_) => bail!("line {}: sha256: needs 64 hex digits", n + 1),
                    }
                }
                None => sha256(key),
            };
            by_hash.insert(hash, roles);
        }
        Ok(Self { by_hash })
    }

    /// The principal a presented key stands for, if it is one of ours. Its id is a prefix of the
    /// key's hash: stable per key (rate limits), useless for recovering the key (logs).
    pub fn lookup(&self, presented: &str) -> Option<Principal> {
        let hash = sha256(presented);
        self.by_hash.get(&hash).map(|roles| Principal {
            id: format!("key:{}", &hex::encode(hash)[..16]),
            roles: roles.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

fn parse_roles(s: &str) -> HashSet<Role> {
    s.split(',').filter_map(Role::parse).collect()
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn clear_and_hashed_keys_with_and_without_roles() {
        let hashed = hex::encode(sha256("sk-hashed"));
        let keys = ApiKeys::parse(&format!(
            "# comment\nsk-plain\n\nsha256:{hashed} chat,admin\nsk-admin admin\n"
        ))
        .unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(
            keys.lookup("sk-plain").unwrap().roles,
            HashSet::from([Role::Chat])
        );
        assert_eq!(
            keys.lookup("sk-hashed").unwrap().roles,
            HashSet::from([Role::Chat, Role::Admin])
        );
        assert_eq!(
            keys.lookup("sk-admin").unwrap().roles,
            HashSet::from([Role::Admin])
        );
        assert!(keys.lookup("sk-other").is_none());
        assert!(keys.lookup(&format!("sha256:{hashed}")).is_none());
        assert!(!keys.lookup("sk-plain").unwrap().id.contains("sk-plain"));
    }

    #[test]
    fn a_bad_hash_is_an_error_not_a_silent_skip() {
        assert!(ApiKeys::parse("sha256:abcd chat").is_err());
    }
}

//! Streamed SHA256: files are read in 1 MiB chunks, never whole into memory (model files are
//! tens of gigabytes).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{ModelFilesError, Result};

/// Bytes read per call while hashing or copying.
pub const CHUNK: usize = 1 << 20;

/// Size in bytes and lower-case hex SHA256 of a file.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let file = std::fs::File::open(path).map_err(|e| ModelFilesError::io(path, e))?;
    let mut hasher = Sha256::new();
    let size =
        hash_prefix(file, &mut hasher, u64::MAX).map_err(|e| ModelFilesError::io(path, e))?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Feeds at most `limit` bytes of `reader` into `hasher`; returns how many it read.
pub fn hash_prefix(reader: impl Read, hasher: &mut Sha256, limit: u64) -> std::io::Result<u64> {
    let mut reader = reader.take(limit);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_a_file_larger_than_one_chunk_like_the_whole_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|i| (i % 251) as u8).collect();
        let p = dir.path().join("f");
        std::fs::write(&p, &data).unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            (data.len() as u64, sha256_bytes(&data))
        );
    }

    #[test]
    fn empty_input_hashes_to_the_known_empty_digest() {
        assert_eq!(
            sha256_bytes(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

//! A local or mounted directory. `pvc://CLAIM/PATH` means the claim is already mounted at the
//! destination (read-only): files are verified where they lie, at `DEST/PATH` when that
//! directory exists (the whole claim mounted) or at `DEST` (only PATH mounted). A plain path is
//! copied into the destination, each file verified, unless it is the destination itself.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::RemoteFile;
use crate::download::{already_there, finish, partial_path, Expect};
use crate::hash::{sha256_file, CHUNK};
use crate::manifest::{is_manifest_file, FileEntry, Manifest, MANIFEST_NAME};
use crate::progress::Progress;
use crate::{ModelFilesError, Result};

pub struct LocalSource {
    root: PathBuf,
    in_place: bool,
}

impl LocalSource {
    /// `rest` is `CLAIM/PATH`.
    pub fn pvc(rest: &str, dest: &Path) -> Self {
        let sub = rest.split_once('/').map(|(_, p)| p.trim_matches('/'));
        let root = match sub {
            Some(p) if !p.is_empty() && dest.join(p).is_dir() => dest.join(p),
            _ => dest.to_path_buf(),
        };
        Self {
            root,
            in_place: true,
        }
    }

    pub fn path(root: PathBuf, dest: &Path) -> Self {
        let same = match (root.canonicalize(), dest.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        Self {
            root,
            in_place: same,
        }
    }

    pub fn in_place(&self) -> bool {
        self.in_place
    }

    /// Where verified files lie once fetched (the manifest goes there too).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory's own manifest, or every regular file under it.
    pub fn listing(&self) -> Result<Vec<RemoteFile>> {
        let manifest = self.root.join(MANIFEST_NAME);
        if manifest.is_file() {
            let m = Manifest::read(&manifest)?;
            return Ok(m.files.iter().map(RemoteFile::from).collect());
        }
        let mut out = Vec::new();
        walk(&self.root, "", &mut out)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    pub fn fetch(&self, rel: &str, target: &Path, expect: &Expect) -> Result<FileEntry> {
        let src = self.root.join(rel);
        if self.in_place {
            return verify_in_place(rel, &src, expect);
        }
        if let Some(entry) = already_there(rel, target, expect)? {
            return Ok(entry);
        }
        copy_hashing(rel, &src, target, expect)
    }
}

fn verify_in_place(rel: &str, src: &Path, expect: &Expect) -> Result<FileEntry> {
    if !src.is_file() {
        return Err(ModelFilesError::Missing {
            path: src.display().to_string(),
        });
    }
    let (size, actual) = sha256_file(src)?;
    crate::verify::check(rel, expect, size, &actual)?;
    Ok(FileEntry {
        path: rel.to_string(),
        size: Some(size),
        sha256: actual,
    })
}

/// Copies `src` to `target.partial` while hashing, then checks and renames like a download.
pub fn copy_hashing(rel: &str, src: &Path, target: &Path, expect: &Expect) -> Result<FileEntry> {
    let mut input = std::fs::File::open(src).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelFilesError::Missing {
            path: src.display().to_string(),
        },
        _ => ModelFilesError::io(src, e),
    })?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| ModelFilesError::io(parent, e))?;
    }
    let partial = partial_path(target);
    let mut out = std::fs::File::create(&partial).map_err(|e| ModelFilesError::io(&partial, e))?;
    let mut progress = Progress::new(rel, expect.size);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ModelFilesError::io(src, e)),
        };
        out.write_all(&buf[..n])
            .map_err(|e| ModelFilesError::io(&partial, e))?;
        hasher.update(&buf[..n]);
        size += n as u64;
        progress.advance(n as u64);
    }
    out.sync_all()
        .map_err(|e| ModelFilesError::io(&partial, e))?;
    progress.finish();
    finish(
        rel,
        &partial,
        target,
        expect,
        size,
        hex::encode(hasher.finalize()),
    )
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<RemoteFile>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| ModelFilesError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ModelFilesError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry
            .file_type()
            .map_err(|e| ModelFilesError::io(entry.path(), e))?;
        if kind.is_dir() {
            walk(&entry.path(), &path, out)?;
        } else if kind.is_file() && !is_manifest_file(&path) && !name.ends_with(".partial") {
            let size = entry.metadata().ok().map(|m| m.len());
            out.push(RemoteFile {
                path,
                size,
                sha256: None,
            });
        }
    }
    Ok(())
}

//! Receiving an upload in pieces: chunks go to a temporary file on local disk while their
//! SHA-256 and size are computed, so a large upload never has to fit in memory. The file is
//! deleted when the `Spooled` value is dropped.

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::error::{Result, WorkerError};

#[derive(Debug)]
pub struct Spool {
    file: tokio::fs::File,
    path: tempfile::TempPath,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

/// A complete upload on local disk.
#[derive(Debug)]
pub struct Spooled {
    pub path: tempfile::TempPath,
    pub sha256: String,
    pub size: u64,
}

fn io(error: std::io::Error) -> WorkerError {
    WorkerError::Internal(format!(
        "cannot spool the upload to a temporary file: {error}"
    ))
}

impl Spool {
    /// A spool refusing more than `limit` bytes, in the system's temporary directory.
    pub fn create(limit: u64) -> Result<Self> {
        let (file, path) = tempfile::NamedTempFile::with_prefix("thinkbank-upload-")
            .map_err(io)?
            .into_parts();
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(WorkerError::InvalidArgument(format!(
                "content exceeds the limit of {} bytes",
                self.limit
            )));
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).await.map_err(io)
    }

    pub async fn finish(mut self) -> Result<Spooled> {
        self.file.flush().await.map_err(io)?;
        self.file.sync_data().await.map_err(io)?;
        Ok(Spooled {
            path: self.path,
            sha256: super::accept::hex(&self.hasher.finalize()),
            size: self.size,
        })
    }
}

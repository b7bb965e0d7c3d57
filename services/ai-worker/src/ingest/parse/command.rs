//! Runs helper programs (pdftotext, pdftoppm, tesseract) with a deadline. The child is killed
//! when the deadline passes or the job is dropped, so a hung tool never holds a job forever.

use std::{path::Path, process::Stdio, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{program} is not installed (install it, or set its THINKBANK_… path); {source}")]
    Missing {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {seconds} s")]
    TimedOut { program: String, seconds: u64 },
    #[error("{program} failed: {message}")]
    Failed { program: String, message: String },
}

/// Output of a finished run.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `program args…` with stdin closed; returns its output once it exits.
pub async fn run(
    program: &Path,
    args: &[&std::ffi::OsStr],
    timeout: Duration,
) -> Result<Output, ToolError> {
    let name = program.display().to_string();
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ToolError::Missing {
            program: name.clone(),
            source,
        })?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| ToolError::TimedOut {
            program: name.clone(),
            seconds: timeout.as_secs(),
        })?
        .map_err(|e| ToolError::Failed {
            program: name,
            message: e.to_string(),
        })?;
    let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    stderr.truncate(2000);
    Ok(Output {
        success: output.status.success(),
        stdout: output.stdout,
        stderr,
    })
}

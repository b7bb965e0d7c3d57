//! Runs helper programs (pdftotext, pdfinfo, pdftoppm, tesseract) bounded in every direction a
//! hostile document could push them: a wall-clock deadline, a CPU-time and an address-space
//! limit set in the child before it runs (through `sh`'s `ulimit`, since the workspace forbids
//! the `unsafe` a `pre_exec` hook needs), and a cap on the output captured. The child is killed
//! when a limit is hit or the job is dropped, so a hung or runaway tool never holds a job, nor
//! the worker's memory, for long.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Bytes of a tool's stderr kept for the error message (the rest is drained and dropped).
const STDERR_KEPT: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{program} is not installed (install it, or set its THINKBANK_… path); {source}")]
    Missing {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {seconds} s")]
    TimedOut { program: String, seconds: u64 },
    #[error(
        "{program} produced more than {limit} bytes of output (limit \
         THINKBANK_MAX_TOOL_OUTPUT_BYTES)"
    )]
    OutputTooLarge { program: String, limit: usize },
    #[error("{program} failed: {message}")]
    Failed { program: String, message: String },
}

/// How far one tool run may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline; also the CPU-time limit (rounded up to whole seconds).
    pub timeout: Duration,
    /// Largest stdout captured; past it the child is killed.
    pub max_output_bytes: usize,
    /// Address-space limit of the child (`RLIMIT_AS`); 0 for none.
    pub max_memory_bytes: u64,
}

/// Output of a finished run.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: Vec<u8>,
    /// The first lines of stderr, or how the program ended when it printed nothing (a signal
    /// usually means a resource limit killed it).
    pub stderr: String,
}

/// Runs `program args…` with stdin closed; returns its output once it exits.
pub async fn run(
    program: &Path,
    args: &[&std::ffi::OsStr],
    limits: Limits,
) -> Result<Output, ToolError> {
    let name = program.display().to_string();
    // Resolved here, not by the shell, so a missing program stays a `Missing` error.
    let resolved = resolve(program).map_err(|source| ToolError::Missing {
        program: name.clone(),
        source,
    })?;
    // Setting a limit fails only when the hard limit is already lower, which is stricter
    // still: run the program anyway rather than refuse every document.
    let cpu_seconds = limits.timeout.as_secs() + 1;
    let mut script = format!("ulimit -t {cpu_seconds} 2>/dev/null; ");
    if limits.max_memory_bytes > 0 {
        // ulimit -v counts KiB.
        script.push_str(&format!(
            "ulimit -v {} 2>/dev/null; ",
            limits.max_memory_bytes.div_ceil(1024)
        ));
    }
    script.push_str("exec \"$0\" \"$@\"");
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&resolved)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ToolError::Missing {
            program: "sh".into(),
            source,
        })?;
    let failed = |e: std::io::Error| ToolError::Failed {
        program: name.clone(),
        message: e.to_string(),
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(failed(std::io::Error::other("no pipes to the child")));
    };
    let finished = async {
        let (stdout, stderr) = tokio::join!(
            read_capped(stdout, limits.max_output_bytes),
            read_kept(stderr, STDERR_KEPT)
        );
        let status = child.wait().await.map_err(failed)?;
        let stdout = stdout
            .map_err(failed)?
            .ok_or_else(|| ToolError::OutputTooLarge {
                program: name.clone(),
                limit: limits.max_output_bytes,
            })?;
        Ok((status, stdout, stderr.map_err(failed)?))
    };
    // Dropping `finished` early (deadline, output cap) drops the child: kill_on_drop.
    let (status, stdout, stderr) = tokio::time::timeout(limits.timeout, finished)
        .await
        .map_err(|_| ToolError::TimedOut {
            program: name.clone(),
            seconds: limits.timeout.as_secs(),
        })??;
    let mut stderr = String::from_utf8_lossy(&stderr).into_owned();
    if stderr.trim().is_empty() && !status.success() {
        stderr = format!("{name} ended with {status} (over its CPU or memory limit?)");
    }
    Ok(Output {
        success: status.success(),
        stdout,
        stderr,
    })
}

/// Reads everything, or `None` as soon as more than `limit` bytes arrive.
async fn read_capped(
    reader: impl AsyncRead + Unpin,
    limit: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).await?;
    Ok((out.len() <= limit).then_some(out))
}

/// Reads to the end, keeping the first `kept` bytes: the child must never block on a full
/// stderr pipe.
async fn read_kept(mut reader: impl AsyncRead + Unpin, kept: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            return Ok(out);
        }
        let room = kept.saturating_sub(out.len()).min(read);
        out.extend_from_slice(&buffer[..room]);
    }
}

/// The program's path: as given when it names a directory, else the first match on `PATH`.
fn resolve(program: &Path) -> std::io::Result<PathBuf> {
    let found = |path: &Path| path.is_file().then(|| path.to_path_buf());
    let hit = if program.components().count() > 1 {
        found(program)
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).find_map(|dir| found(&dir.join(program)))
        })
    };
    hit.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not found on PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn limits() -> Limits {
        Limits {
            timeout: Duration::from_secs(20),
            max_output_bytes: 1000,
            max_memory_bytes: 512 * 1024 * 1024,
        }
    }

    #[tokio::test]
    async fn output_past_the_cap_kills_the_tool_with_a_clear_error() {
        let args = [OsStr::new("-c"), OsStr::new("yes")];
        let error = run(Path::new("sh"), &args, limits()).await.unwrap_err();
        assert!(matches!(error, ToolError::OutputTooLarge { .. }), "{error}");
        assert!(
            error.to_string().contains("more than 1000 bytes"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_child_runs_under_the_memory_and_cpu_limits() {
        let args = [OsStr::new("-c"), OsStr::new("ulimit -v; ulimit -t")];
        let output = run(Path::new("sh"), &args, limits()).await.unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>(),
            ["524288", "21"]
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let error = run(Path::new("no-such-tool-here"), &[], limits())
            .await
            .unwrap_err();
        assert!(matches!(error, ToolError::Missing { .. }), "{error}");
    }
}

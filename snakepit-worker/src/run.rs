//! The per-run context: run id, secret token and the private directory holding sockets.

use std::path::Path;
use std::sync::Arc;

use rand::RngCore;
use snakepit_core::{Error, RunId};

use crate::zygote::ZygoteSet;

/// Everything the workers of one host run share: its id, its token and its private directory.
///
/// The directory is created with mode 0700 under the system temp dir and removed when the
/// context is dropped; worker sockets and ready files live in it, so no other user can reach them.
#[derive(Debug)]
pub struct RunContext {
    run_id: RunId,
    token: String,
    /// Declared before `dir`: zygotes stop before their sockets' directory is removed.
    zygotes: ZygoteSet,
    dir: tempfile::TempDir,
}

impl RunContext {
    /// Creates a fresh run: a new run id, a 256-bit random token and a private directory.
    pub fn new() -> Result<Arc<Self>, Error> {
        let run_id = RunId::generate();
        let dir = tempfile::Builder::new()
            .prefix(&format!("snakepit-{run_id}-"))
            .tempdir()
            .map_err(|e| {
                Error::pool_from(format!("cannot create the private run directory: {e}"), e)
            })?;
        // tempfile creates directories 0700 on Unix; set it explicitly so it never depends on that.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).map_err(
                |e| {
                    Error::pool_from(
                        format!("cannot make {} private: {e}", dir.path().display()),
                        e,
                    )
                },
            )?;
        }
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Arc::new(Self {
            run_id,
            token,
            zygotes: ZygoteSet::default(),
            dir,
        }))
    }

    /// Returns the run id every worker of this run carries on its command line.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// Returns the secret token (never put it on a command line).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Returns the zygotes forking this run's workers.
    pub(crate) fn zygotes(&self) -> &ZygoteSet {
        &self.zygotes
    }

    /// Stops the run's zygotes (SIGTERM, `grace`, SIGKILL); call it once the workers are stopped.
    ///
    /// Their forked workers are separate processes and are not affected. Dropping the context
    /// also kills the zygotes; this is the graceful path for a pool's shutdown.
    pub async fn stop_zygotes(&self, grace: std::time::Duration) {
        self.zygotes.stop_all(grace).await;
    }

    /// Returns the private directory (mode 0700).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn run_directory_is_private_and_removed_on_drop() {
        let run = RunContext::new().unwrap();
        let path = run.dir().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(run.token().len(), 64);
        assert!(path.to_string_lossy().contains(run.run_id().as_str()));
        drop(run);
        assert!(!path.exists());
    }
}

//! A real OCI registry on loopback for tests: Debian's `docker-registry` (the CNCF distribution
//! registry, version 2.8), with filesystem storage in a scratch directory.
//!
//! ```text
//! LocalRegistry::start()
//!   ScratchDir boxlab-registry-*/      config.yml, registry.log, storage/
//!   docker-registry serve config.yml   listening on 127.0.0.1:<free port>, no auth
//!   GET /v2/ -> 200                     only then does start() return
//! drop
//!   SIGKILL, wait (reaped), scratch directory removed
//! ```
//!
//! The server is killed and reaped when the guard drops, also when a test panics; it is also
//! given `PR_SET_PDEATHSIG`, so it dies with the test process if that is killed outright. (The
//! kernel sends that signal when the *thread* that started the server ends: keep the guard in
//! the test that started it, not in a static shared between test threads.)

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, ScratchDir};

/// Where Debian's `docker-registry` package installs the server.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// How long the server gets to answer `GET /v2/` after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The server's stdout and stderr, in its scratch directory.
const LOG_FILE: &str = "registry.log";

/// Why a local registry could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalRegistryError {
    /// The server binary is not installed.
    #[error("{binary} is missing: the registry tests need Debian's docker-registry package; run scripts/setup (it installs it), or `apt-get install docker-registry`")]
    NotInstalled {
        /// The path looked at.
        binary: PathBuf,
    },

    /// A file or directory for the server could not be made.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What was tried.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },

    /// The server exited, or did not answer in time.
    #[error("docker-registry on 127.0.0.1:{port} {what}; its log ({log}):\n{log_text}")]
    NotReady {
        /// The port it was told to listen on.
        port: u16,
        /// What happened (`exited with …`, `did not answer GET /v2/ within 20 s`).
        what: String,
        /// The log file.
        log: PathBuf,
        /// The log's content.
        log_text: String,
    },
}

/// A running `docker-registry` on `127.0.0.1:<port>`, stopped and cleaned up on drop.
#[derive(Debug)]
pub struct LocalRegistry {
    child: Child,
    port: u16,
    // Dropped after the child is reaped (fields drop in order, after Drop::drop).
    dir: ScratchDir,
}

impl LocalRegistry {
    /// Starts a registry with empty filesystem storage and waits until `GET /v2/` answers 200.
    pub fn start() -> Result<Self, LocalRegistryError> {
        let binary = Path::new(REGISTRY_BINARY);
        if !binary.is_file() {
            return Err(LocalRegistryError::NotInstalled {
                binary: binary.to_path_buf(),
            });
        }
        let io_err = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalRegistryError::Io {
                action,
                path,
                source,
            }
        };
        let dir = ScratchDir::new("registry").map_err(io_err(
            "create a scratch directory in",
            &std::env::temp_dir(),
        ))?;
        let storage = dir.join("storage");
        fs::create_dir(&storage).map_err(io_err("create", &storage))?;
        let port = free_port();
        let config = dir.join("config.yml");
        fs::write(&config, config_yaml(&storage, port)).map_err(io_err("write", &config))?;
        let log = dir.join(LOG_FILE);
        let log_file = File::create(&log).map_err(io_err("create", &log))?;
        let log_err = log_file.try_clone().map_err(io_err("duplicate", &log))?;

        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        // SAFETY: the closure runs in the child between fork and exec and only makes the
        // prctl(2) system call, which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(io::Error::from)
            });
        }
        let child = command.spawn().map_err(io_err("start", binary))?;
        let mut registry = Self { child, port, dir };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&mut self) -> Result<(), LocalRegistryError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("exited with {status} before it answered")));
            }
            if self.answers_v2() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.not_ready(format!(
                    "did not answer GET /v2/ with 200 within {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// One raw `GET /v2/`: true when the status line says 200.
    fn answers_v2(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port);
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok()
            && head.starts_with(b"HTTP/1.")
            && &head[8..12] == b" 200"
    }

    fn not_ready(&self, what: String) -> LocalRegistryError {
        LocalRegistryError::NotReady {
            port: self.port,
            what,
            log_text: self.log(),
            log: self.log_path(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`: the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The filesystem driver's root directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.join("storage")
    }

    /// Where the filesystem driver keeps a blob's bytes:
    /// `<root>/docker/registry/v2/blobs/sha256/<first two hex>/<hex>/data`. `digest` is
    /// `sha256:<hex>` or just the hex.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(hex.get(..2).unwrap_or(hex))
            .join(hex)
            .join("data")
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's configuration: loopback only, filesystem storage, no auth, quiet logs.
fn config_yaml(storage: &Path, port: u16) -> String {
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: boxlab-test-registry
",
        storage = storage.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_registry_starts_answers_and_stops() {
        let registry = LocalRegistry::start().unwrap_or_else(|e| panic!("{e}"));
        assert!(registry.answers_v2());
        let pid = registry.child.id();
        let storage = registry.storage();
        assert!(storage.is_dir());
        drop(registry);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "docker-registry (pid {pid}) outlived its guard"
        );
        assert!(!storage.exists());
    }
}

//! A private PostgreSQL server for tests that must stop, restart or reconfigure their
//! server (fault injection, replication), which the shared test server must never be.
//!
//! [`PrivateServer::start`] runs `initdb` into a temporary directory and starts the server
//! on a free port of 127.0.0.1 with `fsync` off, as the `postgres` user (through `runuser`
//! when run as root: PostgreSQL refuses to run as root). It needs PostgreSQL's server
//! binaries in [`PG_BIN`]; callers skip (or fail, when their environment asks for it) when
//! [`PrivateServer::start`] returns an error. Dropping the value stops the server
//! (`immediate`) and deletes the directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where PostgreSQL's server binaries are (Debian's layout for version 15).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs a PostgreSQL tool of [`PG_BIN`] as the `postgres` user; its output is the error.
pub fn pg_tool(tool: &str, args: &[&str]) -> Result<(), String> {
    let program = Path::new(PG_BIN).join(tool);
    let as_root = std::env::var("USER").map_or(true, |u| u == "root");
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Appends `text` to the file at `path`.
pub fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// How [`PrivateServer::stop`] shuts the server down (`pg_ctl stop -m ..`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Sessions are terminated (SQLSTATE 57P01), then a clean shutdown.
    Fast,
    /// No shutdown checkpoint: like a crash; the next start recovers from the WAL.
    Immediate,
}

impl StopMode {
    /// The name `pg_ctl stop -m` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A PostgreSQL server of its own (see the module docs).
#[derive(Debug)]
pub struct PrivateServer {
    root: PathBuf,
    port: u16,
}

impl PrivateServer {
    /// Initialises and starts a server; `extra_conf` is appended to `postgresql.conf` and
    /// `extra_hba` to `pg_hba.conf` (both may be empty).
    pub fn start(extra_conf: &str, extra_hba: &str) -> Result<Self, String> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            return Err(format!("no {PG_BIN}/initdb"));
        }
        let root =
            std::env::temp_dir().join(format!("booking-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        // The postgres user must own the directory (runuser does not change ownership).
        let owned = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&root)
            .status()
            .map_err(|e| e.to_string())?;
        if !owned.success() {
            let _ = std::fs::remove_dir_all(&root);
            return Err("chown of the temporary directory failed".into());
        }
        let server = Self {
            port: free_port()?,
            root,
        };
        let data = server.data_dir();
        pg_tool(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"],
        )?;
        let conf = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nshared_buffers = 16MB\n{extra_conf}\n",
            server.port,
            server.root.to_string_lossy()
        );
        append(&Path::new(&data).join("postgresql.conf"), &conf)?;
        append(&Path::new(&data).join("pg_hba.conf"), extra_hba)?;
        server.start_again()?;
        Ok(server)
    }

    /// Starts the server again after [`PrivateServer::stop`] (waits until it accepts
    /// connections).
    pub fn start_again(&self) -> Result<(), String> {
        let log = self.path("server.log");
        pg_tool(
            "pg_ctl",
            &["-D", &self.data_dir(), "-l", &log, "-w", "start"],
        )
    }

    /// Stops the server (waits until it is down).
    pub fn stop(&self, mode: StopMode) -> Result<(), String> {
        pg_tool(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", mode.as_str(), "-w", "stop"],
        )
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgres://` URL of database `db` on this server (user `postgres`, trust).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> String {
        self.path("data")
    }

    /// `name` inside the server's temporary directory (deleted with it), e.g. for a
    /// replica's data directory.
    pub fn path(&self, name: &str) -> String {
        self.root.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.stop(StopMode::Immediate);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

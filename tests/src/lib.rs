//! Test support shared by every crate's tests that run the real `sealcast`
//! binary (the server's integration tests, the examples' tests): a
//! [`ServerProcess`] started on a config file in a [`TempDir`], its port
//! scraped from its first line, its output drained so it never blocks,
//! killed on drop. End-to-end tests of sealcast live in this crate's
//! `tests` targets. std only, so any crate can use it as a
//! dev-dependency.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// What `sealcast serve` prints once it listens, before its address.
pub const LISTENING: &str = "sealcast listening on ";

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system's temporary one, named after
    /// `tag`, the process and the time.
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// A fresh directory under `base`.
    pub fn new_in(base: &Path, tag: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = base.join(format!("sealcast-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// The `sealcast` binary.
    pub bin: &'a Path,
    /// Where `sealcast.toml` is written and `data/` lives (outlives the
    /// server, so another can restart on the same data).
    pub root: &'a Path,
    /// The port (0: any free one).
    pub port: u16,
    /// The config file's text.
    pub config: &'a str,
    /// Extra environment variables.
    pub env: &'a [(&'a str, &'a str)],
}

/// A running `sealcast serve`; killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    /// The process (tests kill it to restart on the same data).
    pub child: Child,
    /// The port it listens on.
    pub port: u16,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Writes the config, starts the server and waits for its address.
    pub fn start(launch: &Launch<'_>) -> ServerProcess {
        let config = launch.root.join("sealcast.toml");
        std::fs::write(&config, launch.config).expect("write the config");
        let mut child = Command::new(launch.bin)
            .args(["serve", "--port", &launch.port.to_string(), "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(launch.root.join("data"))
            .envs(launch.env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("start {:?}: {err}", launch.bin));
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut text) = sink.lock() {
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let port = loop {
            let line = lines.next().expect("the server printed its address").expect("read stdout");
            if let Some(addr) = line.strip_prefix(LISTENING) {
                break addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port after ':'");
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServerProcess { child, port, stderr }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|text| text.clone()).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

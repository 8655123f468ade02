//! [`Nginx`]: a private nginx serving Bazel's HTTP remote-cache protocol (WebDAV) on a loopback port, for the tests
//! and benchmarks of pie's remote cache.
//!
//! It runs `.ci/nginx-cache` (which writes the configuration and starts and stops nginx) in a temporary folder of
//! its own, so tests can run several at once, and stops it when dropped. The nginx binary is `$PIE_TEST_NGINX`
//! (`.ci/run` sets it), else `nginx` on `PATH`, else `/usr/sbin/nginx`. When there is none, [`Nginx::start`] panics
//! in CI (the environment variable `CI` is set and not `false`), where the tests must run, and elsewhere prints a
//! notice and returns `None`, so that the test can return early.
//!
//! ```no_run
//! let Some(server) = dev_util::nginx::Nginx::start() else { return };
//! println!("a remote cache at {}, entries in {}", server.url(), server.data_dir().display());
//! ```

use std::env;
use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A running nginx in a temporary folder, serving a remote cache at [`Nginx::url`]; stopped and removed on drop.
#[derive(Debug)]
pub struct Nginx {
    dir: TempDir,
    port: u16,
    running: bool,
}

impl Nginx {
    /// Starts an nginx that accepts every request. `None` (after a notice on stderr) when there is no nginx and this
    /// is not CI; panics when there is none in CI or when it does not start.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// Starts an nginx that answers 401 to every request whose `Authorization` header is not exactly `auth`.
    /// `None` and panics as [`Nginx::start`].
    pub fn start_requiring_auth(auth: &str) -> Option<Self> {
        Self::start_with(Some(auth))
    }

    fn start_with(auth: Option<&str>) -> Option<Self> {
        let Some(nginx) = find_nginx() else {
            let ci = env::var_os("CI").is_some_and(|value| !value.is_empty() && value != "false");
            assert!(
                !ci,
                "nginx not found, and CI must run the remote-cache tests (`.ci/run` installs nginx-light)"
            );
            eprintln!("notice: nginx not found (set PIE_TEST_NGINX or install nginx-light); skipping this test");
            return None;
        };
        // Another process may take the free port before nginx binds it: then try another.
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("pie-nginx-")
                .tempdir()
                .unwrap_or_else(|e| panic!("cannot create a temporary folder for nginx: {e}"));
            let port = free_port();
            let mut command = script(&nginx);
            command.arg("start").arg(dir.path()).arg(port.to_string());
            command.args(auth);
            let output = command
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", SCRIPT));
            if output.status.success() {
                return Some(Self {
                    dir,
                    port,
                    running: true,
                });
            }
            last_error = String::from_utf8_lossy(&output.stderr).into_owned();
        }
        panic!("nginx did not start on a free loopback port:\n{last_error}");
    }

    /// The base URL of the cache, `http://127.0.0.1:PORT/cache` (a path under the server's root, as a shared server
    /// would have).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }

    /// The port nginx listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder that holds the entries, `ac/HEX` and `cas/HEX`, as files (tests tamper with them here).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data").join("cache")
    }

    /// The file of the entry `hex` in `store` (`"ac"` or `"cas"`), whether or not it exists.
    pub fn entry(&self, store: &str, hex: &str) -> PathBuf {
        self.data_dir().join(store).join(hex)
    }

    /// The access log so far: one line per request, `CONNECTION REQUESTS_ON_IT "METHOD PATH HTTP/1.1" STATUS`.
    pub fn access_log(&self) -> String {
        let path = self.dir.path().join("logs").join("access.log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// The access log once it has at least `lines` lines, or as it is after `timeout`: nginx writes a request's
    /// line after sending the response, so the client may be done before the last line is written.
    pub fn access_log_of_at_least(&self, lines: usize, timeout: std::time::Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let log = self.access_log();
            if log.lines().count() >= lines || std::time::Instant::now() >= deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Stops nginx and waits until it is gone (its port then refuses connections). Stopping twice does nothing.
    /// Panics when it does not stop.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let nginx = find_nginx().unwrap_or_else(|| OsString::from("nginx"));
        let status = script(&nginx).arg("stop").arg(self.dir.path()).status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => panic!("{SCRIPT} stop {} failed: {status}", self.dir.path().display()),
            Err(e) => panic!("cannot run {SCRIPT}: {e}"),
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A second panic would abort the test binary and hide the first one's message.
            self.running = false;
            let nginx = find_nginx().unwrap_or_else(|| OsString::from("nginx"));
            let _ = script(&nginx).arg("stop").arg(self.dir.path()).status();
        } else {
            self.stop();
        }
    }
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/nginx-cache");

fn script(nginx: &OsString) -> Command {
    let mut command = Command::new("bash");
    command.arg(SCRIPT).env("PIE_TEST_NGINX", nginx);
    command
}

/// `$PIE_TEST_NGINX`, else `nginx` on `PATH`, else `/usr/sbin/nginx` (not on a user's `PATH` on Debian); only one
/// that exists.
fn find_nginx() -> Option<OsString> {
    if let Some(path) = env::var_os("PIE_TEST_NGINX").filter(|path| !path.is_empty()) {
        return Path::new(&path).is_file().then_some(path);
    }
    let on_path = env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"))
        .find(|path| path.is_file());
    let fallback = Path::new("/usr/sbin/nginx");
    on_path
        .or_else(|| fallback.is_file().then(|| fallback.to_path_buf()))
        .map(PathBuf::into_os_string)
}

/// A loopback port that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read a bound port: {e}"))
        .port()
}

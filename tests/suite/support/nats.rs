//! A real `nats-server` (Debian 12's 2.9, JetStream on) for the fleet tests: started on
//! free 127.0.0.1 ports with its store in a scratch directory, stoppable and startable
//! again on the same port and store — a restart that keeps JetStream's data, as a real
//! one does — and killed on drop. A JetStream client ([`NatsServer::jetstream`]) lets a
//! test read what livegate wrote, as ops would.

use super::http::Request;
use super::{ChildGuard, free_port, local, scratch_dir, wait_for_port};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a start may take before the test fails (JetStream recovers its store first).
const START_LIMIT: Duration = Duration::from_secs(15);

/// `nats-server -js` on a fixed client port and store directory.
pub struct NatsServer {
    pub port: u16,
    /// The HTTP monitoring port (`/healthz`, `/jsz`).
    pub monitor_port: u16,
    token: Option<String>,
    process: Option<ChildGuard>,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// A running server without authentication.
    pub fn start() -> NatsServer {
        let mut server = NatsServer::not_started(None);
        server.start_again();
        server
    }

    /// Ports and store chosen, nothing running yet: for a node that must start while
    /// NATS is unreachable; [`NatsServer::start_again`] starts it.
    pub fn not_started(token: Option<&str>) -> NatsServer {
        NatsServer {
            port: free_port(),
            monitor_port: free_port(),
            token: token.map(str::to_string),
            process: None,
            dir: scratch_dir(),
        }
    }

    /// `nats://127.0.0.1:PORT`, what `[cluster] servers` lists.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        local(self.port)
    }

    /// JetStream's store directory: kept across [`NatsServer::stop`] and
    /// [`NatsServer::start_again`].
    fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// The server's own log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the server (SIGKILL: an outage, not a clean shutdown) and waits until its
    /// client port refuses connections.
    pub fn stop(&mut self) {
        let Some(process) = self.process.take() else {
            return;
        };
        drop(process);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "nats-server still accepts on {} after being killed",
                self.addr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server (again) on the same ports and store directory, and waits until
    /// JetStream answers: the client port accepts and `/healthz` says `ok`, which 2.9
    /// answers only once JetStream has recovered its store.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "nats-server is already running");
        let mut command = Command::new(binary());
        command
            .args(["-js", "-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .arg("-sd")
            .arg(self.store_dir())
            .arg("-l")
            .arg(self.log_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(token) = &self.token {
            command.args(["--auth", token]);
        }
        self.process = Some(ChildGuard::spawn(&mut command, "nats-server"));
        wait_for_port(self.addr(), "nats-server");
        let monitor = local(self.monitor_port);
        wait_for_port(monitor, "nats-server's monitoring port");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let health = Request::get("/healthz").send(monitor);
            if health.status == 200 && health.json()["status"] == "ok" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server's JetStream never got healthy: {health:?}\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /jsz` with every account's streams: JetStream's accounting and each
    /// stream's state.
    pub fn jsz(&self) -> serde_json::Value {
        let response =
            Request::get("/jsz?accounts=true&streams=true").send(local(self.monitor_port));
        assert_eq!(response.status, 200, "{response:?}");
        response.json()
    }

    /// The names of the JetStream streams the server holds.
    pub fn stream_names(&self) -> Vec<String> {
        let jsz = self.jsz();
        jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|account| {
                account["stream_detail"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|stream| stream["name"].as_str().map(str::to_string))
            .collect()
    }

    /// Runs `work` with a JetStream context connected to this server (with its token),
    /// on a runtime of its own: a test reads and writes what ops tools would.
    pub fn jetstream<T>(&self, work: impl AsyncFnOnce(async_nats::jetstream::Context) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the NATS client");
        runtime.block_on(async {
            let mut options =
                async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
            if let Some(token) = &self.token {
                options = options.token(token.clone());
            }
            let client = options
                .connect(self.url())
                .await
                .unwrap_or_else(|error| panic!("connect to {}: {error}", self.url()));
            work(async_nats::jetstream::new(client)).await
        })
    }
}

/// Debian installs the server in /usr/sbin, which a non-root PATH may lack.
fn binary() -> &'static Path {
    let debian = Path::new("/usr/sbin/nats-server");
    if debian.exists() {
        debian
    } else {
        Path::new("nats-server")
    }
}

//! RTMPS ingest end to end: Debian's ffmpeg and GStreamer (`rtmp2sink`) publish
//! `rtmps://` through livegate's TLS listener to a real nginx-rtmp origin (certificates
//! from a CA the test makes with the `openssl` CLI); the origin records what a plain RTMP
//! publish records, listed footage is cut; certificates reload on SIGHUP without
//! touching running streams and a broken file keeps the old pair; a plain RTMP client on the TLS port is closed with a reason.

use crate::support;

use livegate_rtmp::encode;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{
    Livegate, NginxOrigin, Publisher, RawClient, audit_records, free_port, local, records_for,
};

/// A throwaway CA and the server certificates it issues, in a scratch directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: support::scratch_dir(),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=livegate test CA",
        ]);
        std::fs::write(
            pki.path("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write san.ext");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl (Debian's openssl package)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Issues a server certificate for 127.0.0.1 named `name`: (`name.pem`, `name.key`).
    fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            &pem,
        ]);
        (self.path(&pem), self.path(&key))
    }
}

/// The certificate `addr` presents, as whitespace-free base64 DER (from `openssl
/// s_client`, verifying it against the test CA).
fn served_certificate(addr: std::net::SocketAddr, ca: &Path) -> String {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "TLS handshake with {addr} failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    first_pem_block(&text)
}

/// The base64 of the first PEM certificate in `text`, whitespace removed.
fn first_pem_block(text: &str) -> String {
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = text.find(begin).expect("a PEM certificate") + begin.len();
    let end = text[start..]
        .find("-----END CERTIFICATE-----")
        .expect("end of the PEM certificate");
    text[start..start + end].split_whitespace().collect()
}

fn pem_of(file: &Path) -> String {
    first_pem_block(&std::fs::read_to_string(file).expect("read certificate"))
}

/// An `https://` webhook receiver (Python's http.server behind its ssl module) that
/// appends each POSTed body as a line to `bodies`.
struct HttpsReceiver {
    port: u16,
    bodies: PathBuf,
    _process: support::ChildGuard,
}

impl HttpsReceiver {
    const SCRIPT: &str = r#"
import http.server, ssl, sys
cert, key, out, port = sys.argv[1:5]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(out, "ab") as bodies:
            bodies.write(body + b"\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(port)), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

    fn start(pem: &Path, key: &Path, dir: &Path) -> HttpsReceiver {
        let port = free_port();
        let bodies = dir.join("webhook-bodies.jsonl");
        let process = support::ChildGuard::spawn(
            Command::new("python3")
                .args(["-c", Self::SCRIPT])
                .arg(pem)
                .arg(key)
                .arg(&bodies)
                .arg(port.to_string())
                .stdout(Stdio::null()),
            "https webhook receiver",
        );
        support::wait_for_port(local(port), "https webhook receiver");
        HttpsReceiver {
            port,
            bodies,
            _process: process,
        }
    }

    fn bodies(&self) -> String {
        std::fs::read_to_string(&self.bodies).unwrap_or_default()
    }
}

fn rtmps_ingest(
    listen: std::net::SocketAddr,
    origin: std::net::SocketAddr,
    pem: &Path,
    key: &Path,
) -> String {
    format!(
        "[[ingest]]\nprotocol = \"rtmps\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n\
         publish_timeout_ms = 8000\nhandshake_timeout_ms = 3000\n\
         [ingest.tls]\ncertificate = \"{}\"\nkey = \"{}\"\n",
        pem.display(),
        key.display()
    )
}

/// The video and audio tags of a finished recording: (type, timestamp, body).
fn media_tags(origin: &NginxOrigin, key: &str) -> Vec<(u8, u32, Vec<u8>)> {
    let file = support::finished_recording(origin, key);
    assert!(!file.is_empty(), "the origin recorded nothing of {key}");
    support::flv_tags(&file)
        .into_iter()
        .filter(|tag| tag.type_id == 8 || tag.type_id == 9)
        .map(|tag| (tag.type_id, tag.timestamp, tag.body))
        .collect()
}

/// What the publisher tests share: a certificate, a benign and a listed clip, the list
/// `livegate hash` makes of the listed one, an origin, and a plain and an `rtmps` ingest
/// address to put livegate on.
struct PlainAndTls {
    pki: Pki,
    pem: PathBuf,
    key: PathBuf,
    media: tempfile::TempDir,
    benign: PathBuf,
    listed: PathBuf,
    origin: NginxOrigin,
    plain_listen: std::net::SocketAddr,
    tls_listen: std::net::SocketAddr,
    audit: PathBuf,
}

impl PlainAndTls {
    fn new(seconds: u32) -> PlainAndTls {
        let pki = Pki::new();
        let (pem, key) = pki.issue("server");
        let media = support::scratch_dir();
        let benign = media.path().join("benign.mp4");
        let listed = media.path().join("listed.mp4");
        support::encode_clip(&benign, support::TEST_PATTERN, seconds);
        support::encode_clip(&listed, support::MANDELBROT, seconds);
        let audit = media.path().join("audit.jsonl");
        PlainAndTls {
            pki,
            pem,
            key,
            benign,
            listed,
            origin: NginxOrigin::start(),
            plain_listen: local(free_port()),
            tls_listen: local(free_port()),
            audit,
            media,
        }
    }

    /// livegate on both ingests to the origin, cutting on the list, with `extra` config.
    fn start(&self, extra: &str) -> Livegate {
        let list = self.media.path().join("listed.csv");
        std::fs::write(
            &list,
            support::livegate_hash(&["--keyframes"], &self.listed),
        )
        .expect("list");
        let config = format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{}\"\norigin = \"{}\"\n\
             publish_timeout_ms = 8000\n{}\
             [[hashlist]]\nname = \"known\"\npath = \"{}\"\naction = \"cut\"\n\
             [policy]\nmode = \"enforce\"\n\
             [actuator]\naudit_log = \"{}\"\nban_seconds = 60\n{extra}",
            self.plain_listen,
            self.origin.addr,
            rtmps_ingest(self.tls_listen, self.origin.addr, &self.pem, &self.key),
            list.display(),
            self.audit.display()
        );
        Livegate::start(&config, 2)
    }

    /// `publish` (`tool`: ffmpeg's or GStreamer's) sends the benign clip over RTMP
    /// (`TOOL-plain`) and RTMPS (`TOOL-tls`), and the listed clip over RTMPS
    /// (`TOOL-listed`): the benign ones must end well, the listed one be cut. Returns the
    /// audit records, with exactly one cut, of the listed stream.
    fn publish_benign_and_listed(
        &self,
        livegate: &Livegate,
        tool: &str,
        publish: fn(&Path, &str) -> support::ChildGuard,
    ) -> Vec<serde_json::Value> {
        let (plain, tls) = (self.plain_listen, self.tls_listen);
        let mut benign_plain = publish(&self.benign, &format!("rtmp://{plain}/live/{tool}-plain"));
        let mut benign_tls = publish(&self.benign, &format!("rtmps://{tls}/live/{tool}-tls"));
        let mut listed = publish(&self.listed, &format!("rtmps://{tls}/live/{tool}-listed"));
        for (name, publisher) in [("rtmp", &mut benign_plain), ("rtmps", &mut benign_tls)] {
            let status = publisher.wait_for(Duration::from_secs(40));
            assert!(
                status.is_some_and(|status| status.success()),
                "{tool} over {name} exited {status:?}\nlivegate log:\n{}",
                livegate.raw_log()
            );
        }
        let status = listed.wait_for(Duration::from_secs(40));
        assert!(
            status.is_some_and(|status| !status.success()),
            "the listed {tool} stream was not cut: it exited {status:?}"
        );
        let records = audit_records(&self.audit);
        assert_eq!(
            records_for(&records, &format!("{tool}-listed"), "cut").len(),
            1,
            "audit:\n{records:#?}"
        );
        for benign in ["plain", "tls"].map(|link| format!("{tool}-{link}")) {
            assert!(
                records_for(&records, &benign, "cut").is_empty(),
                "{benign} was cut: {records:#?}"
            );
        }
        records
    }

    /// The origin recorded the same media (at least `tags` tags) through RTMPS as through
    /// plain RTMP for `tool`'s benign streams.
    fn assert_same_media_through_both(&self, tool: &str, tags: usize) {
        let through_plain = media_tags(&self.origin, &format!("{tool}-plain"));
        let through_tls = media_tags(&self.origin, &format!("{tool}-tls"));
        assert!(through_plain.len() >= tags, "{} tags", through_plain.len());
        assert!(
            through_plain == through_tls,
            "the origin recorded different media through RTMPS ({} tags) than through RTMP ({} tags)",
            through_tls.len(),
            through_plain.len()
        );
    }
}

#[test]
fn rtmps_publishes_record_what_plain_rtmp_records_and_listed_footage_is_cut() {
    let setup = PlainAndTls::new(6);
    // The cut is also POSTed to an https:// webhook verified against the test CA; one
    // verified against the system's roots refuses the same receiver.
    let receiver = HttpsReceiver::start(&setup.pem, &setup.key, setup.media.path());
    let livegate = setup.start(&format!(
        "[[actuator.webhook]]\nurl = \"https://localhost:{port}/hook\"\nca = \"{}\"\nevents = [\"cut\"]\n\
         [[actuator.webhook]]\nurl = \"https://localhost:{port}/untrusted\"\nevents = [\"cut\"]\nretries = 0\n",
        setup.pki.path("ca.pem").display(),
        port = receiver.port
    ));
    let records = setup.publish_benign_and_listed(&livegate, "ffmpeg", support::publish_file);
    let cuts = records_for(&records, "ffmpeg-listed", "cut");
    assert_eq!(cuts[0]["signal"]["list"], "known", "{}", cuts[0]);
    // The list line's file and time, named (not the rest of the CSV line).
    let signal = &cuts[0]["signal"];
    assert!(
        signal["source"]
            .as_str()
            .is_some_and(|source| source.ends_with("listed.mp4"))
            && signal["source_pts"].is_number()
            && signal.get("label").is_none(),
        "{signal}"
    );
    livegate.wait_for_logs(
        |lines| {
            lines.iter().any(|line| {
                line["message"] == "webhook failed"
                    && line["url"]
                        .as_str()
                        .is_some_and(|url| url.ends_with("/untrusted"))
            })
        },
        Duration::from_secs(10),
        "the webhook verified against the system's roots refused",
    );
    let bodies = receiver.bodies();
    assert_eq!(bodies.lines().count(), 1, "webhook bodies: {bodies}");
    assert!(bodies.contains("\"cut\""), "{bodies}");
    // 180 frames (6 s at 30 fps), the decoder configuration and the end of sequence.
    setup.assert_same_media_through_both("ffmpeg", 180);
}

#[test]
fn gstreamer_publishes_over_rtmps_as_over_rtmp_and_listed_footage_is_cut() {
    let setup = PlainAndTls::new(5);
    let livegate = setup.start("");
    setup.publish_benign_and_listed(&livegate, "gst", support::gst_publish_file);
    // 150 frames (5 s at 30 fps) and the decoder configuration.
    setup.assert_same_media_through_both("gst", 150);
}

/// A load balancer in front of an `rtmps` listener: for each connection it sends a PROXY
/// v2 header naming `client`, then passes the TLS bytes through both ways untouched.
struct ProxyingBalancer {
    addr: std::net::SocketAddr,
}

impl ProxyingBalancer {
    fn start(backend: std::net::SocketAddr, client: std::net::SocketAddr) -> ProxyingBalancer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the balancer");
        let addr = listener.local_addr().expect("balancer address");
        std::thread::spawn(move || {
            for accepted in listener.incoming() {
                let Ok(front) = accepted else { return };
                let Ok(mut back) = std::net::TcpStream::connect(backend) else {
                    return;
                };
                let header = livegate_proxy_header::encode(
                    livegate_proxy_header::Version::V2,
                    client,
                    backend,
                );
                if std::io::Write::write_all(&mut back, &header).is_err() {
                    return;
                }
                let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    })
                };
                let (Ok(front_copy), Ok(back_copy)) = (front.try_clone(), back.try_clone()) else {
                    return;
                };
                pipe(front, back);
                pipe(back_copy, front_copy);
            }
        });
        ProxyingBalancer { addr }
    }
}

#[test]
fn a_proxy_header_before_the_tls_handshake_names_the_client() {
    let pki = Pki::new();
    let (pem, key) = pki.issue("server");
    let media = support::scratch_dir();
    let benign = media.path().join("benign.mp4");
    support::encode_clip(&benign, support::TEST_PATTERN, 3);
    let origin = NginxOrigin::start();
    let listen = local(free_port());
    let config = rtmps_ingest(listen, origin.addr, &pem, &key).replace(
        "[ingest.tls]",
        "proxy_protocol = \"required\"\ntrusted_proxies = [\"127.0.0.0/8\"]\n[ingest.tls]",
    );
    let livegate = Livegate::start(&config, 1);
    let client: std::net::SocketAddr = "203.0.113.9:41000".parse().expect("client address");
    let balancer = ProxyingBalancer::start(listen, client);

    let mut publisher =
        support::publish_file(&benign, &format!("rtmps://{}/live/proxied", balancer.addr));
    let status = publisher.wait_for(Duration::from_secs(30));
    assert!(
        status.is_some_and(|status| status.success()),
        "ffmpeg through the balancer exited {status:?}\nlivegate log:\n{}",
        livegate.raw_log()
    );
    // The session is the header's client's; TLS came after the header, on the same socket.
    let closed = livegate.session_closed_for(client, Duration::from_secs(10));
    assert_eq!(closed["closer"], "publisher", "{closed}");
    assert!(media_tags(&origin, "proxied").len() >= 90);
}

#[test]
fn certificates_reload_on_sighup_without_touching_running_streams() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let (first_pem, first_key) = pki.issue("first");
    let (second_pem, second_key) = pki.issue("second");
    // The files livegate reads, replaced in place as an operator (or certbot) would.
    let (pem, key) = (pki.path("live.pem"), pki.path("live.key"));
    std::fs::copy(&first_pem, &pem).expect("install first certificate");
    std::fs::copy(&first_key, &key).expect("install first key");

    let origin = NginxOrigin::start();
    let listen = local(free_port());
    // The admin server serves HTTPS with the same files, and reloads with them.
    let admin_tls = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[admin.tls]\ncertificate = \"{}\"\nkey = \"{}\"\n",
        pem.display(),
        key.display()
    );
    let livegate = Livegate::start(
        &(rtmps_ingest(listen, origin.addr, &pem, &key) + &admin_tls),
        1,
    );
    let admin = livegate.admin_addr();
    assert_eq!(served_certificate(listen, &ca), pem_of(&first_pem));
    assert_eq!(served_certificate(admin, &ca), pem_of(&first_pem));
    let healthz = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(&ca)
        .arg(format!("https://localhost:{}/healthz", admin.port()))
        .output()
        .expect("run curl");
    assert!(
        healthz.status.success(),
        "admin over HTTPS: {}",
        String::from_utf8_lossy(&healthz.stderr)
    );

    let stream_seconds = 12;
    let publisher = Publisher::start(
        &format!("rtmps://{listen}/live/running-key"),
        stream_seconds,
        2,
    );
    std::thread::sleep(Duration::from_secs(3));

    std::fs::copy(&second_pem, &pem).expect("install second certificate");
    std::fs::copy(&second_key, &key).expect("install second key");
    livegate.signal("HUP");
    livegate.wait_for_logs(
        |lines| {
            lines
                .iter()
                .any(|line| line["message"] == "TLS certificate reloaded")
        },
        Duration::from_secs(10),
        "certificate reloaded",
    );
    livegate.wait_for_logs(
        |lines| {
            lines
                .iter()
                .filter(|line| line["message"] == "TLS certificate reloaded")
                .count()
                >= 2
        },
        Duration::from_secs(10),
        "ingest and admin certificates reloaded",
    );
    assert_eq!(
        served_certificate(listen, &ca),
        pem_of(&second_pem),
        "a new connection still gets the old certificate"
    );
    assert_eq!(served_certificate(admin, &ca), pem_of(&second_pem));

    // A broken file: the reload fails naming it, and the second pair stays.
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .expect("break certificate");
    livegate.signal("HUP");
    livegate.wait_for_logs(
        |lines| {
            lines.iter().any(|line| {
                line["message"]
                    == "TLS certificate reload failed; previous certificate stays active"
                    && line["error"].as_str().is_some_and(|error| {
                        error.contains("ingest[0].tls.certificate") && error.contains("live.pem")
                    })
            })
        },
        Duration::from_secs(10),
        "reload failure naming the file",
    );
    assert_eq!(served_certificate(listen, &ca), pem_of(&second_pem));

    // A plain RTMP client on the TLS port is closed with a clear reason.
    let mut plain = RawClient::connect(listen);
    plain.send(&encode::client_handshake());
    assert!(
        plain.closed_within(Duration::from_secs(5)),
        "plain RTMP client left open"
    );
    let closed = livegate.session_closed_for(plain.local, Duration::from_secs(10));
    assert_eq!(closed["kind"], "not_protocol", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("plain RTMP client")),
        "{closed}"
    );

    // A renewal without SIGHUP: the files change on disk and are picked up (polled every
    // 5 s), the key first and the certificate last, as a copy would leave them.
    std::fs::copy(&first_key, &key).expect("renew key");
    std::fs::copy(&first_pem, &pem).expect("renew certificate");
    livegate.wait_for_logs(
        |lines| {
            lines.iter().any(|line| {
                line["message"] == "TLS certificate reloaded" && line["trigger"] == "file_changed"
            })
        },
        Duration::from_secs(15),
        "certificate reloaded when its files changed",
    );
    assert_eq!(served_certificate(listen, &ca), pem_of(&first_pem));

    // The stream that ran through the reloads was not touched.
    let (ok, stderr) = publisher.finish(Duration::from_secs(stream_seconds as u64 + 20));
    assert!(
        ok,
        "rtmps publish failed: {stderr}\nlivegate log:\n{}",
        livegate.raw_log()
    );
    let recorded = support::probe_video(&origin.recording("running-key"));
    assert_eq!(recorded.frames, 30 * stream_seconds as u64, "{recorded:?}");
}

#[test]
fn a_bad_certificate_or_key_fails_check_config_naming_the_key_and_file() {
    let pki = Pki::new();
    let (pem, _) = pki.issue("server");
    let (_, other_key) = pki.issue("other");
    let missing = pki.path("missing.key");
    for (key, expected) in [
        (&missing, "ingest[0].tls.key"),
        (&other_key, "ingest[0].tls.key"),
    ] {
        let config = pki.path("livegate.toml");
        let text = rtmps_ingest(local(free_port()), local(free_port()), &pem, key);
        std::fs::write(&config, text).expect("write config");
        let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
            .arg("check-config")
            .arg(&config)
            .output()
            .expect("run livegate check-config");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "check-config accepted {}",
            key.display()
        );
        assert!(
            stderr.contains(expected) && stderr.contains(&key.display().to_string()),
            "{stderr}"
        );
    }
}

/// publisher → livegate (plain RTMP, `origin_tls`) → livegate (RTMPS) → nginx: the
/// first dials its origin over TLS, verifying it against the test CA; an origin whose
/// certificate the CA did not sign is refused, and the publisher's session ends naming it.
#[test]
fn an_rtmps_origin_is_dialled_over_verified_tls() {
    let pki = Pki::new();
    let (pem, key) = pki.issue("origin");
    let stranger = Pki::new();
    let origin = NginxOrigin::start();
    let tls_listen = local(free_port());
    let _tls_side = Livegate::start(&rtmps_ingest(tls_listen, origin.addr, &pem, &key), 1);
    let (trusting, distrusting) = (local(free_port()), local(free_port()));
    let front = |listen, ca: &Path| {
        format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{tls_listen}\"\n\
             publish_timeout_ms = 8000\n\
             origin_tls = {{ server_name = \"localhost\", ca = \"{}\" }}\n",
            ca.display()
        )
    };
    let config =
        front(trusting, &pki.path("ca.pem")) + &front(distrusting, &stranger.path("ca.pem"));
    let front_side = Livegate::start(&config, 2);

    let publisher = Publisher::start(&format!("rtmp://{trusting}/live/through-tls"), 4, 2);
    let (ok, stderr) = publisher.finish(Duration::from_secs(30));
    assert!(
        ok,
        "publish through a TLS origin link failed: {stderr}\n{}",
        front_side.raw_log()
    );
    let recorded = support::probe_video(&origin.recording("through-tls"));
    assert_eq!(recorded.frames, 120, "{recorded:?}");

    let mut refused = RawClient::connect(distrusting);
    refused.send(&encode::client_handshake());
    assert!(
        refused.closed_within(Duration::from_secs(10)),
        "untrusted origin: left open"
    );
    let closed = front_side.session_closed_for(refused.local, Duration::from_secs(10));
    assert_eq!(closed["closer"], "origin", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("TLS handshake failed")),
        "{closed}"
    );
}

//! RTMPS: TLS on an ingest listener through rustls (tokio-rustls, the `ring` provider).
//!
//! A [`CertificateStore`] holds one listener's certificate chain and key behind an
//! `ArcSwap`, and is the rustls certificate resolver: a reload (SIGHUP, or its files
//! changing on disk) swaps in a new pair for connections accepted afterwards, running sessions keep the keys they
//! negotiated, and a pair that fails to load leaves the old one in place. An accepted
//! socket becomes a [`TlsIncoming`], which a session turns into its TLS transport
//! within `handshake_timeout_ms` — refusing at once a peer whose first byte is not a TLS
//! record (a plain RTMP client sends 0x03), so it gets a clear reason instead of a
//! rustls decode error.
//!
//! [`OriginTls`] is the client side, for an `rtmps://` origin (`origin_tls`): the
//! origin's chain is verified against a configured CA bundle or the system's roots.

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::ReadHalf;
use tokio::net::TcpStream;

use super::transport::DialError;
use super::transport::{Incoming, IncomingError, PeerClose, Transport};
use crate::config::{OriginTlsConfig, TlsFilesConfig};

/// The first byte of a TLS record carrying a handshake message (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Why a certificate chain or key could not be put in place; names the config key and file.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("{key}: cannot read {}: {source}", .path.display())]
    Read {
        key: String,
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{key}: {} holds no PEM certificate", .path.display())]
    NoCertificate { key: String, path: PathBuf },
    #[error("{key}: {} holds an unusable certificate: {error}", .path.display())]
    BadCertificate {
        key: String,
        path: PathBuf,
        error: Box<rustls::Error>,
    },
    #[error("{key}: {} does not go with the certificate chain in {}: {error}", .path.display(), .chain.display())]
    Unusable {
        key: String,
        path: PathBuf,
        chain: PathBuf,
        error: Box<rustls::Error>,
    },
    #[error("{key}: {name:?} is not a valid server name (a DNS name or an IP address)")]
    ServerName { key: String, name: String },
    #[error("{key}: {} holds no usable CA certificate{}", .path.display(), .detail)]
    NoRoots {
        key: String,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "{key}: no system CA certificates found (install ca-certificates or set a ca file): {detail}"
    )]
    NoSystemRoots { key: String, detail: String },
    #[error("{key}: building the TLS configuration: {error}")]
    Config {
        key: String,
        error: Box<rustls::Error>,
    },
}

/// The crypto provider every livegate TLS endpoint uses: rustls' `ring` backend, named
/// explicitly so that no other backend a dependency enables can change it.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One listener's certificate chain and key, reloadable; the rustls resolver of its config.
#[derive(Debug)]
pub struct CertificateStore {
    files: TlsFilesConfig,
    /// The config key the files come from, e.g. `ingest[0].tls`, for errors.
    key: String,
    current: ArcSwap<CertifiedKey>,
    /// The files as they were when last read (whether or not they loaded), so that a
    /// change is read once and a bad file is reported once, not on every poll.
    read_as: Mutex<FilesStamp>,
}

/// What a certificate's two files look like on disk: modification time, size and inode
/// of each (through symlinks, as certbot's `live/` links are). Any change — a file
/// rewritten, or a link moved to a new file — changes the stamp.
type FilesStamp = [Option<(SystemTime, u64, u64)>; 2];

fn stamp(files: &TlsFilesConfig) -> FilesStamp {
    [&files.certificate, &files.key].map(|path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
    })
}

impl CertificateStore {
    /// Loads the pair named in `files`; `key` is its config key (`ingest[0].tls`).
    pub fn load(files: &TlsFilesConfig, key: &str) -> Result<Arc<Self>, CertificateError> {
        // Stamped before reading: a change made while they are read is seen next time.
        let read_as = Mutex::new(stamp(files));
        let pair = load_pair(files, key)?;
        Ok(Arc::new(CertificateStore {
            files: files.clone(),
            key: key.to_string(),
            current: ArcSwap::from_pointee(pair),
            read_as,
        }))
    }

    /// Reads the files again; on failure the pair in use stays.
    pub fn reload(&self) -> Result<(), CertificateError> {
        if let Ok(mut read_as) = self.read_as.lock() {
            *read_as = stamp(&self.files);
        }
        let pair = load_pair(&self.files, &self.key)?;
        self.current.store(Arc::new(pair));
        Ok(())
    }

    /// Whether either file changed on disk since it was last read (two `stat` calls).
    pub fn changed_on_disk(&self) -> bool {
        self.read_as
            .lock()
            .is_ok_and(|read_as| *read_as != stamp(&self.files))
    }

    /// The certificate file, for logs.
    pub fn certificate_path(&self) -> &Path {
        &self.files.certificate
    }

    /// A rustls server config at its safe defaults (TLS 1.2 and 1.3, rustls' cipher
    /// suites), presenting whatever pair this store holds at each handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, CertificateError> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| CertificateError::Config {
                key: self.key.clone(),
                error: Box::new(error),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn load_pair(files: &TlsFilesConfig, key: &str) -> Result<CertifiedKey, CertificateError> {
    let certificate_key = format!("{key}.certificate");
    let key_key = format!("{key}.key");
    let chain = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|source| CertificateError::Read {
            key: certificate_key.clone(),
            path: files.certificate.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate {
            key: certificate_key,
            path: files.certificate.clone(),
        });
    }
    let private_key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|source| CertificateError::Read {
            key: key_key.clone(),
            path: files.key.clone(),
            source,
        })?;
    // rustls loads the key first, then compares it with the leaf certificate: an error
    // about the certificate itself names the certificate file, any other the key file.
    CertifiedKey::from_der(chain, private_key, &provider()).map_err(|error| match error {
        rustls::Error::InvalidCertificate(_) => CertificateError::BadCertificate {
            key: certificate_key,
            path: files.certificate.clone(),
            error: Box::new(error),
        },
        error => CertificateError::Unusable {
            key: key_key,
            path: files.key.clone(),
            chain: files.certificate.clone(),
            error: Box::new(error),
        },
    })
}

/// An accepted socket on an RTMPS listener, before its TLS handshake.
pub struct TlsIncoming {
    socket: TcpStream,
    config: Arc<ServerConfig>,
}

impl TlsIncoming {
    pub fn new(socket: TcpStream, config: Arc<ServerConfig>) -> Self {
        TlsIncoming { socket, config }
    }
}

impl Incoming for TlsIncoming {
    type Stream = tokio_rustls::TlsStream<TcpStream>;

    async fn establish(self, limit: Duration) -> Result<Self::Stream, IncomingError> {
        let handshake = async {
            let mut first = [0u8; 1];
            match self.socket.peek(&mut first).await {
                Ok(0) => return Err(IncomingError::Closed),
                Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => {
                    return Err(IncomingError::NotTls { first: first[0] });
                }
                Ok(_) => {}
                Err(error) => return Err(IncomingError::Reset(error)),
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(self.config);
            match acceptor.accept(self.socket).await {
                Ok(stream) => Ok(tokio_rustls::TlsStream::from(stream)),
                Err(error) => Err(IncomingError::Handshake(error)),
            }
        };
        tokio::time::timeout(limit, handshake)
            .await
            .unwrap_or(Err(IncomingError::TimedOut { limit }))
    }
}

impl Transport for tokio_rustls::TlsStream<TcpStream> {
    type ReadHalf = ReadHalf<Self>;
    type WriteHalf = tokio::io::WriteHalf<Self>;

    /// TLS state is shared by both directions, so the halves share the stream through
    /// tokio's split lock (taken per poll, never across an await).
    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf) {
        tokio::io::split(self)
    }

    fn send_without_delay(&self) -> std::io::Result<()> {
        self.get_ref().0.set_nodelay(true)
    }
}

/// A TLS read half cannot see its socket (tokio's split hides it), and a FIN behind
/// unread records is invisible anyway: a write stalled while the publisher of a TLS
/// session has gone is ended by `write_timeout_ms`, not by this signal.
impl PeerClose for ReadHalf<tokio_rustls::TlsStream<TcpStream>> {
    async fn closed_by_peer(&self) {
        std::future::pending::<()>().await
    }
}

/// TLS to an `rtmps://` origin: the connector and the name its certificate must carry.
pub struct OriginTls {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl OriginTls {
    /// Builds the client side for `origin` (`HOST:PORT`); `key` is the config key
    /// (`ingest[0].origin_tls`). Reads the CA file, or the system's roots, once.
    pub fn load(
        config: &OriginTlsConfig,
        origin: &str,
        key: &str,
    ) -> Result<Self, CertificateError> {
        let host = origin.rsplit_once(':').map_or(origin, |(host, _)| host);
        let name = config.server_name.clone().unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        });
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| CertificateError::ServerName {
                key: format!("{key}.server_name"),
                name,
            })?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| CertificateError::Config {
                key: key.to_string(),
                error: Box::new(error),
            })?;
        let config = if config.verify {
            builder
                .with_root_certificates(roots(config.ca.as_deref(), key)?)
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth()
        };
        Ok(OriginTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the TLS handshake over a dialled origin socket within `limit`.
    pub async fn secure(
        &self,
        socket: TcpStream,
        origin: &str,
        limit: Duration,
    ) -> Result<tokio_rustls::TlsStream<TcpStream>, DialError> {
        let handshake = self.connector.connect(self.server_name.clone(), socket);
        match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(stream)) => Ok(tokio_rustls::TlsStream::from(stream)),
            Ok(Err(source)) => Err(DialError::Tls {
                origin: origin.to_string(),
                source,
            }),
            Err(_) => Err(DialError::TimedOut {
                origin: origin.to_string(),
                limit,
            }),
        }
    }
}

/// The trust anchors for an origin: the `ca` file's certificates, else the system's
/// (rustls-native-certs: the OS store, which the distribution keeps current, and what
/// async-nats already uses for `tls://` NATS — no second, compiled-in root list to age).
fn roots(ca: Option<&Path>, key: &str) -> Result<rustls::RootCertStore, CertificateError> {
    let mut store = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|source| CertificateError::Read {
                    key: format!("{key}.ca"),
                    path: path.to_path_buf(),
                    source,
                })?;
            let (added, _) = store.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(CertificateError::NoRoots {
                    key: format!("{key}.ca"),
                    path: path.to_path_buf(),
                    detail: String::new(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let detail = found
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>();
                return Err(CertificateError::NoSystemRoots {
                    key: format!("{key}.ca"),
                    detail: detail.join("; "),
                });
            }
        }
    }
    Ok(store)
}

/// `verify = false`: accepts any origin certificate (signatures are still checked, so the
/// handshake itself stays sound; who the origin is, is not).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

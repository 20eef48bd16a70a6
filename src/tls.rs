//! TLS for STARTTLS (RFC 3207): when a session starts it, and how much it trusts the server.
//!
//! A probe sends no secrets — a sender, recipients, no message — so by default the server's
//! certificate is not verified: most MX certificates do not match the MX host name, are
//! self-signed or expired, and a prober that refused them would learn nothing from servers that
//! require TLS. The handshake itself is still checked (the server must prove it holds the key
//! of the certificate it sent), so what the session reads comes from the end of the TLS
//! connection. [`TlsClient::verified`] makes it strict: the chain must lead to a trusted root
//! and name the MX host, as `--tls-verify` asks.
//!
//! The cryptography is rustls with *ring*: no OpenSSL, TLS 1.2 and 1.3. The session drives
//! rustls sans-IO (bytes in, bytes out); see [`crate::session`].

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// When a session says STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartTls {
    /// Never: a server that requires TLS refuses the transaction, and that refusal is what the
    /// addresses get (never a verdict on a mailbox: `blocked` or `sender_rejected`).
    Never,
    /// Only when the server refuses MAIL FROM or RCPT TO until the client has said STARTTLS
    /// (`530`, or `x.7.0`/`x.7.10` naming TLS): then STARTTLS, EHLO again, and the
    /// transaction starts over on the same connection. The default: most servers take a probe
    /// in plain text, and a handshake costs CPU and a round trip or two.
    #[default]
    WhenRequired,
    /// At every server that offers STARTTLS, right after EHLO; a server that does not offer it
    /// is probed in plain text (opportunistic TLS, Postfix's `smtp_tls_security_level = may`).
    Always,
}

impl StartTls {
    /// The name `--starttls` takes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::WhenRequired => "when-required",
            Self::Always => "always",
        }
    }
}

impl fmt::Display for StartTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StartTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Self::Never),
            "when-required" => Ok(Self::WhenRequired),
            "always" => Ok(Self::Always),
            other => Err(format!(
                "`{other}` is not a STARTTLS mode: say never, when-required or always"
            )),
        }
    }
}

/// The TLS protocol version a session spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

impl TlsVersion {
    /// As the output schema writes it: `TLSv1.2`, `TLSv1.3` (OpenSSL's and Postfix's names).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "TLSv1.2",
            Self::Tls13 => "TLSv1.3",
        }
    }

    /// The version rustls negotiated, if it is one of the two it speaks.
    pub(crate) fn from_rustls(version: rustls::ProtocolVersion) -> Option<Self> {
        match version {
            rustls::ProtocolVersion::TLSv1_2 => Some(Self::Tls12),
            rustls::ProtocolVersion::TLSv1_3 => Some(Self::Tls13),
            _ => None,
        }
    }

    /// The name the output schema uses, back to the version.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "TLSv1.2" => Some(Self::Tls12),
            "TLSv1.3" => Some(Self::Tls13),
            _ => None,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for TlsVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The rustls client configuration a session starts TLS with: cheap to clone (shared), and
/// equal only to its own clones.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    verifies: bool,
}

impl TlsClient {
    /// Any certificate is taken (the handshake signature is still checked): the default, see
    /// the module documentation. One configuration, made once, shared by every session.
    #[must_use]
    pub fn unverified() -> Self {
        static UNVERIFIED: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        let config = UNVERIFIED.get_or_init(|| {
            let provider = provider();
            let verifier = Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            });
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Arc::new(config)
        });
        Self {
            config: Arc::clone(config),
            verifies: false,
        }
    }

    /// The certificate must chain to one of `roots` and name the server (the MX host name):
    /// what `--tls-verify` asks. A certificate that fails is the prober's finding about the
    /// server, never a verdict on a mailbox.
    ///
    /// # Errors
    /// If `roots` is empty: nothing could verify.
    pub fn verified(roots: RootCertStore) -> Result<Self, TlsConfigError> {
        if roots.is_empty() {
            return Err(TlsConfigError::NoRoots);
        }
        let provider = provider();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsConfigError::Roots(e.to_string()))?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_webpki_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            verifies: true,
        })
    }

    /// The Mozilla root programme's roots (compiled in, from `webpki-roots`).
    #[must_use]
    pub fn mozilla_roots() -> RootCertStore {
        RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }
    }

    /// The certificates of a PEM file (`--tls-ca`), as roots.
    ///
    /// # Errors
    /// If the file cannot be read, holds a malformed certificate, or holds none.
    pub fn roots_from_pem_file(path: &Path) -> Result<RootCertStore, TlsConfigError> {
        let pem = std::fs::read(path).map_err(|e| TlsConfigError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::roots_from_pem(&pem).map_err(|why| TlsConfigError::Pem {
            path: path.display().to_string(),
            why,
        })
    }

    /// The certificates of PEM text, as roots; or what is wrong with it.
    ///
    /// # Errors
    /// If a certificate is malformed, or there is none.
    pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        if roots.is_empty() {
            return Err("it holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)".into());
        }
        Ok(roots)
    }

    /// True if certificates are verified.
    #[must_use]
    pub fn verifies(&self) -> bool {
        self.verifies
    }

    /// A client connection to `name`, its handshake not yet begun.
    pub(crate) fn connect(
        &self,
        name: ServerName<'static>,
    ) -> Result<rustls::ClientConnection, rustls::Error> {
        rustls::ClientConnection::new(Arc::clone(&self.config), name)
    }
}

impl Default for TlsClient {
    fn default() -> Self {
        Self::unverified()
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsClient {}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("verifies", &self.verifies)
            .finish_non_exhaustive()
    }
}

/// Why a TLS client configuration could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsConfigError {
    /// `--tls-ca` could not be read.
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        why: String,
    },
    /// `--tls-ca` is not a PEM file of certificates.
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Verification was asked for with no roots to verify against.
    NoRoots,
    /// rustls refused the roots.
    Roots(String),
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, why } => write!(f, "cannot read the CA file {path}: {why}"),
            Self::Pem { path, why } => write!(f, "the CA file {path} is not usable: {why}"),
            Self::NoRoots => f.write_str(
                "TLS verification needs at least one trusted root certificate (--tls-ca FILE)",
            ),
            Self::Roots(why) => write!(f, "the trusted roots are not usable: {why}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

/// The cryptography: *ring*, rustls's default cipher suites, and its key exchanges cheapest
/// first. rustls 0.23.48 puts P-384 first for *ring*; X25519 does the same job for a fraction
/// of the CPU (a prober makes thousands of handshakes), and every MTA that speaks TLS 1.3 or
/// modern 1.2 offers it. P-256 and P-384 stay for servers that know only those.
#[allow(
    deprecated,
    reason = "rustls 0.23.48 deprecates its ring provider for lacking post-quantum key \
              exchange; a probe carries no secrets worth harvesting now to decrypt later, and \
              ring keeps the build free of aws-lc's C and CMake toolchain"
)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{default_provider, kx_group};
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| {
        Arc::new(CryptoProvider {
            kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
            ..default_provider()
        })
    }))
}

/// Takes any certificate, and checks only that the server signed the handshake with the key
/// of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The name a session starts TLS with at `host` (an MX host name) at `ip`: the host name, for
/// SNI and verification; the address if the name is not a DNS name (an address literal).
#[must_use]
pub fn server_name(host: &str, ip: std::net::IpAddr) -> ServerName<'static> {
    ServerName::try_from(host.trim_end_matches('.').to_owned())
        .unwrap_or_else(|_| ServerName::IpAddress(ip.into()))
}

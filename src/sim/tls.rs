//! The simulated servers' TLS: a self-signed certificate made at start-up, and the rustls
//! server configuration that presents it.
//!
//! A real MX's certificate seldom matches its name and a probe sends no secrets, so mxprobe
//! does not verify by default; the simulated servers therefore need nothing better than a
//! certificate of their own. Tests of `--tls-verify` trust it explicitly with
//! [`SelfSigned::cert_pem`] (as `--tls-ca`), and see verification fail without it.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate for a set of names, signed by its own key.
#[derive(Debug)]
pub struct SelfSigned {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

impl SelfSigned {
    /// A new key pair and a certificate for `names` (DNS names or IP addresses), valid from
    /// 1975 to 4096 as rcgen makes them.
    ///
    /// # Panics
    /// If a name is neither a DNS name nor an IP address: the caller's names are constants.
    #[must_use]
    pub fn new(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let made = rcgen::generate_simple_self_signed(names)
            .expect("a simulator's certificate names are valid DNS names or IP addresses");
        Self {
            cert: made.cert.der().clone(),
            cert_pem: made.cert.pem(),
            key_der: made.signing_key.serialize_der(),
            key_pem: made.signing_key.serialize_pem(),
        }
    }

    /// The certificate, PEM: what a client that verifies must be told to trust.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM: for a real server (Postfix's `smtpd_tls_key_file`).
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A rustls server configuration presenting this certificate: TLS 1.2 and 1.3, no client
    /// certificates.
    ///
    /// # Panics
    /// Never for a certificate this type made (rustls accepts rcgen's ECDSA P-256 keys).
    #[must_use]
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config_for(rustls::DEFAULT_VERSIONS)
    }

    /// [`SelfSigned::server_config`], speaking only `versions` (a server stuck at TLS 1.2, say).
    ///
    /// # Panics
    /// If `versions` is empty.
    #[must_use]
    pub fn server_config_for(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(versions)
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)
            .expect("rustls accepts the key rcgen made");
        Arc::new(config)
    }
}

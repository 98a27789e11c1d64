//! TLS for the hub, with rustls (ring) on both sides: a self-signed certificate made at
//! `hub init`, and a client that trusts exactly one certificate — the one whose SHA-256 the
//! operator gave it (`--hub-fingerprint` or `--hub-cert`). No CA, no system roots: a box talks
//! to its hub and nothing else.

/// The server configuration [`server_config`] makes (for callers without rustls of their own).
pub use rustls::ServerConfig;

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// TLS set-up errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    /// A PEM file is not what it should be.
    #[error("cannot read {0}")]
    Pem(&'static str),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A hub certificate and its private key, as PEM.
pub struct HubCertificate {
    /// The certificate (public).
    pub cert_pem: String,
    /// The private key (secret: write it 0600).
    pub key_pem: Zeroizing<String>,
}

/// A fresh self-signed certificate for `localhost` and 127.0.0.1.
pub fn generate_certificate() -> Result<HubCertificate, TlsError> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok(HubCertificate {
        cert_pem: generated.cert.pem(),
        key_pem: Zeroizing::new(generated.signing_key.serialize_pem()),
    })
}

/// The SHA-256 of a certificate (DER), as colon-separated hex: what clients pin.
pub fn certificate_fingerprint(cert_pem: &str) -> Result<String, TlsError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| TlsError::Pem("the certificate"))?;
    Ok(keyward_core::fingerprint::colon_hex(&Sha256::digest(der.as_ref())))
}

/// The server side.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig, TlsError> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| TlsError::Pem("the certificate"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| TlsError::Pem("the private key"))?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// Parses a pinned fingerprint (colon hex, 32 bytes).
pub fn parse_pin(text: &str) -> Option<[u8; 32]> {
    let digits: String =
        text.trim().chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    keyward_core::encoding::from_hex(&digits)?.try_into().ok()
}

/// The client side: trusts exactly the certificate with SHA-256 `pin`.
pub fn pinned_client_config(pin: [u8; 32]) -> Result<rustls::ClientConfig, TlsError> {
    let verifier = PinnedCertificate { pin, provider: provider() };
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Accepts the one certificate whose hash is pinned; handshake signatures are still verified
/// with that certificate's key, so the peer must hold its private key.
#[derive(Debug)]
struct PinnedCertificate {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if found == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the hub's certificate is {}, not the pinned one",
                keyward_core::fingerprint::colon_hex(&found[..8])
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

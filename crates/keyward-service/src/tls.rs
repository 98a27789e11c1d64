//! TLS for the hub and the peers, with rustls (ring) on both sides: a self-signed certificate
//! made at `init`, and a client that trusts exactly one certificate — the one whose SHA-256 it
//! was given (`--hub-fingerprint`, `--hub-cert`, a peer's card). No CA, no system roots: a box
//! talks to its hub and its peers and nothing else. A certificate that is not the pinned one is
//! remembered ([`PinWitness`]), so the client can say so — a possible interception — rather
//! than "cannot be reached".

/// The server configuration [`server_config`] makes (for callers without rustls of their own).
pub use rustls::ServerConfig;

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, Signer, SigningKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, SignatureAlgorithm, SignatureScheme};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use keyward_core::memory::LockedBytes;

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
    /// The key could not be kept in locked memory.
    #[error("cannot lock the TLS key in memory ({0}); raise the memlock limit (LimitMEMLOCK=)")]
    Lock(std::io::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// RFC 8410's PKCS#8 (v1) encoding of an Ed25519 private key is this fixed prefix and the
/// 32-byte seed: the form keyward writes and the one whose seed it keeps in locked memory.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A server certificate and its private key, as PEM.
pub struct ServerCertificate {
    /// The certificate (public).
    pub cert_pem: String,
    /// The private key (secret: write it 0600).
    pub key_pem: Zeroizing<String>,
}

/// A fresh self-signed Ed25519 certificate for `localhost` and 127.0.0.1.
pub fn generate_certificate() -> Result<ServerCertificate, TlsError> {
    let fail = |e: &dyn std::fmt::Display| TlsError::Generate(e.to_string());
    let seed = Zeroizing::new(keyward_core::random::array::<32>().map_err(|e| fail(&e))?);
    let mut der = Zeroizing::new(ED25519_PKCS8_PREFIX.to_vec());
    der.extend_from_slice(seed.as_slice());
    let key_pair = rcgen::KeyPair::try_from(&PrivatePkcs8KeyDer::from(der.as_slice()))
        .map_err(|e| fail(&e))?;
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| fail(&e))?;
    let cert = params.self_signed(&key_pair).map_err(|e| fail(&e))?;
    Ok(ServerCertificate {
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key_pair.serialize_pem()),
    })
}

/// The SHA-256 of a certificate (DER), as colon-separated hex: what clients pin.
pub fn certificate_fingerprint(cert_pem: &str) -> Result<String, TlsError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| TlsError::Pem("the certificate"))?;
    Ok(keyward_core::fingerprint::colon_hex(&Sha256::digest(der.as_ref())))
}

/// A server's TLS configuration, and whether its key is held in locked memory.
pub struct ServerTls {
    /// For the server.
    pub config: rustls::ServerConfig,
    /// `true` for an Ed25519 key (what `init` writes): its seed lives in locked, non-dumpable
    /// memory and signs through [`LockedEd25519`]. `false` for another key (an ECDSA key an
    /// older keyward wrote), which rustls keeps in its own memory.
    pub key_locked: bool,
}

/// The DER inside a PEM block, in wiped memory.
fn pem_body(pem: &str) -> Option<Zeroizing<Vec<u8>>> {
    let body: Zeroizing<String> =
        Zeroizing::new(pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect());
    keyward_core::encoding::from_base64(&body).map(Zeroizing::new)
}

/// The server side, from the certificate and key files `init` wrote.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<ServerTls, TlsError> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| TlsError::Pem("the certificate"))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth();
    if let Some(der) = pem_body(key_pem)
        && der.len() == ED25519_PKCS8_PREFIX.len() + 32
        && der.starts_with(&ED25519_PKCS8_PREFIX)
    {
        let seed =
            LockedBytes::copy_of(&der[ED25519_PKCS8_PREFIX.len()..]).map_err(TlsError::Lock)?;
        let key = Arc::new(LockedEd25519(Arc::new(seed)));
        let certified = CertifiedKey::new(vec![cert], key);
        let config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        return Ok(ServerTls { config, key_locked: true });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| TlsError::Pem("the private key"))?;
    let config =
        builder.with_single_cert(vec![cert], key).map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(ServerTls { config, key_locked: false })
}

/// An Ed25519 TLS key whose seed lives in [`LockedBytes`]; each handshake signature expands it
/// on the stack (zeroized after) and signs with ed25519-dalek.
#[derive(Debug, Clone)]
pub struct LockedEd25519(Arc<LockedBytes>);

impl SigningKey for LockedEd25519 {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ED25519)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ED25519
    }
}

impl Signer for LockedEd25519 {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let seed: &[u8; 32] = self
            .0
            .as_slice()
            .try_into()
            .map_err(|_| rustls::Error::General("the TLS key is not 32 bytes".into()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        Ok(ed25519_dalek::Signer::sign(&key, message).to_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

/// Parses a pinned fingerprint (colon hex, 32 bytes).
pub fn parse_pin(text: &str) -> Option<[u8; 32]> {
    let digits: String =
        text.trim().chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    keyward_core::encoding::from_hex(&digits)?.try_into().ok()
}

/// The hash of a certificate a pinned client refused, kept for its error message.
#[derive(Debug, Clone, Default)]
pub struct PinWitness(Arc<Mutex<Option<[u8; 32]>>>);

impl PinWitness {
    /// The hash of the last certificate refused for not being the pinned one, if any.
    pub fn mismatch(&self) -> Option<[u8; 32]> {
        self.0.lock().ok().and_then(|seen| *seen)
    }

    /// Forgets what was seen (before a new request, so an old mismatch is not blamed for a
    /// later failure).
    pub fn clear(&self) {
        if let Ok(mut seen) = self.0.lock() {
            *seen = None;
        }
    }

    fn record(&self, found: [u8; 32]) {
        if let Ok(mut seen) = self.0.lock() {
            *seen = Some(found);
        }
    }
}

/// The client side: trusts exactly the certificate with SHA-256 `pin`; the witness tells
/// afterwards whether another certificate was presented.
pub fn pinned_client_config(pin: [u8; 32]) -> Result<(rustls::ClientConfig, PinWitness), TlsError> {
    let witness = PinWitness::default();
    let verifier = PinnedCertificate { pin, provider: provider(), witness: witness.clone() };
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((config, witness))
}

/// Accepts the one certificate whose hash is pinned; handshake signatures are still verified
/// with that certificate's key, so the peer must hold its private key.
#[derive(Debug)]
struct PinnedCertificate {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
    witness: PinWitness,
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
            self.witness.record(found);
            Err(rustls::Error::General("the certificate is not the pinned one".into()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_certificate_is_ed25519_and_its_key_is_kept_locked() {
        let made = generate_certificate().expect("certificate");
        let tls = server_config(&made.cert_pem, &made.key_pem).expect("config");
        assert!(tls.key_locked, "the key init writes is held in locked memory");
        let fingerprint = certificate_fingerprint(&made.cert_pem).expect("fingerprint");
        assert!(parse_pin(&fingerprint).is_some());
    }
}

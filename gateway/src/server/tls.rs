//! TLS on the listener (rustls, ring provider): the certificate chain and key from
//! `[security] tls_cert` / `tls_key`, and with `tls_client_ca` mutual TLS, where every client
//! must present a certificate that chains to that CA and is valid now. Built at start and
//! again on SIGHUP, so that a rotated certificate is picked up without a restart.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
pub use rustls::ServerConfig;
pub use tokio_rustls::TlsAcceptor as Acceptor;

use crate::config::SecurityConfig;

/// Why the TLS settings cannot be used; names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {path}: {problem}")]
    File {
        key: &'static str,
        path: String,
        problem: String,
    },
    #[error("TLS: {0}")]
    Rustls(String),
}

/// The TLS settings for `security`, or `None` when TLS is off (no `tls_cert`).
pub fn server_config(security: &SecurityConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(cert), Some(key)) = (&security.tls_cert, &security.tls_key) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &security.tls_client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates("security.tls_client_ca", ca)? {
                roots
                    .add(certificate)
                    .map_err(|e| file_error("security.tls_client_ca", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| file_error("security.tls_client_ca", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let chain = certificates("security.tls_cert", cert)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        file_error(
            "security.tls_key",
            key,
            format!("{e} (a PEM private key: PKCS#8, PKCS#1 or SEC1)"),
        )
    })?;
    let mut config = builder.with_single_cert(chain, private).map_err(|e| {
        file_error(
            "security.tls_key",
            key,
            format!("does not fit the certificate: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Every certificate in a PEM file; at least one.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(key, path, e))?;
    if certificates.is_empty() {
        return Err(file_error(key, path, "holds no PEM certificate"));
    }
    Ok(certificates)
}

fn file_error(key: &'static str, path: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        key,
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

//! Whether this build has TLS (the `tls` feature), and the crypto provider of its HTTP clients.

/// Whether this build speaks TLS: https:// URLs and `security.tls_cert` work only if it does.
pub const BUILT: bool = cfg!(feature = "tls");

/// Why a build without TLS refuses an https:// URL or a certificate.
pub const NOT_BUILT: &str =
    "this mcp-gateway was built without TLS (the `tls` feature); install a build with it";

/// Installs rustls's ring provider for every HTTP client (cloud, upstreams, telemetry, the
/// OAuth key fetch); a no-op without TLS. Idempotent.
pub fn install_client_provider() {
    #[cfg(feature = "tls")]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

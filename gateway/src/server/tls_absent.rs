//! The listener in a build without TLS (no `tls` feature): the same names as `tls.rs`, so the
//! server's code is one, but no TLS settings can exist. Configuration validation refuses
//! `security.tls_cert` first; `server_config` refuses it again for a caller that skipped that.

use std::sync::Arc;

use tokio::net::TcpStream;

use crate::config::SecurityConfig;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("security.tls_cert: {}", crate::tls::NOT_BUILT)]
    NotBuilt,
}

/// TLS settings, of which this build has none.
#[derive(Debug)]
pub enum ServerConfig {}

/// A TLS acceptor, of which this build has none.
pub enum Acceptor {}

impl From<Arc<ServerConfig>> for Acceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        match *config {}
    }
}

impl Acceptor {
    pub async fn accept(&self, _stream: TcpStream) -> std::io::Result<TcpStream> {
        match *self {}
    }
}

/// `None` (plain HTTP) unless `security` asks for TLS, which this build cannot give.
pub fn server_config(security: &SecurityConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    match security.tls_cert {
        None => Ok(None),
        Some(_) => Err(TlsError::NotBuilt),
    }
}

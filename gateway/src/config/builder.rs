//! `Config::builder()`: a configuration assembled in code, checked by the same rules as a file.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Config, ConfigError, Secret};

/// Builds a [`Config`] from the embedded defaults.
///
/// ```
/// use mcp_edge_gateway::Config;
///
/// let config = Config::builder()
///     .bind_address("127.0.0.1:0".parse().unwrap())
///     .local_model("/var/lib/mcp-edge/models/SmolLM2-135M-Instruct.Q4_1.gguf")
///     .cloud_fallback("https://llm.example.net/v1", Some("token".into()))
///     .offline_queue_size(5_000)
///     .build()
///     .unwrap();
/// assert_eq!(config.offline.queue_size, 5_000);
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    pub fn bind_address(mut self, addr: SocketAddr) -> Self {
        self.config.gateway.bind_address = addr;
        self
    }

    pub fn max_connections(mut self, n: u32) -> Self {
        self.config.gateway.max_connections = n;
        self
    }

    pub fn request_timeout_ms(mut self, ms: u64) -> Self {
        self.config.gateway.request_timeout_ms = ms;
        self
    }

    pub fn max_body_bytes(mut self, bytes: u64) -> Self {
        self.config.gateway.max_body_bytes = bytes;
        self
    }

    /// The local GGUF model; it is served under the file's stem as its name.
    pub fn local_model(mut self, model_path: impl Into<PathBuf>) -> Self {
        let path = model_path.into();
        self.config.models.local_model = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        self.config.models.model_path = Some(path);
        self
    }

    /// The OpenAI-compatible endpoint requests fall back to, with its API key if it needs one.
    pub fn cloud_fallback(mut self, endpoint: impl Into<String>, api_key: Option<String>) -> Self {
        self.config.models.cloud_endpoint = Some(endpoint.into());
        self.config.models.cloud_api_key = api_key.map(Secret::new);
        self
    }

    pub fn offline_queue_size(mut self, n: u32) -> Self {
        self.config.offline.queue_size = n;
        self
    }

    /// Where the offline queue's database lives (`offline.persistence_path`).
    pub fn offline_queue_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.offline.persistence_path = path.into();
        self
    }

    /// Checks every rule and returns the configuration, or all the problems found.
    pub fn build(self) -> Result<Config, ConfigError> {
        match self.config.validate() {
            Ok(()) => Ok(self.config),
            Err(problems) => Err(ConfigError::located("Config::builder()", "", problems)),
        }
    }
}

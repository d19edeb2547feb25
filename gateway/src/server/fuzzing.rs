//! What the fuzz target `http_request_head` drives (`fuzz/`): the checks the gateway itself
//! makes on a request head before routing it, without a socket. Built only by `cargo fuzz`,
//! which passes `--cfg fuzzing`; no other build has this module.

use http::request::Parts;

use super::auth::Clients;
use super::host::AllowedHosts;
use super::routes::{declared_too_large, Route};
use crate::config::{ClientConfig, OAuthConfig};

/// A gateway's head checks: the default allowed hosts, one static client, and an
/// authorization server whose key set each check is given (it comes from the network). Made
/// once: setting up the OAuth side's HTTP client costs more than a check.
#[derive(Debug)]
pub struct HeadChecks {
    hosts: AllowedHosts,
    clients: Clients,
}

impl Default for HeadChecks {
    fn default() -> Self {
        let client = ClientConfig {
            name: "fuzz".into(),
            token_sha256: super::hash_token("fuzz-token"),
            scopes: vec!["mcp".into(), "metrics".into()],
            requests_per_minute: 0,
            ..ClientConfig::default()
        };
        let oauth = OAuthConfig {
            authorization_server: "https://auth.example".into(),
            jwks_uri: "https://auth.example/jwks".into(),
            resource: "https://device.example/mcp".into(),
        };
        Self {
            hosts: AllowedHosts::new(&crate::config::GatewayConfig::default().allowed_hosts),
            clients: Clients::new(&[client], &oauth),
        }
    }
}

impl HeadChecks {
    /// Takes `jwks` as the authorization server's key set, then runs `head` through
    /// `Host`/`Origin`, the bearer token (a static digest, else an OAuth JWT against the key
    /// set), the route's scope and the declared body length, in the order the gateway does;
    /// returns the status it would refuse with, or 0 when it would route.
    pub fn check(&self, jwks: &[u8], head: &Parts) -> u16 {
        if let Some(oauth) = self.clients.oauth() {
            oauth.preload(jwks);
        }
        if let Err(e) = self.hosts.check(&head.uri, &head.headers) {
            return e.status.as_u16();
        }
        let scope = Route::of(head.uri.path()).scope(&head.method);
        if let Err((e, _)) = futures::executor::block_on(self.clients.admit(&head.headers, scope)) {
            return e.status.as_u16();
        }
        declared_too_large(&head.headers, 1 << 20).map_or(0, |e| e.status.as_u16())
    }
}

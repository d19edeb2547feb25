//! Who is calling: bearer tokens checked against `[[security.clients]]` (stored as SHA-256
//! digests, never in clear) or, with `[security.oauth]`, access tokens from the authorization
//! server ([`super::oauth`]); the scope each route needs, and a per-client request rate.
//! With neither configured the gateway serves anyone who reaches it (on a trusted link, or
//! behind mutual TLS); otherwise every route but `/health` (and the OAuth metadata) needs a
//! token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{header, HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use super::oauth::OAuth;
use super::response::ApiError;
use crate::config::{ClientConfig, OAuthConfig};
use crate::mcp::Narrowing;

/// What a route needs, as `[[security.clients]] scopes` names it; `None`: open to all.
pub(super) type Scope = Option<&'static str>;

/// A refusal: the error and the headers it needs (`WWW-Authenticate`, `Retry-After`).
pub(super) type Refusal = (ApiError, Vec<(header::HeaderName, HeaderValue)>);

/// The configured clients and their rate buckets, and the authorization server if any.
#[derive(Debug, Default)]
pub(super) struct Clients {
    clients: Vec<Client>,
    buckets: Mutex<HashMap<String, Bucket>>,
    oauth: Option<OAuth>,
}

#[derive(Debug)]
struct Client {
    name: String,
    /// The digest of its static token; `None` for an entry that applies to an OAuth client.
    digest: Option<[u8; 32]>,
    /// The OAuth client (`client_id`, `azp` or `sub` of its tokens) this entry applies to.
    oauth_client: Option<String>,
    scopes: Vec<String>,
    per_minute: u32,
    narrowing: Option<Narrowing>,
}

/// An identified client: its name, and the MCP tools, prompts and resources it is limited to
/// (if it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Admitted {
    pub name: String,
    pub narrowing: Option<Narrowing>,
}

/// A token bucket: up to a minute's worth of requests, refilled continuously.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The SHA-256 of `token`, as 64 lowercase hex digits (what `token_sha256` holds).
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Clients {
    pub(super) fn new(configured: &[ClientConfig], oauth: &OAuthConfig) -> Self {
        let clients = configured
            .iter()
            .map(|c| Client {
                name: c.name.clone(),
                digest: (!c.token_sha256.is_empty()).then(|| decode_hex(&c.token_sha256)),
                oauth_client: (!c.oauth_client.is_empty()).then(|| c.oauth_client.clone()),
                scopes: c.scopes.clone(),
                per_minute: c.requests_per_minute,
                narrowing: Narrowing::from_lists(&c.tools, &c.prompts, &c.resources),
            })
            .collect();
        Self {
            clients,
            buckets: Mutex::default(),
            oauth: OAuth::from_config(oauth),
        }
    }

    /// The authorization server's metadata, when one is configured.
    pub(super) fn oauth(&self) -> Option<&OAuth> {
        self.oauth.as_ref()
    }

    /// Lets the request through, or says why not (401, 403 or 429). Returns the client's
    /// name when one was identified.
    pub(super) async fn admit(
        &self,
        headers: &HeaderMap,
        scope: Scope,
    ) -> Result<Option<Admitted>, Refusal> {
        let Some(scope) = scope.filter(|_| !self.clients.is_empty() || self.oauth.is_some()) else {
            return Ok(None);
        };
        // RFC 6750 §3, with RFC 9728's pointer to the metadata when OAuth is on.
        let www_authenticate = |error: Option<&str>| {
            let mut value = "Bearer realm=\"mcp-edge\"".to_owned();
            if let Some(oauth) = &self.oauth {
                value.push_str(&format!(", resource_metadata=\"{}\"", oauth.metadata_url()));
            }
            if let Some(error) = error {
                value.push_str(&format!(", error=\"{error}\", scope=\"{scope}\""));
            }
            vec![(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer")),
            )]
        };
        let challenge = |error: &str| www_authenticate(Some(error));
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return Err((
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this gateway needs a bearer token (Authorization: Bearer ...)",
                ),
                www_authenticate(None),
            ));
        };
        let token = token.trim();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let configured = self
            .clients
            .iter()
            .find(|c| c.digest.is_some_and(|d| constant_time_eq(&d, &digest)));
        let (name, scopes) = match (configured, &self.oauth) {
            (Some(client), _) => (client.name.clone(), client.scopes.clone()),
            (None, Some(oauth)) => match oauth.validate(token).await {
                Ok(grant) => (grant.name, grant.scopes),
                Err(why) => {
                    return Err((
                        ApiError::new(
                            StatusCode::UNAUTHORIZED,
                            "invalid_token",
                            format!("the access token is refused: {why}"),
                        ),
                        challenge("invalid_token"),
                    ))
                }
            },
            (None, None) => {
                return Err((
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "the bearer token is not known here",
                    ),
                    challenge("invalid_token"),
                ))
            }
        };
        if !scopes.iter().any(|s| s == scope || s == "*") {
            return Err((
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "insufficient_scope",
                    format!(
                        "client \"{name}\" may not use this route; it needs the scope \"{scope}\""
                    ),
                ),
                challenge("insufficient_scope"),
            ));
        }
        // An OAuth client is narrowed and rate-limited by the entry naming it, if one does.
        let limits = configured.or_else(|| {
            self.clients
                .iter()
                .find(|c| c.oauth_client.as_deref() == Some(name.as_str()))
        });
        let Some(client) = limits else {
            return Ok(Some(Admitted {
                name,
                narrowing: None,
            }));
        };
        if let Some(wait) = self.take(client) {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            return Err((
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "client \"{}\" is over its {} requests per minute",
                        client.name, client.per_minute
                    ),
                ),
                vec![(header::RETRY_AFTER, HeaderValue::from(seconds))],
            ));
        }
        Ok(Some(Admitted {
            name,
            narrowing: client.narrowing.clone(),
        }))
    }

    /// Takes one request from the client's bucket; the wait until one is available if empty.
    fn take(&self, client: &Client) -> Option<Duration> {
        if client.per_minute == 0 {
            return None;
        }
        let capacity = f64::from(client.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(client.name.clone()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refilled = now.duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refilled).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// The digest in `token_sha256` (validated as 64 hex digits by the configuration).
fn decode_hex(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = hex
            .get(2 * i..2 * i + 2)
            .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            .unwrap_or(0);
    }
    out
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients(per_minute: u32) -> Clients {
        Clients::new(
            &[ClientConfig {
                name: "fleet".into(),
                token_sha256: hash_token("s3cret"),
                scopes: vec!["completions".into()],
                requests_per_minute: per_minute,
                ..ClientConfig::default()
            }],
            &OAuthConfig::default(),
        )
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    fn status(answer: Result<Option<Admitted>, Refusal>) -> u16 {
        answer.map_or_else(|(e, _)| e.status.as_u16(), |_| 200)
    }

    #[tokio::test]
    async fn tokens_scopes_and_rates() {
        let c = clients(2);
        assert_eq!(
            c.admit(&bearer("s3cret"), Some("completions"))
                .await
                .unwrap()
                .map(|a| a.name),
            Some("fleet".into())
        );
        assert_eq!(
            status(c.admit(&HeaderMap::new(), Some("completions")).await),
            401
        );
        assert_eq!(
            status(c.admit(&bearer("guess"), Some("completions")).await),
            401
        );
        assert_eq!(status(c.admit(&bearer("s3cret"), Some("admin")).await), 403);
        assert_eq!(
            status(c.admit(&bearer("s3cret"), Some("completions")).await),
            200
        );
        assert_eq!(
            status(c.admit(&bearer("s3cret"), Some("completions")).await),
            429
        );
        assert_eq!(
            status(c.admit(&HeaderMap::new(), None).await),
            200,
            "open routes stay open"
        );
        let unlimited = clients(0);
        for _ in 0..10 {
            assert_eq!(
                status(
                    unlimited
                        .admit(&bearer("s3cret"), Some("completions"))
                        .await
                ),
                200
            );
        }
    }

    #[test]
    fn tokens_are_kept_as_sha256() {
        // FIPS 180-2 test vector.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(decode_hex(&hash_token("abc"))[0], 0xba);
    }
}

//! OAuth 2.1 for MCP clients (`[security.oauth]`): the protected-resource metadata of RFC 9728
//! that tells a client which authorization server to get a token from, and the validation of
//! the JWT access tokens (RFC 9068) that server issues: signature (ES256 or RS256) under a key
//! from its JWKS, issuer, audience (this resource, RFC 8707), expiry, and the scopes granted.
//!
//! The signing keys are fetched on the first token and again when a token names a key not seen
//! yet (at most every 10 s), so a key rotation at the server needs no restart here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{OAuthConfig, SCOPES};

/// How far clocks may disagree about `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 60;
/// The shortest time between two fetches of the signing keys.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

/// A verifying key from the authorization server's JWKS.
#[derive(Debug, Clone)]
enum Key {
    /// An uncompressed P-256 point.
    Es256(Vec<u8>),
    Rs256 {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grant {
    /// `client_id`, `azp` or `sub`: who the token was issued to.
    pub name: String,
    pub scopes: Vec<String>,
}

/// The resource this gateway is, the authorization server it trusts, and that server's keys.
#[derive(Debug)]
pub(super) struct OAuth {
    resource: String,
    issuer: String,
    jwks_uri: String,
    metadata_path: String,
    metadata_url: String,
    keys: Mutex<HashMap<String, Key>>,
    fetched: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl OAuth {
    /// `None` without an authorization server configured.
    pub(super) fn from_config(config: &OAuthConfig) -> Option<Self> {
        if config.authorization_server.is_empty() {
            return None;
        }
        let (origin, path) = split_origin(&config.resource);
        let metadata_path = format!("/.well-known/oauth-protected-resource{path}");
        Some(Self {
            resource: config.resource.clone(),
            issuer: config.authorization_server.clone(),
            jwks_uri: config.jwks_uri.clone(),
            metadata_url: format!("{origin}{metadata_path}"),
            metadata_path,
            keys: Mutex::default(),
            fetched: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        })
    }

    /// Whether `path` is where the metadata is served (with or without the resource's path).
    pub(super) fn is_metadata_path(&self, path: &str) -> bool {
        path == self.metadata_path || path == "/.well-known/oauth-protected-resource"
    }

    /// The URL clients are pointed to in `WWW-Authenticate: Bearer resource_metadata="…"`.
    pub(super) fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The protected-resource metadata document (RFC 9728 §2).
    pub(super) fn metadata(&self) -> Value {
        let scopes: Vec<&str> = SCOPES.iter().copied().filter(|s| *s != "*").collect();
        json!({
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-edge gateway",
        })
    }

    /// Checks `token` and returns what it grants; the error says why it is refused.
    pub(super) async fn validate(&self, token: &str) -> Result<Grant, String> {
        let Some((signed, signature)) = token.rsplit_once('.') else {
            return Err("not a JWT (header.payload.signature)".into());
        };
        let Some((header, payload)) = signed.split_once('.') else {
            return Err("not a JWT (header.payload.signature)".into());
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| "bad base64url");
        let header: JwtHeader = serde_json::from_slice(&decode(header)?)
            .map_err(|e| format!("unreadable JWT header: {e}"))?;
        let signature = decode(signature)?;
        let key = self.key(header.kid.as_deref()).await?;
        let verified = match (&key, header.alg.as_str()) {
            (Key::Es256(point), "ES256") => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &signature)
                .is_ok(),
            (Key::Rs256 { n, e }, "RS256") => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
                .is_ok(),
            (_, alg) => {
                return Err(format!(
                    "algorithm {alg:?} does not fit the key (ES256 or RS256)"
                ))
            }
        };
        if !verified {
            return Err("the signature does not verify".into());
        }
        let claims: Claims = serde_json::from_slice(&decode(payload)?)
            .map_err(|e| format!("unreadable claims: {e}"))?;
        self.check_claims(claims)
    }

    fn check_claims(&self, claims: Claims) -> Result<Grant, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if claims.iss.as_deref() != Some(self.issuer.as_str()) {
            return Err(format!("issued by {:?}, not {:?}", claims.iss, self.issuer));
        }
        let audiences = match claims.aud {
            Some(Value::String(one)) => vec![one],
            Some(Value::Array(many)) => many
                .into_iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|a| a == &self.resource) {
            return Err(format!(
                "issued for {audiences:?}, not this resource ({})",
                self.resource
            ));
        }
        match claims.exp {
            Some(exp) if exp + LEEWAY_SECONDS > now => {}
            Some(_) => return Err("expired".into()),
            None => return Err("no expiry (exp)".into()),
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
            return Err("not valid yet (nbf)".into());
        }
        let scopes = match (claims.scope, claims.scp) {
            (Some(scope), _) => scope.split_whitespace().map(str::to_owned).collect(),
            (None, Some(scp)) => scp,
            (None, None) => Vec::new(),
        };
        let name = claims
            .client_id
            .or(claims.azp)
            .or(claims.sub)
            .unwrap_or_else(|| "unnamed OAuth client".into());
        Ok(Grant { name, scopes })
    }

    /// The key `kid` names (the only key when the token names none), fetching the JWKS when
    /// it is not known yet.
    async fn key(&self, kid: Option<&str>) -> Result<Key, String> {
        if let Some(key) = self.known_key(kid) {
            return Ok(key);
        }
        self.refresh().await?;
        self.known_key(kid)
            .ok_or_else(|| format!("no signing key {kid:?} at {}", self.jwks_uri))
    }

    fn known_key(&self, kid: Option<&str>) -> Option<Key> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }

    async fn refresh(&self) -> Result<(), String> {
        {
            let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
            if fetched.is_some_and(|at| at.elapsed() < REFETCH_AFTER) {
                return Ok(());
            }
            *fetched = Some(Instant::now());
        }
        let unreachable = |e: &dyn std::fmt::Display| {
            format!(
                "cannot fetch the authorization server's keys from {}: {e}",
                self.jwks_uri
            )
        };
        let jwks: Jwks = self
            .http
            .get(&self.jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| unreachable(&e))?
            .json()
            .await
            .map_err(|e| unreachable(&e))?;
        let count = self.install(jwks);
        tracing::info!(keys = count, jwks_uri = %self.jwks_uri, "OAuth signing keys fetched");
        Ok(())
    }

    /// Takes the keys of a key set this gateway can check; returns how many.
    fn install(&self, jwks: Jwks) -> usize {
        let keys: HashMap<String, Key> = jwks
            .keys
            .into_iter()
            .filter_map(|jwk| Some((jwk.kid.clone().unwrap_or_default(), jwk.key()?)))
            .collect();
        let count = keys.len();
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = keys;
        count
    }

    /// The key set `document` as if just fetched from `jwks_uri` (for the fuzz targets, which
    /// have no network); an unreadable document leaves no keys.
    #[cfg(fuzzing)]
    pub(super) fn preload(&self, document: &[u8]) {
        *self.fetched.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.install(serde_json::from_slice(document).unwrap_or(Jwks { keys: Vec::new() }));
    }
}

/// `https://host:port/path` → (`https://host:port`, `/path`).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

#[derive(Debug, Deserialize)]
struct JwtHeader {
    alg: String,
    kid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Value>,
    exp: Option<u64>,
    nbf: Option<u64>,
    scope: Option<String>,
    scp: Option<Vec<String>>,
    client_id: Option<String>,
    azp: Option<String>,
    sub: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl Jwk {
    /// The verifying key, for the kinds this gateway checks (EC P-256, RSA); `None` otherwise.
    fn key(&self) -> Option<Key> {
        let decode = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref()?).ok();
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => {
                let mut point = vec![0x04];
                point.extend(crate::tpm::evidence::left_pad_32(&decode(&self.x)?)?);
                point.extend(crate::tpm::evidence::left_pad_32(&decode(&self.y)?)?);
                Some(Key::Es256(point))
            }
            ("RSA", _) => Some(Key::Rs256 {
                n: decode(&self.n)?,
                e: decode(&self.e)?,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_origin;

    #[test]
    fn the_metadata_url_inserts_the_well_known_path_before_the_resource_path() {
        assert_eq!(
            split_origin("https://edge-7.lan:8080/mcp"),
            ("https://edge-7.lan:8080", "/mcp")
        );
        assert_eq!(
            split_origin("https://edge-7.lan"),
            ("https://edge-7.lan", "")
        );
    }
}

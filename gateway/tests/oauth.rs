//! OAuth 2.1 (`[security.oauth]`) against an authorization server on loopback: a real HTTP
//! server publishing its signing keys (JWKS) and a test that mints access tokens with them, as
//! an authorization server's token endpoint would (no authorization server product runs here;
//! the gateway only ever talks to the JWKS endpoint). The gateway serves the RFC 9728 metadata,
//! points unauthenticated clients to it, accepts the server's tokens for the scopes they carry
//! and refuses forged, expired, foreign-audience and foreign-issuer tokens.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::common;
use crate::common::Daemon;

/// An EC P-256 signing key with its key id.
struct SigningKey {
    kid: String,
    pair: EcdsaKeyPair,
}

impl SigningKey {
    fn generate(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            kid: kid.into(),
            pair,
        }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// A signed JWT access token with `claims`.
    fn token(&self, claims: &Value) -> String {
        let header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": self.kid });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// The authorization server's JWKS endpoint: serves whatever keys the test publishes and
/// counts the fetches.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<Mutex<usize>>,
}

impl JwksServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let keys = Arc::new(Mutex::new(Vec::new()));
        let fetches = Arc::new(Mutex::new(0));
        let (served, counted) = (Arc::clone(&keys), Arc::clone(&fetches));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                *counted.lock().unwrap() += 1;
                let body = json!({ "keys": *served.lock().unwrap() }).to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, keys, fetches }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    fn fetches(&self) -> usize {
        *self.fetches.lock().unwrap()
    }
}

const ISSUER: &str = "https://auth.example.net/realms/fleet";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn get_with(daemon: &Daemon, path: &str, token: &str) -> common::Response {
    common::send(
        &mut daemon.connect(),
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\r\n"),
    )
}

#[test]
fn access_tokens_from_the_authorization_server_are_checked() {
    let jwks = JwksServer::start();
    let key = SigningKey::generate("key-1");
    jwks.publish(&[&key]);
    // The resource names the gateway's own address, which is known once it listens: a fixed
    // free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let daemon = Daemon::start(&format!(
        "[gateway]\nbind_address = \"127.0.0.1:{port}\"\n\
         [security.oauth]\nauthorization_server = \"{ISSUER}\"\njwks_uri = \"{}\"\nresource = \"{resource}\"\n",
        jwks.url
    ));

    // RFC 9728: the metadata, open to anyone, at the path-inserted and the plain well-known URL.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let response = daemon.get(path);
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        let metadata = response.json();
        assert_eq!(metadata["resource"], resource.as_str());
        assert_eq!(metadata["authorization_servers"], json!([ISSUER]));
        assert!(metadata["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("mcp")));
        assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    }

    // No token: 401 pointing to the metadata.
    let response = daemon.get("/v1/models");
    assert_eq!(response.status, 401);
    let challenge = response.header("www-authenticate").unwrap().to_owned();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{challenge}"
    );
    assert_eq!(
        jwks.fetches(),
        0,
        "keys are fetched on the first token, not before"
    );

    let claims = |overrides: Value| {
        let mut claims = json!({
            "iss": ISSUER, "aud": resource, "exp": now() + 300, "iat": now(),
            "client_id": "line-display", "scope": "completions mcp",
        });
        for (k, v) in overrides.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let valid = key.token(&claims(json!({})));
    assert_eq!(get_with(&daemon, "/v1/models", &valid).status, 200);
    assert_eq!(jwks.fetches(), 1);
    // A scope the token does not carry.
    let response = get_with(&daemon, "/v1/queue/status", &valid);
    assert_eq!(response.status, 403);
    assert_eq!(response.error_code(), "insufficient_scope");
    assert!(response.body.contains("line-display"), "{}", response.body);
    // An audience list that includes this resource.
    let listed = key.token(&claims(
        json!({ "aud": ["https://other.example", resource] }),
    ));
    assert_eq!(get_with(&daemon, "/v1/models", &listed).status, 200);

    // Refused: each with 401 invalid_token and the reason.
    let forger = SigningKey::generate("key-1");
    let refused = [
        (
            key.token(&claims(json!({ "aud": "https://other.example/mcp" }))),
            "not this resource",
        ),
        (
            key.token(&claims(json!({ "iss": "https://evil.example" }))),
            "issued by",
        ),
        (
            key.token(&claims(json!({ "exp": now() - 3600 }))),
            "expired",
        ),
        (
            key.token(&claims(json!({ "nbf": now() + 3600 }))),
            "not valid yet",
        ),
        (
            forger.token(&claims(json!({}))),
            "signature does not verify",
        ),
        (
            format!(
                "{}.{}.",
                valid.split('.').next().unwrap(),
                valid.split('.').nth(1).unwrap()
            ),
            "signature",
        ),
        ("not-a-jwt".into(), "not a JWT"),
    ];
    for (token, reason) in refused {
        let response = get_with(&daemon, "/v1/models", &token);
        assert_eq!(response.status, 401, "{reason}: {}", response.body);
        assert_eq!(response.error_code(), "invalid_token");
        assert!(
            response.body.contains(reason),
            "{reason}: {}",
            response.body
        );
        let challenge = response.header("www-authenticate").unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }

    // Key rotation at the authorization server: a token signed by a new key makes the gateway
    // fetch the keys again.
    let rotated = SigningKey::generate("key-2");
    jwks.publish(&[&key, &rotated]);
    std::thread::sleep(std::time::Duration::from_secs(11)); // past the refetch interval
    let token = rotated.token(&claims(json!({})));
    assert_eq!(get_with(&daemon, "/v1/models", &token).status, 200);
    assert!(jwks.fetches() >= 2);
}

#[test]
fn the_metadata_is_not_served_without_an_authorization_server() {
    let daemon = Daemon::start("");
    assert_eq!(
        daemon.get("/.well-known/oauth-protected-resource").status,
        404
    );
    assert!(daemon
        .get("/v1/models")
        .header("www-authenticate")
        .is_none());
}

/// An entry in `[[security.clients]]` with `oauth_client` narrows and rate-limits the OAuth
/// client its tokens name, as it would a static client; another OAuth client is not affected.
#[test]
fn an_oauth_client_gets_the_narrowing_and_rate_of_its_entry() {
    let jwks = JwksServer::start();
    let key = SigningKey::generate("key-1");
    jwks.publish(&[&key]);
    let port = common::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let daemon = Daemon::start(&format!(
        "[gateway]\nbind_address = \"127.0.0.1:{port}\"\n{}\
         [security.oauth]\nauthorization_server = \"{ISSUER}\"\njwks_uri = \"{}\"\nresource = \"{resource}\"\n\
         [[security.clients]]\nname = \"display\"\noauth_client = \"line-display\"\n\
         requests_per_minute = 2\ntools = [\"device_info\"]\n",
        common::fixture_device_section(),
        jwks.url
    ));
    let token = |client: &str| {
        key.token(&json!({
            "iss": ISSUER, "aud": resource, "exp": now() + 300, "iat": now(),
            "client_id": client, "scope": "completions mcp",
        }))
    };
    let tools = |token: &str| -> Vec<String> {
        let answer = common::mcp_call(&daemon, token, "tools/list", json!({}));
        answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let display = token("line-display");
    assert_eq!(tools(&display), ["device_info"]);
    assert_eq!(get_with(&daemon, "/v1/models", &display).status, 200);
    let over = get_with(&daemon, "/v1/models", &display);
    assert_eq!(over.status, 429, "{}", over.body);
    assert!(
        over.body.contains("display") && over.body.contains("over its 2 requests per minute"),
        "{}",
        over.body
    );

    let other = token("fleet-manager");
    assert!(tools(&other).len() > 1, "not narrowed");
    for _ in 0..3 {
        assert_eq!(get_with(&daemon, "/v1/models", &other).status, 200);
    }
}

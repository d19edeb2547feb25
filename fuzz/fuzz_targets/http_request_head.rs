//! A request head as the gateway reads it after hyper has parsed it: `Host` and `Origin`
//! against the allowed hosts, the bearer token (a static client's digest, else an OAuth JWT:
//! base64url, its JSON header, the key it names, the signature), the route's scope and the
//! declared `Content-Length`; plus the authorization server's key set, which arrives from the
//! network too. Input: two bytes of key-set length, the key set, then the head as text
//! (`METHOD URI` and `name: value` lines).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::server::fuzzing::HeadChecks;

fuzz_target!(|data: &[u8]| {
    let Some((length, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_le_bytes(*length)).min(rest.len());
    let (jwks, head) = rest.split_at(split);
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let mut lines = head.split('\n');
    let mut request_line = lines.next().unwrap_or_default().splitn(2, ' ');
    let mut builder = http::Request::builder()
        .method(request_line.next().unwrap_or("GET"))
        .uri(request_line.next().unwrap_or("/").trim());
    // What hyper would refuse (bad names or values) never reaches the gateway: skipped.
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.trim().as_bytes()),
                http::HeaderValue::from_str(value.trim()),
            ) {
                builder = builder.header(name, value);
            }
        }
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (head, ()) = request.into_parts();
    static CHECKS: std::sync::OnceLock<HeadChecks> = std::sync::OnceLock::new();
    let status = CHECKS.get_or_init(HeadChecks::default).check(jwks, &head);
    assert!(status == 0 || (400..600).contains(&status), "{status}");
});

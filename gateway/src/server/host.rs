//! DNS-rebinding protection: the `Host` (or HTTP/2 `:authority`) and any `Origin` of a request
//! must name one of `gateway.allowed_hosts`. An entry `"*"` turns the check off.

use http::{header, HeaderMap, StatusCode, Uri};

use super::response::ApiError;

/// The allowed host names, lower-cased, without ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    any: bool,
    names: Vec<String>,
}

impl AllowedHosts {
    pub fn new(names: &[String]) -> Self {
        Self {
            any: names.iter().any(|n| n == "*"),
            names: names
                .iter()
                .map(|n| strip_brackets(&n.to_ascii_lowercase()).to_owned())
                .collect(),
        }
    }

    fn allows(&self, host: &str) -> bool {
        self.any || self.names.iter().any(|n| n.eq_ignore_ascii_case(host))
    }

    /// Checks the request's authority and origin.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        let authority = uri.authority().map(|a| a.host().to_owned()).or_else(|| {
            headers
                .get(header::HOST)?
                .to_str()
                .ok()
                .map(host_of_authority)
        });
        match authority {
            None if !self.any => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "missing_host",
                    "the request has no Host header",
                ))
            }
            Some(host) if !self.allows(strip_brackets(&host)) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "host_not_allowed",
                    format!("Host \"{host}\" is not in gateway.allowed_hosts"),
                ))
            }
            _ => {}
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let host = origin
                .to_str()
                .ok()
                .and_then(|o| o.parse::<Uri>().ok())
                .and_then(|u| u.host().map(str::to_owned));
            let allowed = match &host {
                Some(h) => self.allows(strip_brackets(h)),
                None => self.any,
            };
            if !allowed {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    format!("Origin {origin:?} is not in gateway.allowed_hosts"),
                ));
            }
        }
        Ok(())
    }
}

/// `example.net:8080` → `example.net`; `[::1]:8080` → `[::1]`.
fn host_of_authority(authority: &str) -> String {
    match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => authority[..colon].to_owned(),
        _ => authority.to_owned(),
    }
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        allowed: &[&str],
        host: Option<&str>,
        origin: Option<&str>,
    ) -> Result<(), &'static str> {
        let hosts = AllowedHosts::new(&allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(header::HOST, h.parse().unwrap());
        }
        if let Some(o) = origin {
            headers.insert(header::ORIGIN, o.parse().unwrap());
        }
        hosts
            .check(&Uri::from_static("/health"), &headers)
            .map_err(|e| e.code)
    }

    #[test]
    fn hosts_match_without_port_and_case() {
        assert_eq!(check(&["localhost"], Some("LocalHost:8080"), None), Ok(()));
        assert_eq!(check(&["::1"], Some("[::1]:8080"), None), Ok(()));
        assert_eq!(check(&["127.0.0.1"], Some("127.0.0.1"), None), Ok(()));
        assert_eq!(
            check(&["localhost"], Some("evil.example:8080"), None),
            Err("host_not_allowed")
        );
        assert_eq!(check(&["localhost"], None, None), Err("missing_host"));
        assert_eq!(check(&["*"], Some("anything"), None), Ok(()));
    }

    #[test]
    fn origin_must_be_allowed_too() {
        assert_eq!(
            check(
                &["localhost"],
                Some("localhost"),
                Some("http://localhost:3000")
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &["localhost"],
                Some("localhost"),
                Some("http://evil.example")
            ),
            Err("origin_not_allowed")
        );
        assert_eq!(
            check(&["localhost"], Some("localhost"), Some("null")),
            Err("origin_not_allowed")
        );
    }
}

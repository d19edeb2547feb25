//! `${VAR}` interpolation of string values from the environment.
//!
//! - `${VAR}` takes the variable; if it is not set, loading fails and names it.
//! - `${VAR:-fallback}` takes the fallback when the variable is unset or empty.
//! - `$$` is a literal `$`.
//!
//! Only string values are interpolated, after TOML has parsed them, so a variable's content can
//! never change the structure of the file. The functions here are `deserialize_with` hooks:
//! an error they return carries the position of the value that held the reference.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::Secret;

/// Expands the references in `raw` using `lookup` for variables.
pub(crate) fn expand(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let close = body.find('}').ok_or_else(|| {
                format!("unclosed `${{` in \"{raw}\" (write `$$` for a literal `$`)")
            })?;
            let reference = &body[..close];
            let (name, fallback) = match reference.split_once(":-") {
                Some((name, fallback)) => (name, Some(fallback)),
                None => (reference, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{reference}}}` is not a valid environment variable reference"
                ));
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || fallback.is_none()),
                fallback,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(fallback)) => out.push_str(fallback),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (referenced as `${{{name}}}`)"
                    ))
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn from_env(raw: &str) -> Result<String, String> {
    expand(raw, |name| std::env::var(name).ok())
}

pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = String::deserialize(d)?;
    from_env(&raw).map_err(D::Error::custom)
}

pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    string(d).map(Some)
}

pub(super) fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    string(d).map(PathBuf::from)
}

pub(super) fn opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    path(d).map(Some)
}

pub(super) fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Secret::deserialize(d).map(Some)
}

/// A secret is a string (interpolated) or `{ sealed = "name" }`.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string, or { sealed = \"name\" } for a TPM-sealed secret")
    }

    fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<Secret, E> {
        from_env(raw).map(Secret::new).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        let mut name = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "sealed" {
                return Err(A::Error::custom(format!(
                    "unknown key `{key}`: a secret is a string, or {{ sealed = \"name\" }}"
                )));
            }
            name = Some(map.next_value::<String>()?);
        }
        match name {
            Some(name) if crate::tpm::seal::is_valid_name(&name) => Ok(Secret::sealed(name)),
            Some(name) => Err(A::Error::custom(format!(
                "sealed secret name \"{name}\": use letters, digits, '-' and '_'"
            ))),
            None => Err(A::Error::custom(
                "a sealed secret needs `sealed = \"name\"`",
            )),
        }
    }
}

pub(super) fn string_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| from_env(s))
        .collect::<Result<_, _>>()
        .map_err(D::Error::custom)
}

pub(super) fn path_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    string_vec(d).map(|paths| paths.into_iter().map(PathBuf::from).collect())
}

pub(super) fn secret_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Secret>, D::Error> {
    BTreeMap::<String, Secret>::deserialize(d)
}

pub(super) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = string(d)?;
    text.parse().map_err(|_| {
        D::Error::custom(format!(
            "\"{text}\" is not a socket address; write IP:PORT, for example \"127.0.0.1:8080\" or \"[::]:8080\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("edge-1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_keeps_the_rest() {
        assert_eq!(
            expand("http://${HOST}:80/a", env).as_deref(),
            Ok("http://edge-1:80/a")
        );
        assert_eq!(expand("no refs", env).as_deref(), Ok("no refs"));
        assert_eq!(expand("cost $5", env).as_deref(), Ok("cost $5"));
        assert_eq!(expand("$${HOST}", env).as_deref(), Ok("${HOST}"));
    }

    #[test]
    fn fallback_applies_to_unset_and_empty() {
        assert_eq!(expand("${NOPE:-x}", env).as_deref(), Ok("x"));
        assert_eq!(expand("${EMPTY:-x}", env).as_deref(), Ok("x"));
        assert_eq!(expand("${EMPTY}", env).as_deref(), Ok(""));
        assert_eq!(expand("${HOST:-x}", env).as_deref(), Ok("edge-1"));
    }

    #[test]
    fn missing_variable_is_named() {
        let err = expand("key-${API_TOKEN}", env).unwrap_err();
        assert!(err.contains("`API_TOKEN` is not set"), "{err}");
    }

    #[test]
    fn malformed_references_are_rejected() {
        assert!(expand("${HOST", env).unwrap_err().contains("unclosed"));
        assert!(expand("${}", env).unwrap_err().contains("not a valid"));
        assert!(expand("${A B}", env).unwrap_err().contains("not a valid"));
    }
}

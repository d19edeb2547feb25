//! Which model answers a request: the local model or the cloud. [`PolicyRouter`] is the
//! gateway's policy (`models.routing` and `models.fallback_threshold_ms`); the gateway feeds it
//! the live state of both backends for each turn of a completion and carries the decision out.
//! Pure: the inputs are a snapshot, so the same decision can be made anywhere, a WASM runtime
//! included.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `models.routing`: the default policy between the local model and the cloud. A request may
/// still ask for one backend (`"backend": "local"` or `"cloud"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// The local model when it can answer in time, else the cloud.
    LocalFirst,
    /// The cloud while it is reachable, else the local model.
    CloudFirst,
    /// Never the cloud.
    LocalOnly,
    /// Never the local model.
    CloudOnly,
}

/// Where an answer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    Cloud,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Cloud => "cloud",
        }
    }
}

/// What the router knows when it decides.
#[derive(Debug, Clone, Default)]
pub struct RouteInputs {
    /// The backend the request asked for, if any.
    pub requested: Option<Backend>,
    /// `None` when no local model is loaded.
    pub local: Option<LocalState>,
    /// `None` when no cloud endpoint is configured.
    pub cloud: Option<CloudState>,
}

#[derive(Debug, Clone, Copy)]
pub struct LocalState {
    /// Requests waiting or running.
    pub pending: usize,
    /// Requests that may wait while one runs.
    pub max_queued: usize,
    /// Expected time to the first token of this request's prompt.
    pub estimated_first_token: Option<Duration>,
    /// The power governor has turned local inference off (battery critical).
    pub paused: bool,
}

impl LocalState {
    fn queue_full(&self) -> bool {
        self.pending > self.max_queued
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudState {
    /// False while the circuit breaker is open.
    pub available: bool,
}

/// A decision and the reason for it, in words an operator can read in the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub backend: Backend,
    pub reason: String,
}

/// What to do when the first choice does not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The backend to try next, if any.
    pub to: Option<Backend>,
    /// The first choice must produce its first token within this time, else it is cancelled
    /// and the fallback takes over. `None`: no deadline beyond the request's own.
    pub first_token_deadline: Option<Duration>,
}

/// The routing policy. The default, [`PolicyRouter`], follows `models.routing`; the gateway
/// takes another in its place (`Completions::new`).
pub trait ModelRouter: Send + Sync + std::fmt::Debug {
    /// Whether the local model should take this request, and why.
    fn should_use_local(&self, inputs: &RouteInputs) -> (bool, String);
    /// The backend to try first; `Err` says why neither can answer.
    fn select_model(&self, inputs: &RouteInputs) -> Result<Choice, String>;
    /// Where to go when `first` fails, is busy, or is too slow.
    fn fallback_strategy(&self, inputs: &RouteInputs, first: Backend) -> Fallback;
}

/// The configured policy: `models.routing` and `models.fallback_threshold_ms`.
#[derive(Debug, Clone)]
pub struct PolicyRouter {
    pub routing: Routing,
    pub threshold: Duration,
}

impl PolicyRouter {
    fn cloud_allowed(&self, inputs: &RouteInputs) -> bool {
        inputs.cloud.is_some()
            && self.routing != Routing::LocalOnly
            && inputs.requested != Some(Backend::Local)
    }

    fn local_allowed(&self, inputs: &RouteInputs) -> bool {
        inputs.local.is_some_and(|l| !l.paused)
            && self.routing != Routing::CloudOnly
            && inputs.requested != Some(Backend::Cloud)
    }
}

impl ModelRouter for PolicyRouter {
    fn should_use_local(&self, inputs: &RouteInputs) -> (bool, String) {
        let Some(local) = inputs.local else {
            return (false, "no local model is loaded".into());
        };
        if local.paused {
            return (
                false,
                "the power governor has turned local inference off (battery critical)".into(),
            );
        }
        match self.routing {
            Routing::CloudOnly => return (false, "models.routing is cloud_only".into()),
            Routing::LocalOnly => return (true, "models.routing is local_only".into()),
            _ => {}
        }
        match inputs.requested {
            Some(Backend::Local) => return (true, "the request asked for the local model".into()),
            Some(Backend::Cloud) => return (false, "the request asked for the cloud".into()),
            None => {}
        }
        let cloud_up = inputs.cloud.is_some_and(|c| c.available);
        match self.routing {
            Routing::CloudFirst if cloud_up => {
                return (false, "models.routing is cloud_first".into())
            }
            Routing::CloudFirst => {
                return (
                    true,
                    "models.routing is cloud_first but the cloud is unavailable".into(),
                )
            }
            _ => {}
        }
        if !cloud_up {
            return (true, "local model (no cloud available)".into());
        }
        if local.queue_full() {
            return (
                false,
                format!("the local model is busy ({} requests ahead)", local.pending),
            );
        }
        if let Some(estimate) = local.estimated_first_token {
            if estimate > self.threshold {
                return (
                    false,
                    format!(
                        "the local model would need about {} ms to its first token, over models.fallback_threshold_ms ({} ms)",
                        estimate.as_millis(),
                        self.threshold.as_millis()
                    ),
                );
            }
        }
        (
            true,
            "the local model can answer within models.fallback_threshold_ms".into(),
        )
    }

    fn select_model(&self, inputs: &RouteInputs) -> Result<Choice, String> {
        let (local, reason) = self.should_use_local(inputs);
        if local {
            return Ok(Choice {
                backend: Backend::Local,
                reason,
            });
        }
        if self.cloud_allowed(inputs) {
            return Ok(Choice {
                backend: Backend::Cloud,
                reason,
            });
        }
        if self.local_allowed(inputs) {
            return Ok(Choice {
                backend: Backend::Local,
                reason: format!("{reason}; no cloud may answer"),
            });
        }
        Err(match (inputs.requested, inputs.local.is_some(), inputs.cloud.is_some()) {
            (Some(Backend::Local), false, _) => {
                "the request asked for the local model, but none is loaded (models.model_path)".into()
            }
            (Some(Backend::Cloud), _, false) => {
                "the request asked for the cloud, but no endpoint is configured (models.cloud_endpoint)".into()
            }
            (_, false, false) => {
                "no model is available: configure models.model_path or models.cloud_endpoint".into()
            }
            _ => format!("no backend may answer under models.routing = {:?}: {reason}", self.routing),
        })
    }

    fn fallback_strategy(&self, inputs: &RouteInputs, first: Backend) -> Fallback {
        match first {
            Backend::Local if self.cloud_allowed(inputs) => Fallback {
                to: Some(Backend::Cloud),
                first_token_deadline: Some(self.threshold),
            },
            Backend::Cloud if self.local_allowed(inputs) => Fallback {
                to: Some(Backend::Local),
                first_token_deadline: None,
            },
            _ => Fallback {
                to: None,
                first_token_deadline: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routing: Routing) -> PolicyRouter {
        PolicyRouter {
            routing,
            threshold: Duration::from_millis(500),
        }
    }

    fn local(pending: usize, estimate_ms: u64) -> Option<LocalState> {
        Some(LocalState {
            pending,
            max_queued: 2,
            estimated_first_token: Some(Duration::from_millis(estimate_ms)),
            paused: false,
        })
    }

    const CLOUD: Option<CloudState> = Some(CloudState { available: true });

    fn first(r: &PolicyRouter, inputs: RouteInputs) -> Backend {
        r.select_model(&inputs).unwrap().backend
    }

    #[test]
    fn local_first_keeps_to_the_local_model_while_it_is_fast_and_free() {
        let r = router(Routing::LocalFirst);
        let inputs = |pending, ms| RouteInputs {
            requested: None,
            local: local(pending, ms),
            cloud: CLOUD,
        };
        assert_eq!(first(&r, inputs(0, 100)), Backend::Local);
        assert_eq!(first(&r, inputs(0, 900)), Backend::Cloud, "too slow");
        assert_eq!(first(&r, inputs(3, 100)), Backend::Cloud, "queue full");
        let fallback = r.fallback_strategy(&inputs(0, 100), Backend::Local);
        assert_eq!(fallback.to, Some(Backend::Cloud));
        assert_eq!(
            fallback.first_token_deadline,
            Some(Duration::from_millis(500))
        );
        // Without a cloud the local model takes everything, however slow.
        let alone = RouteInputs {
            cloud: None,
            ..inputs(3, 900)
        };
        assert_eq!(first(&r, alone.clone()), Backend::Local);
        assert_eq!(r.fallback_strategy(&alone, Backend::Local).to, None);
    }

    #[test]
    fn requests_and_policies_that_name_a_backend() {
        let r = router(Routing::LocalFirst);
        let asks = |b| RouteInputs {
            requested: Some(b),
            local: local(0, 100),
            cloud: CLOUD,
        };
        assert_eq!(first(&r, asks(Backend::Cloud)), Backend::Cloud);
        assert_eq!(
            r.fallback_strategy(&asks(Backend::Cloud), Backend::Cloud)
                .to,
            None
        );
        assert_eq!(first(&r, asks(Backend::Local)), Backend::Local);
        let both = RouteInputs {
            requested: None,
            local: local(0, 100),
            cloud: CLOUD,
        };
        assert_eq!(
            first(&router(Routing::CloudFirst), both.clone()),
            Backend::Cloud
        );
        assert_eq!(
            router(Routing::CloudFirst)
                .fallback_strategy(&both, Backend::Cloud)
                .to,
            Some(Backend::Local)
        );
        assert_eq!(
            first(
                &router(Routing::LocalOnly),
                RouteInputs {
                    local: local(5, 9_000),
                    ..both.clone()
                }
            ),
            Backend::Local
        );
        let down = RouteInputs {
            cloud: Some(CloudState { available: false }),
            ..both
        };
        assert_eq!(first(&router(Routing::CloudFirst), down), Backend::Local);
    }

    #[test]
    fn no_backend_is_a_clear_error() {
        let r = router(Routing::LocalFirst);
        let e = r.select_model(&RouteInputs::default()).unwrap_err();
        assert!(
            e.contains("models.model_path or models.cloud_endpoint"),
            "{e}"
        );
        let e = r
            .select_model(&RouteInputs {
                requested: Some(Backend::Cloud),
                local: local(0, 1),
                cloud: None,
            })
            .unwrap_err();
        assert!(e.contains("models.cloud_endpoint"), "{e}");
    }
}

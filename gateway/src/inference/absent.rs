//! The local model in a build without the `local-model` feature (no candle, no tokenizers, no
//! chat templates): a [`LocalModel`] that cannot be loaded. A configuration that names a model
//! gets [`LoadError::NotBuilt`], which says what to change; the methods exist so that callers
//! compile unchanged, and cannot be reached.

use std::convert::Infallible;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::load::{LoadError, LoadOptions, ModelInfo};
use super::request::{ChatMessage, Event, GenerationOptions, SubmitError};

/// No local model: this type has no values. (A struct around `Infallible` rather than an empty
/// enum, so that callers' code after `clone()` is not unreachable to the compiler.)
#[derive(Debug, Clone)]
pub struct LocalModel {
    never: Infallible,
}

impl LocalModel {
    /// `None` when no `models.model_path` is set, else [`LoadError::NotBuilt`].
    pub fn from_config(config: &crate::config::ModelsConfig) -> Result<Option<Self>, LoadError> {
        match config.model_path {
            None => Ok(None),
            Some(_) => Err(LoadError::NotBuilt),
        }
    }

    /// Always [`LoadError::NotBuilt`].
    pub fn load(_options: &LoadOptions, _max_queued: usize) -> Result<Self, LoadError> {
        Err(LoadError::NotBuilt)
    }

    pub fn info(&self) -> &ModelInfo {
        match self.never {}
    }

    pub fn prompt(&self, _messages: &[ChatMessage]) -> Result<Vec<u32>, String> {
        match self.never {}
    }

    pub fn tokenize(&self, _text: &str) -> Result<Vec<u32>, String> {
        match self.never {}
    }

    pub fn load_now(&self) -> (usize, usize) {
        match self.never {}
    }

    pub fn estimate_first_token(&self, _prompt_tokens: usize) -> Option<Duration> {
        match self.never {}
    }

    pub fn retry_after(&self) -> Duration {
        match self.never {}
    }

    pub fn submit(
        &self,
        _prompt: Vec<u32>,
        _options: GenerationOptions,
        _cancel: CancellationToken,
    ) -> Result<mpsc::Receiver<Event>, SubmitError> {
        match self.never {}
    }

    pub async fn warm_up(&self) {
        match self.never {}
    }
}

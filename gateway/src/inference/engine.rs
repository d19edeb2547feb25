//! The local model at work: one thread owns the weights and the KV cache and runs one
//! generation at a time; requests wait in a bounded queue (a full queue is refused, never
//! oversubscribed); tokens stream back as they are produced.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenizers::Tokenizer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::load::{LoadError, LoadOptions, ModelInfo};
use super::model::{self, Loaded, Weights, PREFILL_CHUNK};
use super::request::{
    ChatMessage, Event, FinishReason, GenerationOptions, Outcome, SamplingParams, SubmitError,
};
use super::sampling::Sampler;
use super::stop::{Step, StopMatcher};
use super::template::ChatTemplate;
use super::tokenizer::Detokenizer;

/// Tokens per second measured on this device, refined after every request.
#[derive(Debug, Default)]
struct Speed {
    prefill: AtomicU64,
    decode: AtomicU64,
}

impl Speed {
    fn get(slot: &AtomicU64) -> f64 {
        f64::from_bits(slot.load(Ordering::Relaxed))
    }

    /// Moving average: new measurements count for a quarter.
    fn update(slot: &AtomicU64, measured: f64) {
        if !measured.is_finite() || measured <= 0.0 {
            return;
        }
        let old = Self::get(slot);
        let new = if old > 0.0 {
            old * 0.75 + measured * 0.25
        } else {
            measured
        };
        slot.store(new.to_bits(), Ordering::Relaxed);
    }
}

struct Job {
    prompt: Vec<u32>,
    options: GenerationOptions,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
    queued_at: Instant,
}

/// The local model: cheap to clone, shared by every API that uses it.
#[derive(Clone)]
pub struct LocalModel {
    info: Arc<ModelInfo>,
    tokenizer: Arc<Tokenizer>,
    template: Arc<ChatTemplate>,
    jobs: SyncSender<Job>,
    /// Requests waiting or running.
    pending: Arc<AtomicUsize>,
    max_queued: usize,
    speed: Arc<Speed>,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("info", &self.info)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl LocalModel {
    /// The model `[models]` names, loaded; `None` when no `model_path` is set.
    pub fn from_config(config: &crate::config::ModelsConfig) -> Result<Option<Self>, LoadError> {
        let Some(path) = &config.model_path else {
            return Ok(None);
        };
        let options = LoadOptions {
            name: config.local_model.clone(),
            path: path.clone(),
            tokenizer_path: config.tokenizer_path.clone(),
            max_memory_mb: config.max_memory_mb,
            context_length: config.context_length as usize,
            requantize: config.requantize,
        };
        Self::load(&options, config.max_queued as usize).map(Some)
    }

    /// Loads the model (blocking: reads the whole file) and starts its thread. `max_queued`
    /// requests may wait while one runs.
    pub fn load(options: &LoadOptions, max_queued: usize) -> Result<Self, LoadError> {
        let started = Instant::now();
        let Loaded {
            weights,
            tokenizer,
            template,
            end_ids,
            info,
        } = model::load(options)?;
        let info = Arc::new(info);
        info!(
            model = %info.name,
            path = %info.path.display(),
            quantization = %info.quantization,
            context_length = info.context_length,
            estimated_mb = info.memory.total_mb(),
            tokenizer = info.tokenizer,
            chat_template = info.chat_template,
            load_ms = started.elapsed().as_millis() as u64,
            "local model loaded"
        );
        let tokenizer = Arc::new(tokenizer);
        let (jobs, queue) = sync_channel(max_queued);
        let model = Self {
            info: Arc::clone(&info),
            tokenizer: Arc::clone(&tokenizer),
            template: Arc::new(template),
            jobs,
            pending: Arc::default(),
            max_queued,
            speed: Arc::default(),
        };
        let worker = Worker {
            weights,
            tokenizer,
            end_ids,
            context_length: info.context_length,
            cached: Vec::new(),
            pending: Arc::clone(&model.pending),
            speed: Arc::clone(&model.speed),
        };
        std::thread::Builder::new()
            .name("local-model".into())
            .spawn(move || worker.run(queue))
            .map_err(LoadError::Thread)?;
        Ok(model)
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The prompt tokens for a conversation, through the model's chat template.
    pub fn prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, String> {
        let text = self.template.render(messages)?;
        self.tokenize(&text)
    }

    /// Tokens of raw text (no template).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("cannot tokenize the prompt: {e}"))
    }

    /// Requests waiting or running now, and how many may wait.
    pub fn load_now(&self) -> (usize, usize) {
        (self.pending.load(Ordering::Relaxed), self.max_queued)
    }

    /// Expected time to the first token of a prompt of `prompt_tokens`, from the speeds seen so
    /// far, counting the requests ahead in the queue as one prompt each; `None` before the
    /// first measurement.
    pub fn estimate_first_token(&self, prompt_tokens: usize) -> Option<Duration> {
        let prefill = Speed::get(&self.speed.prefill);
        if prefill <= 0.0 {
            return None;
        }
        let ahead = self.pending.load(Ordering::Relaxed) as f64;
        let seconds = prompt_tokens.max(1) as f64 * (1.0 + ahead) / prefill;
        Some(Duration::from_secs_f64(seconds))
    }

    /// A fair `Retry-After` for a caller refused because the queue is full: the requests
    /// ahead, at the decode speed seen so far, each making a typical answer (256 tokens).
    pub fn retry_after(&self) -> Duration {
        let decode = Speed::get(&self.speed.decode);
        let ahead = self.pending.load(Ordering::Relaxed).max(1) as f64;
        let seconds = if decode > 0.0 {
            ahead * 256.0 / decode
        } else {
            ahead
        };
        Duration::from_secs_f64(seconds.clamp(1.0, 300.0))
    }

    /// Queues a generation. Events arrive on the returned channel; cancelling `cancel` (or
    /// dropping the receiver) stops it at the next token.
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        options: GenerationOptions,
        cancel: CancellationToken,
    ) -> Result<mpsc::Receiver<Event>, SubmitError> {
        if prompt.len() >= self.info.context_length {
            return Err(SubmitError::PromptTooLong {
                prompt_tokens: prompt.len(),
                context_length: self.info.context_length,
            });
        }
        let (events, receiver) = mpsc::channel(256);
        let job = Job {
            prompt,
            options,
            events,
            cancel,
            queued_at: Instant::now(),
        };
        self.pending.fetch_add(1, Ordering::Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(receiver),
            Err(e) => {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::Busy {
                        queued: self.max_queued,
                    },
                    TrySendError::Disconnected(_) => SubmitError::Stopped,
                })
            }
        }
    }

    /// Runs a short prompt once so the first request does not pay for cold caches, and so the
    /// router has a first speed measurement.
    pub async fn warm_up(&self) {
        let Ok(prompt) = self.prompt(&[ChatMessage::new("user", "Hello, who are you?")]) else {
            return;
        };
        let options = GenerationOptions {
            max_tokens: 4,
            stop: Vec::new(),
            sampling: SamplingParams {
                temperature: 0.0,
                ..SamplingParams::default()
            },
            ignore_eos: false,
        };
        let Ok(mut events) = self.submit(prompt, options, CancellationToken::new()) else {
            return;
        };
        while let Some(event) = events.recv().await {
            match event {
                Event::Failed(e) => warn!("local model warm-up failed: {e}"),
                Event::Done(outcome) => info!(
                    prompt_tokens_per_second = Speed::get(&self.speed.prefill).round(),
                    time_to_first_token_ms = outcome.time_to_first_token_ms,
                    "local model warmed up"
                ),
                Event::Text(_) => {}
            }
        }
    }
}

/// The model thread's state.
struct Worker {
    weights: Weights,
    tokenizer: Arc<Tokenizer>,
    /// Ids that end an answer.
    end_ids: Vec<u32>,
    context_length: usize,
    /// Tokens whose keys and values are in the model's cache, in order.
    cached: Vec<u32>,
    pending: Arc<AtomicUsize>,
    speed: Arc<Speed>,
}

impl Worker {
    fn run(mut self, queue: Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            let events = job.events.clone();
            let event = match self.generate(job) {
                Ok(outcome) => {
                    debug!(?outcome, "generation finished");
                    Event::Done(outcome)
                }
                Err(e) => {
                    // The cache may hold a half-written step; start the next request afresh.
                    let _ = self.weights.clear_kv_cache();
                    self.cached.clear();
                    Event::Failed(e)
                }
            };
            let _ = events.blocking_send(event);
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn generate(&mut self, job: Job) -> Result<Outcome, String> {
        let started = Instant::now();
        let queue_ms = (started - job.queued_at).as_millis() as u64;
        let context_length = self.context_length;
        let prompt = job.prompt;
        let mut outcome = Outcome {
            finish: FinishReason::Cancelled,
            prompt_tokens: prompt.len(),
            cached_tokens: 0,
            completion_tokens: 0,
            queue_ms,
            time_to_first_token_ms: 0,
            decode_tokens_per_second: 0.0,
        };
        let cancelled = || job.cancel.is_cancelled() || job.events.is_closed();
        if cancelled() {
            return Ok(outcome);
        }

        // Prompt caching: when the cache holds a prefix of this prompt (the previous turn of
        // the same conversation), only the rest is computed.
        let reuse = self.cached.len() < prompt.len() && prompt.starts_with(&self.cached);
        let mut position = if reuse { self.cached.len() } else { 0 };
        if position == 0 {
            self.weights
                .clear_kv_cache()
                .map_err(|e| format!("local model failed: {e}"))?;
            self.cached.clear();
        }
        outcome.cached_tokens = position;

        let mut logits = None;
        for chunk in prompt[position..].chunks(PREFILL_CHUNK) {
            if cancelled() {
                return Ok(outcome);
            }
            logits = Some(
                self.weights
                    .forward(chunk, position)
                    .map_err(|e| format!("local model failed: {e}"))?,
            );
            position += chunk.len();
            self.cached.extend_from_slice(chunk);
        }
        let Some(mut logits) = logits else {
            return Err("empty prompt".into());
        };
        let prefill_time = started.elapsed();
        Speed::update(
            &self.speed.prefill,
            (prompt.len() - outcome.cached_tokens) as f64 / prefill_time.as_secs_f64(),
        );

        let max_tokens = job.options.max_tokens.min(context_length - prompt.len());
        let mut sampler = Sampler::new(&job.options.sampling);
        let mut stops = StopMatcher::new(&job.options.stop);
        let mut text = Detokenizer::default();
        let mut history = prompt;
        let mut first_token_at = None;
        outcome.finish = FinishReason::Length;
        while outcome.completion_tokens < max_tokens {
            let token = sampler
                .next(&logits, &history)
                .map_err(|e| format!("sampling failed: {e}"))?;
            first_token_at.get_or_insert_with(Instant::now);
            if !job.options.ignore_eos && self.end_ids.contains(&token) {
                outcome.finish = FinishReason::Stop;
                break;
            }
            outcome.completion_tokens += 1;
            history.push(token);
            let piece = text.push(&self.tokenizer, token)?;
            let (piece, stopped) = match stops.push(&piece) {
                Step::Emit(piece) => (piece, false),
                Step::Stop(piece) => (piece, true),
            };
            if !piece.is_empty() && job.events.blocking_send(Event::Text(piece)).is_err() {
                outcome.finish = FinishReason::Cancelled;
                break;
            }
            if stopped {
                outcome.finish = FinishReason::Stop;
                break;
            }
            if cancelled() {
                outcome.finish = FinishReason::Cancelled;
                break;
            }
            if outcome.completion_tokens == max_tokens {
                break;
            }
            logits = self
                .weights
                .forward(&[token], position)
                .map_err(|e| format!("local model failed: {e}"))?;
            position += 1;
            self.cached.push(token);
        }
        let rest = stops.finish();
        if !rest.is_empty() {
            let _ = job.events.blocking_send(Event::Text(rest));
        }

        let first = first_token_at.unwrap_or_else(Instant::now);
        outcome.time_to_first_token_ms = (first - started).as_millis() as u64;
        let decode_time = first.elapsed().as_secs_f64();
        if outcome.completion_tokens > 1 && decode_time > 0.0 {
            outcome.decode_tokens_per_second = (outcome.completion_tokens - 1) as f64 / decode_time;
            Speed::update(&self.speed.decode, outcome.decode_tokens_per_second);
        }
        Ok(outcome)
    }
}

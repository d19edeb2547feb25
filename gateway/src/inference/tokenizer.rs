//! The tokenizer of a model: its `tokenizer.json` when one is present, else rebuilt from the
//! vocabulary, merges and token types stored in the GGUF file.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::Tokenizer;

/// Token strings that end a turn in the chat formats the gateway knows (ChatML, Llama 3,
/// Gemma). The model's own end-of-sequence id is always one too.
const END_OF_TURN: [&str; 4] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"];

/// Reads `tokenizer.json`.
pub fn from_file(path: &Path) -> Result<Tokenizer, String> {
    Tokenizer::from_file(path).map_err(|e| format!("cannot read tokenizer {}: {e}", path.display()))
}

/// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`). candle reads the BPE
/// vocabulary, merges and special tokens; the pre-tokenizer is then set from
/// `tokenizer.ggml.pre` for the families whose Hugging Face tokenizer differs from candle's
/// default (SmolLM: digits split one by one, then byte-level without a prefix space).
pub fn from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, String> {
    let mut tokenizer = Tokenizer::from_gguf(content)
        .map_err(|e| format!("cannot build the tokenizer from the GGUF metadata: {e}"))?;
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str);
    if pre == Some("smollm") {
        let byte_level = ByteLevel::new(false, true, true);
        tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            byte_level.into(),
        ])));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    }
    Ok(tokenizer)
}

/// The ids that end generation: the end-of-sequence id from the GGUF metadata when given, and
/// whichever end-of-turn tokens the vocabulary has.
pub fn end_ids(tokenizer: &Tokenizer, eos_id: Option<u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = END_OF_TURN
        .iter()
        .filter_map(|t| tokenizer.token_to_id(t))
        .collect();
    ids.extend(eos_id);
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Turns a growing list of generated ids into text pieces as they become whole characters:
/// a multi-byte character split across tokens is held back until its last byte arrives.
#[derive(Debug, Default)]
pub struct Detokenizer {
    ids: Vec<u32>,
    emitted: usize,
}

impl Detokenizer {
    /// Adds one id; returns the new text it completes, if any.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String, String> {
        self.ids.push(id);
        let text = tokenizer
            .decode(&self.ids, true)
            .map_err(|e| format!("cannot decode generated tokens: {e}"))?;
        if text.ends_with('\u{FFFD}') || text.len() < self.emitted {
            return Ok(String::new());
        }
        let piece = text.get(self.emitted..).unwrap_or_default().to_owned();
        self.emitted = text.len();
        Ok(piece)
    }
}

//! A stored offline-queue entry as the gateway reads it back: the codec's name (first byte
//! picks lz4 or none) and the stored bytes, decoded and parsed as the JSON payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_core::codec::Codec;

fuzz_target!(|data: &[u8]| {
    let Some((first, stored)) = data.split_first() else {
        return;
    };
    let codec = if first & 1 == 0 {
        Codec::Lz4
    } else {
        Codec::None
    };
    if let Ok(raw) = codec.decode(stored) {
        let _ = serde_json::from_slice::<serde_json::Value>(&raw);
    }
});

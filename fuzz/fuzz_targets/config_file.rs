//! A configuration file: TOML syntax, types, interpolation and every validation rule. A broken
//! file is an error naming the file, line and key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = mcp_edge_gateway::Config::from_toml(text, "fuzz.toml") {
            // The message (with its excerpt of the file) is built without panicking.
            let _ = e.to_string();
        }
    }
});

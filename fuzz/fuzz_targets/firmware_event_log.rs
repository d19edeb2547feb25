//! The firmware's TCG2 event log (binary_bios_measurements), which attestation evidence carries
//! and `attest verify` replays: parsed, then replayed into PCR values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_edge_gateway::tpm::eventlog::parse_firmware_log;

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = parse_firmware_log(data) {
        let _ = log.replay();
    }
});

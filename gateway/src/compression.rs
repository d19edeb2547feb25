//! zstd for queued payloads and telemetry batches, when the build has it: the `compression`
//! feature, which links the zstd C library (docs/FEATURES.md). lz4 (pure Rust) and no
//! compression are in every build. A build without zstd defaults to lz4, refuses
//! `compression = "zstd"` in its configuration, and reads data another build wrote with zstd
//! as an error that names the feature.

/// What a build without zstd says when asked for it.
pub const ZSTD_NOT_BUILT: &str = "this mcp-gateway was built without zstd (the `compression` feature): use \"lz4\" or \"none\", or install a build with it";

/// `raw` compressed at `level`.
pub fn zstd_encode(raw: &[u8], level: i32) -> Result<Vec<u8>, String> {
    #[cfg(feature = "compression")]
    return zstd::encode_all(raw, level).map_err(|e| format!("zstd: {e}"));
    #[cfg(not(feature = "compression"))]
    return Err(format!(
        "zstd at level {level} for {} bytes: {ZSTD_NOT_BUILT}",
        raw.len()
    ));
}

/// `bytes` decompressed.
pub fn zstd_decode(bytes: &[u8]) -> Result<Vec<u8>, String> {
    #[cfg(feature = "compression")]
    return zstd::decode_all(bytes).map_err(|e| format!("zstd: {e}"));
    #[cfg(not(feature = "compression"))]
    return Err(format!("{} bytes of zstd: {ZSTD_NOT_BUILT}", bytes.len()));
}

//! Quantized matrix × vector products for the local model: weights in GGUF's 32-value blocks
//! (Q4_0, Q4_1, Q8_0), kept at their stored size, against activations quantized to 8-bit
//! blocks that also carry their sum (ggml's Q8_1), the way llama.cpp runs them.
//!
//! The kernel is picked at run time, once: AVX2 + FMA where the CPU has them, else portable
//! Rust that the compiler vectorises for the build's baseline (SSE2 on x86_64, NEON on
//! aarch64). So one portable binary runs at AVX2 speed on the CPUs that have it and still runs
//! on the Atom-class parts and QEMU CPUs that do not (docs/BENCHMARKS.md).
//!
//! Block scales are converted from f16 to f32 at load, so the hot loop does no conversions.

use rayon::prelude::*;

/// Values per quantized block, in every format here.
pub const BLOCK: usize = 32;

/// Rows one parallel task computes: big enough that scheduling is noise, small enough that two
/// threads share a 192-row matrix evenly.
const ROWS_PER_TASK: usize = 32;

/// How a matrix's values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// 4-bit unsigned values with a scale and an offset per block: `scale × q + min`
    /// (GGUF's Q4_1; Q4_0 is the same with `min = −8 × scale`). 16 bytes per block.
    Nibbles,
    /// 8-bit signed values with a scale per block (GGUF's Q8_0). 32 bytes per block.
    Bytes,
}

/// A GGUF weight format these kernels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufBlocks {
    Q4_0,
    Q4_1,
    Q8_0,
}

impl GgufBlocks {
    /// Bytes of one block in the file.
    fn stored_bytes(self) -> usize {
        match self {
            GgufBlocks::Q4_0 => 18,
            GgufBlocks::Q4_1 => 20,
            GgufBlocks::Q8_0 => 34,
        }
    }

    /// Bytes of one block in memory here (scales widened to f32).
    pub fn loaded_bytes(self) -> usize {
        match self {
            GgufBlocks::Q4_0 | GgufBlocks::Q4_1 => 16 + 8,
            GgufBlocks::Q8_0 => 32 + 4,
        }
    }
}

/// A quantized weight matrix, `rows × columns`, stored row by row in blocks.
pub struct QMatrix {
    storage: Storage,
    rows: usize,
    columns: usize,
    scales: Vec<f32>,
    /// Per block offsets; empty for [`Storage::Bytes`].
    mins: Vec<f32>,
    quants: Vec<u8>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("storage", &self.storage)
            .field("rows", &self.rows)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl QMatrix {
    /// The matrix from a GGUF tensor's bytes (`rows` rows of `columns` values).
    pub fn from_gguf(
        format: GgufBlocks,
        rows: usize,
        columns: usize,
        data: &[u8],
    ) -> Result<Self, String> {
        if !columns.is_multiple_of(BLOCK) {
            return Err(format!("{columns} columns is not a multiple of {BLOCK}"));
        }
        let blocks = rows * columns / BLOCK;
        if data.len() != blocks * format.stored_bytes() {
            return Err(format!(
                "{} bytes for {rows}x{columns} {format:?} values, expected {}",
                data.len(),
                blocks * format.stored_bytes()
            ));
        }
        let f16_at =
            |block: &[u8], at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
        let mut scales = Vec::with_capacity(blocks);
        let mut mins = Vec::new();
        let quant_bytes = match format {
            GgufBlocks::Q8_0 => 32,
            _ => 16,
        };
        let mut quants = Vec::with_capacity(blocks * quant_bytes);
        for block in data.chunks_exact(format.stored_bytes()) {
            let scale = f16_at(block, 0);
            scales.push(scale);
            match format {
                GgufBlocks::Q4_0 => {
                    mins.push(-8.0 * scale);
                    quants.extend_from_slice(&block[2..]);
                }
                GgufBlocks::Q4_1 => {
                    mins.push(f16_at(block, 2));
                    quants.extend_from_slice(&block[4..]);
                }
                GgufBlocks::Q8_0 => quants.extend_from_slice(&block[2..]),
            }
        }
        let storage = match format {
            GgufBlocks::Q8_0 => Storage::Bytes,
            _ => Storage::Nibbles,
        };
        Ok(Self {
            storage,
            rows,
            columns,
            scales,
            mins,
            quants,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Row `row` as f32 values (an embedding lookup).
    pub fn row(&self, row: usize, out: &mut [f32]) {
        let blocks = self.columns / BLOCK;
        for (b, values) in out.chunks_exact_mut(BLOCK).enumerate() {
            let block = row * blocks + b;
            let scale = self.scales[block];
            match self.storage {
                Storage::Nibbles => {
                    let q = &self.quants[block * 16..block * 16 + 16];
                    let min = self.mins[block];
                    for j in 0..16 {
                        values[j] = scale * f32::from(q[j] & 15) + min;
                        values[j + 16] = scale * f32::from(q[j] >> 4) + min;
                    }
                }
                Storage::Bytes => {
                    let q = &self.quants[block * 32..block * 32 + 32];
                    for (v, &q) in values.iter_mut().zip(q) {
                        *v = scale * f32::from(q as i8);
                    }
                }
            }
        }
    }

    /// The dot product of row `row` with `x` on `kernel`, which must be [`kernel()`] or
    /// [`Kernel::Portable`].
    fn dot(&self, kernel: Kernel, row: usize, x: &QVector) -> f32 {
        let blocks = self.columns / BLOCK;
        let range = row * blocks..(row + 1) * blocks;
        match self.storage {
            Storage::Nibbles => dot_nibbles(
                kernel,
                &self.scales[range.clone()],
                &self.mins[range.clone()],
                &self.quants[range.start * 16..range.end * 16],
                x,
            ),
            Storage::Bytes => dot_bytes(
                kernel,
                &self.scales[range.clone()],
                &self.quants[range.start * 32..range.end * 32],
                x,
            ),
        }
    }
}

/// Activations quantized to 8-bit blocks: `scale × q`, with `scale × Σq` per block.
#[derive(Debug, Default)]
pub struct QVector {
    scales: Vec<f32>,
    sums: Vec<f32>,
    quants: Vec<i8>,
}

impl QVector {
    /// Quantizes `values` (a multiple of [`BLOCK`] long), reusing this vector's memory.
    pub fn quantize(&mut self, values: &[f32]) {
        let blocks = values.len() / BLOCK;
        self.scales.clear();
        self.sums.clear();
        self.quants.clear();
        self.quants.resize(blocks * BLOCK, 0);
        for (block, out) in values
            .chunks_exact(BLOCK)
            .zip(self.quants.chunks_exact_mut(BLOCK))
        {
            let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = max / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for (q, v) in out.iter_mut().zip(block) {
                // Round half away from zero, as ggml does, without a libm call.
                let scaled = v * inverse;
                let rounded = (scaled + 0.5f32.copysign(scaled)) as i32;
                *q = rounded as i8;
                sum += rounded;
            }
            self.scales.push(scale);
            self.sums.push(scale * sum as f32);
        }
    }
}

/// `out[r] = matrix[r] · x` for every row, the rows shared among the thread pool.
pub fn matvec(matrix: &QMatrix, x: &QVector, out: &mut [f32]) {
    matvecs(&mut [(matrix, out)], x);
}

/// Several [`matvec`]s on the same input in one parallel pass (q, k and v; gate and up).
pub fn matvecs(products: &mut [(&QMatrix, &mut [f32])], x: &QVector) {
    let mut tasks = Vec::new();
    for (matrix, out) in products.iter_mut() {
        debug_assert_eq!(out.len(), matrix.rows);
        debug_assert_eq!(x.quants.len(), matrix.columns);
        for (i, chunk) in out.chunks_mut(ROWS_PER_TASK).enumerate() {
            tasks.push((*matrix, i * ROWS_PER_TASK, chunk));
        }
    }
    let kernel = kernel();
    tasks.into_par_iter().for_each(|(matrix, first, out)| {
        for (i, value) in out.iter_mut().enumerate() {
            *value = matrix.dot(kernel, first + i, x);
        }
    });
}

/// `out[t][r] = matrix[r] · xs[t]` for several inputs (a prompt's tokens): each row is read
/// once for all of them. `out` holds `xs.len()` rows of `matrix.rows()` values.
pub fn matmul(matrix: &QMatrix, xs: &[QVector], out: &mut [f32]) {
    let rows = matrix.rows;
    let kernel = kernel();
    let mut by_row = vec![0f32; rows * xs.len()];
    by_row
        .par_chunks_mut(ROWS_PER_TASK * xs.len())
        .enumerate()
        .for_each(|(task, chunk)| {
            for (i, values) in chunk.chunks_exact_mut(xs.len()).enumerate() {
                let row = task * ROWS_PER_TASK + i;
                for (value, x) in values.iter_mut().zip(xs) {
                    *value = matrix.dot(kernel, row, x);
                }
            }
        });
    for (row, values) in by_row.chunks_exact(xs.len()).enumerate() {
        for (t, value) in values.iter().enumerate() {
            out[t * rows + row] = *value;
        }
    }
}

/// Which kernel this CPU runs, decided once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// The kernel [`matvec`] uses on this CPU; `MCP_EDGE_KERNEL=portable` forces the portable one
/// (for comparing them; the gateway also reads `MCP_EDGE_KERNEL=candle`, which runs the model
/// on candle instead of this crate).
pub fn kernel() -> Kernel {
    static KERNEL: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| {
        if std::env::var("MCP_EDGE_KERNEL").as_deref() == Ok("portable") {
            return Kernel::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Kernel::Avx2;
        }
        Kernel::Portable
    })
}

fn dot_nibbles(kernel: Kernel, scales: &[f32], mins: &[f32], quants: &[u8], x: &QVector) -> f32 {
    match kernel {
        // SAFETY: kernel() returns Avx2 only when the CPU has AVX2 and FMA, and tests pass
        // Avx2 only where kernel() does.
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        Kernel::Avx2 => unsafe { avx2::dot_nibbles(scales, mins, quants, x) },
        Kernel::Portable => portable::dot_nibbles(scales, mins, quants, x),
    }
}

fn dot_bytes(kernel: Kernel, scales: &[f32], quants: &[u8], x: &QVector) -> f32 {
    match kernel {
        // SAFETY: as in dot_nibbles.
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        Kernel::Avx2 => unsafe { avx2::dot_bytes(scales, quants, x) },
        Kernel::Portable => portable::dot_bytes(scales, quants, x),
    }
}

mod portable {
    //! Written so that the compiler vectorises them for the target's base level: blocks as
    //! fixed-size arrays, 16-bit products (15 × 128 and 127 × 128 fit), one 32-bit sum per
    //! block.
    use super::{QVector, BLOCK};

    pub fn dot_nibbles(scales: &[f32], mins: &[f32], quants: &[u8], x: &QVector) -> f32 {
        let (quants, _) = quants.as_chunks::<16>();
        let (activations, _) = x.quants.as_chunks::<BLOCK>();
        let mut total = 0f32;
        let blocks = quants.iter().zip(activations).zip(scales.iter().zip(mins));
        for (((q, xq), (scale, min)), (x_scale, x_sum)) in blocks.zip(x.scales.iter().zip(&x.sums))
        {
            let mut sum = 0i32;
            for j in 0..16 {
                sum += i32::from(i16::from(q[j] & 15)) * i32::from(i16::from(xq[j]))
                    + i32::from(i16::from(q[j] >> 4)) * i32::from(i16::from(xq[j + 16]));
            }
            total += scale * x_scale * sum as f32 + min * x_sum;
        }
        total
    }

    pub fn dot_bytes(scales: &[f32], quants: &[u8], x: &QVector) -> f32 {
        let (quants, _) = quants.as_chunks::<BLOCK>();
        let (activations, _) = x.quants.as_chunks::<BLOCK>();
        let mut total = 0f32;
        let blocks = quants
            .iter()
            .zip(activations)
            .zip(scales.iter().zip(&x.scales));
        for ((q, xq), (scale, x_scale)) in blocks {
            let mut sum = 0i32;
            for j in 0..BLOCK {
                sum += i32::from(i16::from(q[j] as i8) * i16::from(xq[j]));
            }
            total += scale * x_scale * sum as f32;
        }
        total
    }
}

// The one place this workspace uses `unsafe`: SIMD intrinsics, called only after the CPU
// was found to have them (`kernel()`), on slices whose lengths each function asserts first.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::QVector;

    /// The sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum(v: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(quarter, _mm_movehdup_ps(quarter)))
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; `quants` holds 16 bytes per scale, `x` 32 values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_nibbles(scales: &[f32], mins: &[f32], quants: &[u8], x: &QVector) -> f32 {
        let blocks = scales.len();
        assert!(mins.len() == blocks && quants.len() == blocks * 16);
        assert!(x.quants.len() >= blocks * 32 && x.scales.len() >= blocks);
        let low_nibble = _mm_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut offsets = 0f32;
        for b in 0..blocks {
            let packed = _mm_loadu_si128(quants.as_ptr().add(b * 16).cast());
            let low = _mm_and_si128(packed, low_nibble);
            let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibble);
            let w = _mm256_set_m128i(high, low);
            let a = _mm256_loadu_si256(x.quants.as_ptr().add(b * 32).cast());
            // u8 × i8 pairs summed to i16 (at most 2 × 15 × 128: no saturation), then to i32.
            let products = _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones);
            let scale = _mm256_set1_ps(*scales.get_unchecked(b) * *x.scales.get_unchecked(b));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(products), scale, acc);
            offsets += *mins.get_unchecked(b) * *x.sums.get_unchecked(b);
        }
        sum(acc) + offsets
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; `quants` holds 32 bytes per scale, `x` 32 values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_bytes(scales: &[f32], quants: &[u8], x: &QVector) -> f32 {
        let blocks = scales.len();
        assert!(quants.len() == blocks * 32);
        assert!(x.quants.len() >= blocks * 32 && x.scales.len() >= blocks);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for b in 0..blocks {
            let w = _mm256_loadu_si256(quants.as_ptr().add(b * 32).cast());
            let a = _mm256_loadu_si256(x.quants.as_ptr().add(b * 32).cast());
            // maddubs wants its first operand unsigned: |w| × (a with w's sign).
            let products = _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w)),
                ones,
            );
            let scale = _mm256_set1_ps(*scales.get_unchecked(b) * *x.scales.get_unchecked(b));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(products), scale, acc);
        }
        sum(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(seed: u32, n: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A matrix's GGUF bytes: random blocks in `format`, raw bytes included as the file has
    /// them (0xff and 0x80 among the Q8_0 values, nibble 15 in the 4-bit ones).
    fn gguf_bytes(format: GgufBlocks, blocks: usize, seed: u32) -> Vec<u8> {
        let noise = values(seed, blocks * 40);
        let mut data = Vec::new();
        for b in 0..blocks {
            let n = &noise[b * 40..];
            let scale = half::f16::from_f32(n[0] * 0.05);
            data.extend_from_slice(&scale.to_le_bytes());
            if format == GgufBlocks::Q4_1 {
                data.extend_from_slice(&half::f16::from_f32(n[1] * 0.3).to_le_bytes());
            }
            let count = if format == GgufBlocks::Q8_0 { 32 } else { 16 };
            for j in 0..count {
                data.push(((n[2 + j] + 1.0) * 127.99) as u8);
            }
        }
        data
    }

    fn reference_dot(matrix: &QMatrix, row: usize, x: &QVector) -> f64 {
        let mut values = vec![0f32; matrix.columns];
        matrix.row(row, &mut values);
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let block = i / BLOCK;
                f64::from(*v) * f64::from(x.scales[block]) * f64::from(x.quants[i])
            })
            .sum()
    }

    #[test]
    fn every_kernel_agrees_with_the_dequantized_product() {
        for format in [GgufBlocks::Q4_0, GgufBlocks::Q4_1, GgufBlocks::Q8_0] {
            let (rows, columns) = (70, 576);
            let data = gguf_bytes(format, rows * columns / BLOCK, 7);
            let matrix = QMatrix::from_gguf(format, rows, columns, &data).unwrap();
            let mut x = QVector::default();
            x.quantize(&values(11, columns));
            let mut out = vec![0f32; rows];
            matvec(&matrix, &x, &mut out);
            for (row, got) in out.iter().enumerate() {
                let want = reference_dot(&matrix, row, &x);
                let portable = f64::from(matrix.dot(Kernel::Portable, row, &x));
                let tolerance = 1e-4 * want.abs().max(1.0);
                assert!(
                    (f64::from(*got) - want).abs() < tolerance,
                    "{format:?} row {row}: {got} vs {want}"
                );
                assert!(
                    (portable - want).abs() < tolerance,
                    "{format:?} row {row}: portable {portable} vs {want}"
                );
            }
        }
    }

    #[test]
    fn a_prompts_products_equal_one_token_at_a_time() {
        let (rows, columns) = (100, 64);
        let data = gguf_bytes(GgufBlocks::Q4_1, rows * columns / BLOCK, 3);
        let matrix = QMatrix::from_gguf(GgufBlocks::Q4_1, rows, columns, &data).unwrap();
        let xs: Vec<QVector> = (0..5)
            .map(|t| {
                let mut x = QVector::default();
                x.quantize(&values(20 + t, columns));
                x
            })
            .collect();
        let mut together = vec![0f32; rows * xs.len()];
        matmul(&matrix, &xs, &mut together);
        for (t, x) in xs.iter().enumerate() {
            let mut alone = vec![0f32; rows];
            matvec(&matrix, x, &mut alone);
            assert_eq!(&together[t * rows..(t + 1) * rows], &alone[..]);
        }
    }

    #[test]
    fn quantizing_keeps_values_within_half_a_step() {
        let input = values(5, 64);
        let mut x = QVector::default();
        x.quantize(&input);
        for (i, v) in input.iter().enumerate() {
            let scale = x.scales[i / BLOCK];
            let back = scale * f32::from(x.quants[i]);
            assert!(
                (back - v).abs() <= scale * 0.5 + 1e-6,
                "{v} came back as {back}"
            );
        }
        let sum: f32 = x.quants[..32].iter().map(|q| f32::from(*q)).sum::<f32>() * x.scales[0];
        assert!((x.sums[0] - sum).abs() < 1e-4);
        x.quantize(&[0.0; 32]);
        assert_eq!((x.scales[0], x.sums[0]), (0.0, 0.0));
    }

    #[test]
    fn a_tensor_of_the_wrong_size_is_refused() {
        let err = QMatrix::from_gguf(GgufBlocks::Q4_1, 2, 64, &[0; 79])
            .err()
            .unwrap();
        assert!(err.contains("expected 80"), "{err}");
        let err = QMatrix::from_gguf(GgufBlocks::Q8_0, 2, 48, &[])
            .err()
            .unwrap();
        assert!(err.contains("not a multiple of 32"), "{err}");
    }
}

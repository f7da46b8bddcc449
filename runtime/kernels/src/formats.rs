//! GGUF/ggml weight block formats, byte for byte as ggml lays them out, and the reference
//! dequantisation of each to f32 (what tests compare every fast kernel against).
//!
//! Weights are kept as raw little-endian block bytes (never cast to structs), so a row slice
//! taken straight from a GGUF tensor works at any alignment.

use half::f16;

/// Values per block of the 32-wide formats.
pub const QK: usize = 32;
/// Values per super-block of the K-quants.
pub const QK_K: usize = 256;

/// A weight storage format the kernels understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    /// f16 d; 16 bytes of nibbles; x = (q - 8) * d.
    Q4_0,
    /// f16 d, f16 m; 16 bytes of nibbles; x = q * d + m.
    Q4_1,
    /// f16 d; 32 i8; x = q * d.
    Q8_0,
    /// f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles (256 values).
    Q4K,
    /// As Q4K plus 32 bytes of high bits (5-bit values).
    Q5K,
    /// 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 i8 scales, f16 d (6-bit values).
    Q6K,
    /// Plain f16 values.
    F16,
}

impl WeightFormat {
    /// Values per block.
    pub const fn block_len(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q8_0 => QK,
            Self::Q4K | Self::Q5K | Self::Q6K => QK_K,
            Self::F16 => 1,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
            Self::F16 => 2,
        }
    }

    /// Bytes of one row of `cols` values (`cols` must be a multiple of `block_len`).
    pub const fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_len() * self.block_bytes()
    }
}

#[inline(always)]
pub(crate) fn rd_f16(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K
/// super-block, packed in 12 bytes.
#[inline(always)]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Dequantises one row of `format` blocks (`row.len()` a whole number of blocks) into `out`.
pub fn dequantize_row(format: WeightFormat, row: &[u8], out: &mut [f32]) {
    let bb = format.block_bytes();
    let bl = format.block_len();
    for (blk, dst) in row.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
        match format {
            WeightFormat::Q4_0 => deq_q4_0(blk, dst),
            WeightFormat::Q4_1 => deq_q4_1(blk, dst),
            WeightFormat::Q8_0 => deq_q8_0(blk, dst),
            WeightFormat::Q4K => deq_q4k(blk, dst),
            WeightFormat::Q5K => deq_q5k(blk, dst),
            WeightFormat::Q6K => deq_q6k(blk, dst),
            WeightFormat::F16 => dst[0] = rd_f16(blk, 0),
        }
    }
}

fn deq_q4_0(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, 0);
    for j in 0..16 {
        y[j] = (i32::from(b[2 + j] & 0xF) - 8) as f32 * d;
        y[j + 16] = (i32::from(b[2 + j] >> 4) - 8) as f32 * d;
    }
}

fn deq_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (rd_f16(b, 0), rd_f16(b, 2));
    for j in 0..16 {
        y[j] = f32::from(b[4 + j] & 0xF) * d + m;
        y[j + 16] = f32::from(b[4 + j] >> 4) * d + m;
    }
}

fn deq_q8_0(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, 0);
    for j in 0..32 {
        y[j] = f32::from(b[2 + j] as i8) * d;
    }
}

fn deq_q4k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (rd_f16(b, 0), rd_f16(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for j in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * j, scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
        let (d1, mn1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, mn2) = (d * f32::from(sc2), dmin * f32::from(m2));
        let q = &qs[32 * j..32 * j + 32];
        for l in 0..32 {
            y[64 * j + l] = d1 * f32::from(q[l] & 0xF) - mn1;
            y[64 * j + 32 + l] = d2 * f32::from(q[l] >> 4) - mn2;
        }
    }
}

fn deq_q5k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (rd_f16(b, 0), rd_f16(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for j in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * j, scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
        let (d1, mn1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, mn2) = (d * f32::from(sc2), dmin * f32::from(m2));
        let (u1, u2) = (1u8 << (2 * j), 2u8 << (2 * j));
        let q = &qs[32 * j..32 * j + 32];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[64 * j + l] = d1 * f32::from((q[l] & 0xF) + h1) - mn1;
            y[64 * j + 32 + l] = d2 * f32::from((q[l] >> 4) + h2) - mn2;
        }
    }
}

fn deq_q6k(b: &[u8], y: &mut [f32]) {
    let d = rd_f16(b, 208);
    for half in 0..2 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = i32::from((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            let q2 = i32::from((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * f32::from(sc[is] as i8) * q1 as f32;
            y[l + 32] = d * f32::from(sc[is + 2] as i8) * q2 as f32;
            y[l + 64] = d * f32::from(sc[is + 4] as i8) * q3 as f32;
            y[l + 96] = d * f32::from(sc[is + 6] as i8) * q4 as f32;
        }
    }
}

/* conv.cl — 2-D convolution as an implicit GEMM (no im2col buffer), with
 * the same register tile as cl/gemm.cl's products: a work-item computes 6
 * output pixels (GEMM's rows, M = N·Ho·Wo) times 16 output channels (two
 * float8) or 64 (four float16, where SDCL_GEMM_VW is 16). K runs over (ky,
 * kx, ci), ci innermost; per k the work-item loads the tile's weights as
 * two or four vectors and broadcasts the 6 input pixels under the tap: 12
 * or 24 FMAs. bench-ops, 1280 -> 1280 channels at 8x8 x2 (15 blocks of
 * input channels), five runs of each build in turns: 6 x 32 tiles median
 * 34.8 ms, 6 x 64 28.6 ms; 320 channels at stride 2, 44.0 -> 39.5 ms.
 *
 * The input is first copied (conv_pack_*) into a zero-padded buffer with
 * channels innermost, [C, Wp, Hp, N], so that for each tap the 6 pixels'
 * inputs are 6 contiguous runs of Cin floats read with no bounds checks:
 * the inner loop is exactly the GEMM's. (With NCHW planes the K walk jumps
 * a whole plane per step, and at 64x64 that 16 KiB stride maps every step
 * to the same L1 set.) A tile's 6 pixels may straddle output rows or
 * images: each keeps its own base pointer. Weights are [K][ldw] with ldw a
 * multiple of 16 (see ops-gemm.c), so weight loads are never masked.
 *
 * Launch: global (ceil(Cout/CONV_TN) rounded to local0, ceil(M/6) rounded
 * to local1, 1), local as chosen in ops-gemm.c.
 */
#define CONV_TM 6

/* The tile's columns: two vectors of SDCL_GEMM_VW (see cl/gemm.cl), 16
 * output channels with float8, 32 with float16 (AVX-512). */
#ifndef SDCL_GEMM_VW
#define SDCL_GEMM_VW 8
#endif
#if SDCL_GEMM_VW == 16
typedef float16 conv_v;
#define CONV_LOAD_V_F32(o, p) vload16 (0, (p) + (o))
#define CONV_LOAD_V_F16(o, p) vload_half16 (0, (p) + (o))
#define CONV_STORE_V(v, p) vstore16 ((v), 0, (p))
#else
typedef float8 conv_v;
#define CONV_LOAD_V_F32(o, p) vload8 (0, (p) + (o))
#define CONV_LOAD_V_F16(o, p) vload_half8 (0, (p) + (o))
#define CONV_STORE_V(v, p) vstore8 ((v), 0, (p))
#endif
#define CONV_VW SDCL_GEMM_VW
/* vectors per tile row: four float16 (64 output channels) on AVX-512, as
 * cl/gemm.cl's products, else two */
#if SDCL_GEMM_VW == 16
#define CONV_NV 4
#else
#define CONV_NV 2
#endif
#define CONV_TN (CONV_NV * CONV_VW)

/* See cl/gemm.cl: the prefetch hint for the weight widening, and fma()
 * where it is one instruction, else mad(). */
#if defined (__clang__) && !SDCL_IS_GPU
#define SDCL_PREFETCH(p) __builtin_prefetch (p)
#else
#define SDCL_PREFETCH(p) ((void) 0)
#endif
#ifndef CONV_WIDEN_AHEAD
#define CONV_WIDEN_AHEAD 16
#endif
#if defined (FP_FAST_FMAF) || defined (__FMA__) || defined (__ARM_FEATURE_FMA) || SDCL_IS_GPU
#define SDCL_FMA(a, b, c) fma ((a), (b), (c))
#else
#define SDCL_FMA(a, b, c) mad ((a), (b), (c))
#endif

/* Zero-padded, channel-innermost copy: x [W, H, C, N] with any strides
 * (elements) -> xp [C, Wp, Hp, N] contiguous. A work-item transposes an
 * 8 pixel x 8 channel block through a private tile, so it reads 8
 * consecutive pixels of each plane and writes 8 consecutive channels of
 * each pixel. Launch: global (ceil(Wp/8), Hp, ceil(C/8)·N). */
#define CONV_PACK_BODY(LOAD, LOAD8)                                          \
  const int px0 = get_global_id (0) * 8, py = get_global_id (1);             \
  const int c_blocks = (C + 7) / 8;                                          \
  const int n = get_global_id (2) / c_blocks;                                \
  const int c0 = (get_global_id (2) - n * c_blocks) * 8;                     \
  if (px0 >= Wp || py >= Hp)                                                 \
    return;                                                                  \
  const int iy = py - pad;                                                   \
  const bool row_inside = iy >= 0 && iy < H;                                 \
  const long src0 = x_off + (long) iy * s1 + (long) c0 * s2 + (long) n * s3; \
  float t[8][8];                                                             \
  if (row_inside && s0 == 1 && px0 >= pad && px0 + 8 - pad <= W             \
      && c0 + 8 <= C)                                                        \
    {                                                                        \
      /* interior block: eight vector loads */                               \
      for (int c = 0; c < 8; c++)                                            \
        vstore8 (LOAD8 (0, x + src0 + c * s2 + px0 - pad), 0, t[c]);         \
    }                                                                        \
  else                                                                       \
    for (int c = 0; c < 8; c++)                                              \
      {                                                                      \
        const bool c_inside = row_inside && c0 + c < C;                      \
        for (int j = 0; j < 8; j++)                                          \
          {                                                                  \
            const int ix = px0 + j - pad;                                    \
            t[c][j] = c_inside && ix >= 0 && ix < W                          \
                      ? LOAD (src0 + c * s2 + ix * s0, x) : 0.0f;            \
          }                                                                  \
      }                                                                      \
  global float *dst = xp + (((long) n * Hp + py) * Wp + px0) * C + c0;       \
  const int nj = min (8, Wp - px0);                                          \
  for (int j = 0; j < nj; j++, dst += C)                                     \
    {                                                                        \
      const float8 v = (float8) (t[0][j], t[1][j], t[2][j], t[3][j],         \
                                 t[4][j], t[5][j], t[6][j], t[7][j]);        \
      if (c0 + 8 <= C)                                                       \
        vstore8 (v, 0, dst);                                                 \
      else                                                                   \
        for (int c = 0; c < C - c0; c++)                                     \
          dst[c] = t[c][j];                                                  \
    }

#define CONV_LOAD_F32(i, p) (p)[i]

kernel void conv_pack_f32 (global const float *x, ulong x_off, long s0, long s1, long s2, long s3,
                           int W, int H, int C, int pad, global float *xp, int Wp, int Hp)
{
  CONV_PACK_BODY (CONV_LOAD_F32, vload8);
}

kernel void conv_pack_f16 (global const half *x, ulong x_off, long s0, long s1, long s2, long s3,
                           int W, int H, int C, int pad, global float *xp, int Wp, int Hp)
{
  CONV_PACK_BODY (vload_half, vload_half8);
}

/* The convolution as a plain matrix product (GPUs, see ops-gemm.c): the
 * product's A, [M][K] with row m the output pixel (n, oy, ox) and k =
 * (ky·ks + kx)·Cin + ci, the weight rows' order, gathered from conv_pack's
 * padded channels-innermost copy. Four channels per work-item (Cin is a
 * multiple of 4, so they never straddle two taps): neighbouring
 * work-items read and write neighbouring 16 bytes. global (K / 4, M). */
kernel void conv_im2col (global const float *xp, int Wp, int Hp, int Cin, int ks, int stride,
                         int Wo, int HWo, int M, global float *a)
{
  const int k4 = get_global_id (0) * 4, m = get_global_id (1);
  const int K = ks * ks * Cin;
  if (k4 >= K || m >= M)
    return;
  const int n = m / HWo, p = m - n * HWo, oy = p / Wo, ox = p - oy * Wo;
  const int tap = k4 / Cin, ci = k4 - tap * Cin, ky = tap / ks, kx = tap - ky * ks;
  const global float *src = xp + (((long) n * Hp + oy * stride + ky) * Wp + ox * stride + kx)
                                 * Cin + ci;
  vstore4 (vload4 (0, src), 0, a + (long) m * K + k4);
}

/* Row i's accumulators, its FMAs with the tap's weight vectors b0.., and
 * its moves to and from a private row t of CONV_TN floats (epilogues). The
 * weight vectors past ldw read the first again (bK_off 0; computed, never
 * stored). */
#if CONV_NV == 4
#define CONV_ROW_DECL(i)                                                     \
  conv_v c##i##a = 0.0f, c##i##b = 0.0f, c##i##c = 0.0f, c##i##d = 0.0f
#define CONV_FMA_ROW(i, s)                                                   \
  do {                                                                       \
    const conv_v s8_ = (conv_v) (s);                                         \
    c##i##a = SDCL_FMA (s8_, b0, c##i##a);                                   \
    c##i##b = SDCL_FMA (s8_, b1, c##i##b);                                   \
    c##i##c = SDCL_FMA (s8_, b2, c##i##c);                                   \
    c##i##d = SDCL_FMA (s8_, b3, c##i##d);                                   \
  } while (0)
#define CONV_LOAD_B(LOADB, p)                                                \
  const conv_v b0 = LOADB (0, p), b1 = LOADB (b1_off, p);                    \
  const conv_v b2 = LOADB (b2_off, p), b3 = LOADB (b3_off, p)
#define CONV_B_OFFSETS                                                       \
  const int b1_off = n0 + CONV_VW < ldw ? CONV_VW : 0;                       \
  const int b2_off = n0 + 2 * CONV_VW < ldw ? 2 * CONV_VW : 0;               \
  const int b3_off = n0 + 3 * CONV_VW < ldw ? 3 * CONV_VW : 0
#define CONV_ROW_TO_T(i, t)                                                  \
  {                                                                          \
    CONV_STORE_V (c##i##a, t); CONV_STORE_V (c##i##b, t + CONV_VW);          \
    CONV_STORE_V (c##i##c, t + 2 * CONV_VW); CONV_STORE_V (c##i##d, t + 3 * CONV_VW); \
  }
#define CONV_ROW_ADD_T(i, t)                                                 \
  {                                                                          \
    c##i##a += CONV_LOAD_V_F32 (0, t); c##i##b += CONV_LOAD_V_F32 (CONV_VW, t); \
    c##i##c += CONV_LOAD_V_F32 (2 * CONV_VW, t);                             \
    c##i##d += CONV_LOAD_V_F32 (3 * CONV_VW, t);                             \
  }
#else
#define CONV_ROW_DECL(i) conv_v c##i##a = 0.0f, c##i##b = 0.0f
#define CONV_FMA_ROW(i, s)                                                   \
  do {                                                                       \
    const conv_v s8_ = (conv_v) (s);                                         \
    c##i##a = SDCL_FMA (s8_, b0, c##i##a);                                   \
    c##i##b = SDCL_FMA (s8_, b1, c##i##b);                                   \
  } while (0)
#define CONV_LOAD_B(LOADB, p)                                                \
  const conv_v b0 = LOADB (0, p), b1 = LOADB (b1_off, p)
#define CONV_B_OFFSETS                                                       \
  const int b1_off = n0 + CONV_VW < ldw ? CONV_VW : 0
#define CONV_ROW_TO_T(i, t)                                                  \
  { CONV_STORE_V (c##i##a, t); CONV_STORE_V (c##i##b, t + CONV_VW); }
#define CONV_ROW_ADD_T(i, t)                                                 \
  { c##i##a += CONV_LOAD_V_F32 (0, t); c##i##b += CONV_LOAD_V_F32 (CONV_VW, t); }
#endif

#define CONV_ACC_DECL                                                        \
  CONV_ROW_DECL (0); CONV_ROW_DECL (1); CONV_ROW_DECL (2);                   \
  CONV_ROW_DECL (3); CONV_ROW_DECL (4); CONV_ROW_DECL (5)

#define CONV_ROWS_ADD_T(t)                                                   \
  CONV_ROW_ADD_T (0, t) CONV_ROW_ADD_T (1, t) CONV_ROW_ADD_T (2, t)          \
  CONV_ROW_ADD_T (3, t) CONV_ROW_ADD_T (4, t) CONV_ROW_ADD_T (5, t)

/* One tap (ky, kx): weights for the tile's output channels, 6 pixels. The
 * later vectors start bK_off after the first: K · CONV_VW, or 0 where the
 * packed rows (a multiple of 16 wide) end before them (the copy is
 * computed, never stored). */
#define CONV_TAP(LOADB, off)                                                 \
  do {                                                                       \
    CONV_LOAD_B (LOADB, bp);                                                 \
    bp += ldw;                                                               \
    const long o_ = (off);                                                   \
    CONV_FMA_ROW (0, x0[o_]); CONV_FMA_ROW (1, x1[o_]);                      \
    CONV_FMA_ROW (2, x2[o_]); CONV_FMA_ROW (3, x3[o_]);                      \
    CONV_FMA_ROW (4, x4[o_]); CONV_FMA_ROW (5, x5[o_]);                      \
  } while (0)

/* Base of pixel m0 + i in the padded input; past-the-end pixels repeat the
 * last one (computed, never stored). */
#define CONV_PIXEL(i)                                                        \
  const int p##i = min (m0 + i, M - 1);                                      \
  const int img##i = p##i / HoWo, r##i = p##i - img##i * HoWo;               \
  const int oy##i = r##i / Wo, ox##i = r##i - oy##i * Wo;                    \
  const global float *x##i = xp + xp_off                                     \
    + (((long) img##i * Hp + oy##i * stride) * Wp + ox##i * stride) * Cin

/* The row t of the tile's channels n0.. (those below Cout) at pixel y,
 * one plane of HoWo apart per channel. */
inline void
conv_store_pixel (global float *y, long HoWo, int n0, int Cout, const float *t)
{
  const int n = min (CONV_TN, Cout - n0);
  for (int j = 0; j < n; j++)
    y[(long) (n0 + j) * HoWo] = t[j];
}

#define CONV_STORE(i)                                                        \
  if (m0 + i < M)                                                            \
    {                                                                        \
      float t_[CONV_TN];                                                     \
      CONV_ROW_TO_T (i, t_);                                                 \
      conv_store_pixel (y + y_off + (long) img##i * Cout * HoWo + r##i, HoWo, \
                        n0, Cout, t_);                                       \
    }

/* The tile's channels at pixel y into t (zero past Cout). */
inline void
conv_load_pixel (const global float *y, long HoWo, int n0, int Cout, float *t)
{
  for (int j = 0; j < CONV_TN; j++)
    t[j] = n0 + j < Cout ? y[(long) (n0 + j) * HoWo] : 0.0f;
}

/* Starts row i of the tile from what earlier channel blocks stored. */
#define CONV_LOAD(i)                                                         \
  {                                                                          \
    float t_[CONV_TN];                                                       \
    conv_load_pixel (y + y_off + (long) img##i * Cout * HoWo + r##i, HoWo,   \
                     n0, Cout, t_);                                          \
    CONV_ROW_ADD_T (i, t_);                                                  \
  }

/* The tile's start: its 6 pixels and its accumulators, from zero or from
 * y (accumulate: an earlier channel block's partial sums). */
#define CONV_TILE_START                                                      \
  CONV_B_OFFSETS;                                                            \
  CONV_PIXEL (0); CONV_PIXEL (1); CONV_PIXEL (2);                            \
  CONV_PIXEL (3); CONV_PIXEL (4); CONV_PIXEL (5);                            \
  CONV_ACC_DECL;                                                             \
  if (accumulate)                                                            \
    {                                                                        \
      CONV_LOAD (0); CONV_LOAD (1); CONV_LOAD (2);                           \
      CONV_LOAD (3); CONV_LOAD (4); CONV_LOAD (5);                           \
    }

/* The tile's channels n0.. of a per-channel vector p into t (zero past
 * Cout). */
inline void
conv_load_channels (const global float *p, int n0, int Cout, float *t)
{
  for (int j = 0; j < CONV_TN; j++)
    t[j] = n0 + j < Cout ? p[n0 + j] : 0.0f;
}

/* Row i's add (add_mode 1: a value per channel and image, add [Cout, N];
 * 2: a residual laid out as y, which add may be). */
#define CONV_ADD(i)                                                          \
  {                                                                          \
    float t_[CONV_TN];                                                       \
    if (add_mode == 1)                                                       \
      conv_load_channels (add + add_off + (long) img##i * Cout, n0, Cout, t_); \
    else                                                                     \
      conv_load_pixel (add + add_off + (long) img##i * Cout * HoWo + r##i, HoWo, \
                       n0, Cout, t_);                                        \
    CONV_ROW_ADD_T (i, t_);                                                  \
  }

/* The tile's end: the bias (has_bias), then what is added (add_mode, after
 * the sum, so it is rounded once), then the pixels that exist. */
#define CONV_TILE_END                                                        \
  if (has_bias)                                                              \
    {                                                                        \
      float t_[CONV_TN];                                                     \
      conv_load_channels (bias + bias_off, n0, Cout, t_);                    \
      CONV_ROWS_ADD_T (t_);                                                  \
    }                                                                        \
  if (add_mode)                                                              \
    {                                                                        \
      CONV_ADD (0) CONV_ADD (1) CONV_ADD (2) CONV_ADD (3) CONV_ADD (4) CONV_ADD (5) \
    }                                                                        \
  CONV_STORE (0); CONV_STORE (1); CONV_STORE (2);                            \
  CONV_STORE (3); CONV_STORE (4); CONV_STORE (5)

/* Input channels c_lo .. c_hi-1 of every tap; with `accumulate` the tile
 * starts from y (an earlier block's partial sums), else from zero. The host
 * splits wide inputs into blocks so that a group's weight panels and input
 * rows stay in cache over the K loop: with all 4608 rows of a 512-channel
 * 3x3 conv in one pass, throughput fell to a quarter. */
#define CONV_KERNEL_BODY(KS, LOADB, WT)                                      \
  const int n0 = get_global_id (0) * CONV_TN, m0 = get_global_id (1) * CONV_TM; \
  if (n0 >= Cout || m0 >= M)                                                 \
    return;                                                                  \
  CONV_TILE_START;                                                           \
  for (int ky = 0; ky < KS; ky++)                                            \
    for (int kx = 0; kx < KS; kx++)                                          \
      {                                                                      \
        const long tap = ((long) ky * Wp + kx) * Cin;                        \
        const global WT *bp = w + w_off + n0                                 \
                              + ((long) (ky * KS + kx) * Cin + c_lo) * ldw;  \
        for (int ci = c_lo; ci < c_hi; ci++)                                 \
          CONV_TAP (LOADB, tap + ci);                                        \
      }                                                                      \
  CONV_TILE_END

/* The same for f16 weights on CPUs, for products with a moderate number
 * of rows: the group's work-items first widen the group's weight columns
 * (CONV_WG_N tiles) for every row of the block (taps x c_lo..c_hi) into
 * local memory together, then each reads f32 from there (see
 * gemm_f16_local in cl/gemm.cl: each work-item widens a run of rows,
 * fetched CONV_WIDEN_AHEAD rows ahead). lw holds KS·KS·(c_hi - c_lo) rows
 * of `lwn` floats, the group's columns from its first tile's n0. */
#define CONV_KERNEL_BODY_LOCAL(KS)                                           \
  const int n0 = get_global_id (0) * CONV_TN, m0 = get_global_id (1) * CONV_TM; \
  const int g0 = get_group_id (0) * get_local_size (0) * CONV_TN;            \
  const int nch = c_hi - c_lo, rows = KS * KS * nch;                         \
  const int cols = min (lwn, (int) ldw - g0);                                \
  const int wi = get_local_id (1) * get_local_size (0) + get_local_id (0);   \
  const int nwi = get_local_size (0) * get_local_size (1);                   \
  const int per = (rows + nwi - 1) / nwi, r_end = min (rows, (wi + 1) * per); \
  for (int r = wi * per; r < r_end; r++)                                     \
    {                                                                        \
      if (r + CONV_WIDEN_AHEAD < rows)                                       \
        {                                                                    \
          const int ra = r + CONV_WIDEN_AHEAD, ta = ra / nch;                \
          const global half *pa = w + w_off + g0                             \
                                  + ((long) ta * Cin + c_lo + ra - ta * nch) * ldw; \
          for (int j = 0; j < cols; j += 32)                                 \
            SDCL_PREFETCH (pa + j);                                          \
        }                                                                    \
      const int t = r / nch, ci = c_lo + r - t * nch;                        \
      const global half *src = w + w_off + g0 + ((long) t * Cin + ci) * ldw; \
      local float *dst = lw + (long) r * lwn;                                \
      for (int j = 0; j < cols; j += 8)                                      \
        vstore8 (vload_half8 (0, src + j), 0, dst + j);                      \
    }                                                                        \
  barrier (CLK_LOCAL_MEM_FENCE);                                             \
  if (n0 >= Cout || m0 >= M)                                                 \
    return;                                                                  \
  CONV_TILE_START;                                                           \
  const local float *bp = lw + (n0 - g0);                                    \
  for (int ky = 0; ky < KS; ky++)                                            \
    for (int kx = 0; kx < KS; kx++)                                          \
      {                                                                      \
        const long tap = ((long) ky * Wp + kx) * Cin;                        \
        for (int ci = c_lo; ci < c_hi; ci++)                                 \
          {                                                                  \
            CONV_LOAD_B (CONV_LOAD_V_F32, bp);                               \
            bp += lwn;                                                       \
            const long o_ = tap + ci;                                        \
            CONV_FMA_ROW (0, x0[o_]); CONV_FMA_ROW (1, x1[o_]);              \
            CONV_FMA_ROW (2, x2[o_]); CONV_FMA_ROW (3, x3[o_]);              \
            CONV_FMA_ROW (4, x4[o_]); CONV_FMA_ROW (5, x5[o_]);              \
          }                                                                  \
      }                                                                      \
  CONV_TILE_END

#define CONV_ARGS(WT)                                                        \
  global const float *xp, ulong xp_off, int Wp, int Hp,                      \
  int Cin, int stride, int Wo, int HoWo, int M,                              \
  global const WT *w, ulong w_off, long ldw, int Cout,                       \
  global const float *bias, ulong bias_off, int has_bias,                    \
  global float *y, ulong y_off, int c_lo, int c_hi, int accumulate,         \
  global const float *add, ulong add_off, int add_mode

kernel void conv3x3_f16 (CONV_ARGS (half))  { CONV_KERNEL_BODY (3, CONV_LOAD_V_F16, half); }
kernel void conv3x3_f32 (CONV_ARGS (float)) { CONV_KERNEL_BODY (3, CONV_LOAD_V_F32, float); }
kernel void conv1x1_f16 (CONV_ARGS (half))  { CONV_KERNEL_BODY (1, CONV_LOAD_V_F16, half); }
kernel void conv1x1_f32 (CONV_ARGS (float)) { CONV_KERNEL_BODY (1, CONV_LOAD_V_F32, float); }
kernel void conv3x3_f16_local (CONV_ARGS (half), local float *lw, int lwn)
{
  CONV_KERNEL_BODY_LOCAL (3);
}
kernel void conv1x1_f16_local (CONV_ARGS (half), local float *lw, int lwn)
{
  CONV_KERNEL_BODY_LOCAL (1);
}

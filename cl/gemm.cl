/* gemm.cl — C = A · B (+ bias) for linear layers and batched matmul, written
 * for CPUs (PoCL) first: each work-item owns a register tile and walks the
 * whole K dimension with explicit float8 vectors, so the compiler emits
 * straight FMA code instead of trying to vectorise across work-items.
 *
 * Micro-tile (BLIS-style 6x16): a work-item computes GEMM_TM = 6 rows of A
 * times 16 columns of B. Per k it loads one 16-wide row segment of B as two
 * float8, broadcasts 6 scalars of A and issues 12 FMAs into 12 accumulator
 * vectors: 15 of the 16 AVX registers, no spills (checked in the PoCL
 * kernel cache's .so). f16 B is read with vload_half8 (vcvtph2ps with
 * F16C); for products with many rows the host converts it to f32 once per
 * call instead (gemm_pack_f16 for linear layers, gemm_widen_f16 for conv
 * weights), because the conversion in the K loop costs about a third of
 * the FMA rate on x86; with few rows (the text encoder's 77) that pass
 * costs more than the product, and CPUs run gemm_f16_local, which widens
 * a group's columns once into local memory (cache on a CPU) for all its
 * row tiles. Where vectors are 16 wide (AVX-512) the three product
 * kernels take tiles of 6 x 64, four float16 (see "16-wide vectors"
 * below), as does the direct convolution (cl/conv.cl); the Winograd
 * products keep two vectors.
 *
 * Layouts (elements, innermost first as in engine/tensor.h):
 *   A  [K, M] rows of K, row stride lda, batch stride a_batch;
 *   B  [N, K] i.e. B[k][n] with row stride ldb, read 16 columns at a time
 *      without a mask, so every B is padded to a multiple of 16 columns
 *      with zeros: linear and conv weights by sdcl_linear_weight_new (rows
 *      of ldw), everything else by gemm_pack_* below. Columns n0 .. n0+15
 *      start b_panel elements after those of n0-16: 16 for plain rows, K·16
 *      for B stored as panels of 16 columns one after the other (ldb 16),
 *      which the K loop reads as one sequential stream;
 *   C  [N, M] rows of N, row stride ldc; only columns < N are stored.
 *
 * Launch: global (ceil(N/16) rounded to local0, ceil(M/6) rounded to
 * local1, batches), local (GEMM_WG_N, GEMM_WG_M, 1) — see ops-gemm.c.
 * Neighbouring work-items of a group share B panels and A rows, so a group's
 * working set (a few B panels, a few A row blocks) stays in L1/L2.
 */
#define GEMM_TM 6

/* mad() lets the compiler choose, and PoCL's CPU backend lowers it to a
 * multiply and an add (half the FMA rate); fma() is one instruction where
 * the device has FMA, but a slow library call where it does not. PoCL
 * does not define FP_FAST_FMAF, hence the target's own feature macros. */
#if defined (FP_FAST_FMAF) || defined (__FMA__) || defined (__ARM_FEATURE_FMA) || SDCL_IS_GPU
#define SDCL_FMA(a, b, c) fma ((a), (b), (c))
#else
#define SDCL_FMA(a, b, c) mad ((a), (b), (c))
#endif

/* A hint to fetch the cache line at p ahead of its use, on CPUs, where a
 * group widening f16 weights reads one short segment per row of a wide
 * matrix: strides too long for the hardware prefetcher, so without the
 * hint every row waits for memory. GEMM_WIDEN_AHEAD is how many rows
 * ahead. */
#if defined (__clang__) && !SDCL_IS_GPU
#define SDCL_PREFETCH(p) __builtin_prefetch (p)
#else
#define SDCL_PREFETCH(p) ((void) 0)
#endif
#ifndef GEMM_WIDEN_AHEAD
#define GEMM_WIDEN_AHEAD 32
#endif

/* The vector width: 8 (AVX2, NEON pairs, GPUs) or 16 where the device's
 * preferred float vector is 16 wide (AVX-512), chosen by the engine
 * (SDCL_GEMM_VW, see runtime.c). A work-item's tile is 6 rows by two
 * vectors: 6x16 from one panel with float8, 6x32 from two neighbouring
 * panels with float16 (12 of the 32 zmm registers as accumulators). */
#ifndef SDCL_GEMM_VW
#define SDCL_GEMM_VW 8
#endif
#if SDCL_GEMM_VW == 16
typedef float16 gemm_v;
#define GEMM_LOAD_F32(p) vload16 (0, (p))
#define GEMM_LOAD_F16(p) vload_half16 (0, (p))
#define GEMM_STORE(v, p) vstore16 ((v), 0, (p))
#else
typedef float8 gemm_v;
#define GEMM_LOAD_F32(p) vload8 (0, (p))
#define GEMM_LOAD_F16(p) vload_half8 (0, (p))
#define GEMM_STORE(v, p) vstore8 ((v), 0, (p))
#endif
#define GEMM_TILE_N (2 * SDCL_GEMM_VW)

/* Accumulators for one tile: row i is (c<i>a, c<i>b). */
#define GEMM_ACC_DECL                                                        \
  gemm_v c0a = 0.0f, c0b = 0.0f, c1a = 0.0f, c1b = 0.0f, c2a = 0.0f,        \
         c2b = 0.0f, c3a = 0.0f, c3b = 0.0f, c4a = 0.0f, c4b = 0.0f,        \
         c5a = 0.0f, c5b = 0.0f

#define GEMM_FMA_ROW(i, s)                                                   \
  do {                                                                       \
    const gemm_v s_ = (gemm_v) (s);                                          \
    c##i##a = SDCL_FMA (s_, b0, c##i##a);                                    \
    c##i##b = SDCL_FMA (s_, b1, c##i##b);                                    \
  } while (0)

#define GEMM_FMA_6(s0, s1, s2, s3, s4, s5)                                   \
  do {                                                                       \
    GEMM_FMA_ROW (0, s0); GEMM_FMA_ROW (1, s1); GEMM_FMA_ROW (2, s2);        \
    GEMM_FMA_ROW (3, s3); GEMM_FMA_ROW (4, s4); GEMM_FMA_ROW (5, s5);        \
  } while (0)

/* Stores the columns col .. col+VW-1 of a row that exist (col < N). */
inline void
gemm_store_vec (global float *c, int col, int N, gemm_v v)
{
  if (col + SDCL_GEMM_VW <= N)
    GEMM_STORE (v, c + col);
  else if (col < N)
    {
      float t[SDCL_GEMM_VW];
      GEMM_STORE (v, t);
      for (int j = 0; j < N - col; j++)
        c[col + j] = t[j];
    }
}

inline void
gemm_store_row (global float *c, int n0, int N, gemm_v va, gemm_v vb)
{
  gemm_store_vec (c, n0, N, va);
  gemm_store_vec (c, n0 + SDCL_GEMM_VW, N, vb);
}

/* Columns col .. col+VW-1 of a row, zero past N. */
inline gemm_v
gemm_load_vec (const global float *c, int col, int N)
{
  if (col + SDCL_GEMM_VW <= N)
    return GEMM_LOAD_F32 (c + col);
  float t[SDCL_GEMM_VW];
  for (int j = 0; j < SDCL_GEMM_VW; j++)
    t[j] = col + j < N ? c[col + j] : 0.0f;
  return GEMM_LOAD_F32 (t);
}

#define GEMM_ACCUMULATE_ROW(i)                                               \
  if (m0 + i < M)                                                            \
    {                                                                        \
      c##i##a += gemm_load_vec (cp + i * ldc, n0, N);                        \
      c##i##b += gemm_load_vec (cp + i * ldc, n0 + SDCL_GEMM_VW, N);         \
    }

/* Adds bias (if any) and, with `accumulate`, what C held (C += A·B, a
 * residual stream updated in place), then stores row i of the tile when
 * it exists. */
#define GEMM_EPILOGUE                                                        \
  do {                                                                       \
    if (has_bias)                                                            \
      {                                                                      \
        float t[GEMM_TILE_N];                                                \
        const global float *bb = bias + bias_off;                            \
        for (int j = 0; j < GEMM_TILE_N; j++)                                \
          t[j] = n0 + j < N ? bb[n0 + j] : 0.0f;                             \
        const gemm_v ba = GEMM_LOAD_F32 (t);                                 \
        const gemm_v bv = GEMM_LOAD_F32 (t + SDCL_GEMM_VW);                  \
        c0a += ba; c1a += ba; c2a += ba; c3a += ba; c4a += ba; c5a += ba;    \
        c0b += bv; c1b += bv; c2b += bv; c3b += bv; c4b += bv; c5b += bv;    \
      }                                                                      \
    global float *cp = c + c_off + batch * c_batch + (long) m0 * ldc;        \
    if (accumulate)                                                          \
      {                                                                      \
        GEMM_ACCUMULATE_ROW (0) GEMM_ACCUMULATE_ROW (1) GEMM_ACCUMULATE_ROW (2) \
        GEMM_ACCUMULATE_ROW (3) GEMM_ACCUMULATE_ROW (4) GEMM_ACCUMULATE_ROW (5) \
      }                                                                      \
    gemm_store_row (cp, n0, N, c0a, c0b);                                    \
    if (m0 + 1 < M) gemm_store_row (cp + ldc, n0, N, c1a, c1b);              \
    if (m0 + 2 < M) gemm_store_row (cp + 2 * ldc, n0, N, c2a, c2b);          \
    if (m0 + 3 < M) gemm_store_row (cp + 3 * ldc, n0, N, c3a, c3b);          \
    if (m0 + 4 < M) gemm_store_row (cp + 4 * ldc, n0, N, c4a, c4b);          \
    if (m0 + 5 < M) gemm_store_row (cp + 5 * ldc, n0, N, c5a, c5b);          \
  } while (0)

/* The six A rows of the tile; rows past M repeat the last one (their
 * results are computed and dropped), which keeps the K loop branch-free. */
#define GEMM_A_ROWS                                                          \
  const global float *ab = a + a_off + batch * a_batch;                      \
  const global float *a0 = ab + (long) min (m0, M - 1) * lda;                \
  const global float *a1 = ab + (long) min (m0 + 1, M - 1) * lda;            \
  const global float *a2 = ab + (long) min (m0 + 2, M - 1) * lda;            \
  const global float *a3 = ab + (long) min (m0 + 3, M - 1) * lda;            \
  const global float *a4 = ab + (long) min (m0 + 4, M - 1) * lda;            \
  const global float *a5 = ab + (long) min (m0 + 5, M - 1) * lda

/* The tile's two column vectors start at bp0 and bp1: with float8 the two
 * halves of panel n0/16; with float16 panels n0/16 and n0/16 + 1, or the
 * first twice when N ends inside it (the copy is computed, not stored). */
#if SDCL_GEMM_VW == 16
#define GEMM_B_PANELS(T)                                                     \
  const global T *bp0 = b + b_off + batch * b_batch + (n0 / 16) * b_panel;   \
  const global T *bp1 = n0 + 16 < N ? bp0 + b_panel : bp0
#else
#define GEMM_B_PANELS(T)                                                     \
  const global T *bp0 = b + b_off + batch * b_batch + (n0 / 16) * b_panel;   \
  const global T *bp1 = bp0 + 8
#endif

#define GEMM_K_LOOP(LOADB)                                                   \
  for (int k = 0; k < K; k++)                                                \
    {                                                                        \
      const gemm_v b0 = LOADB (bp0), b1 = LOADB (bp1);                       \
      bp0 += ldb;                                                            \
      bp1 += ldb;                                                            \
      GEMM_FMA_6 (a0[k], a1[k], a2[k], a3[k], a4[k], a5[k]);                 \
    }


/* The product of a group whose B columns are in local memory (rows of
 * GEMM_TILE_N from blp), for the _local kernels below. */
#define GEMM_LOCAL_LOOP(blp)                                                 \
  {                                                                          \
    const local float *lp = (blp);                                           \
    for (int k = 0; k < K; k++)                                              \
      {                                                                      \
        const gemm_v b0 = GEMM_LOAD_F32 (lp), b1 = GEMM_LOAD_F32 (lp + SDCL_GEMM_VW); \
        lp += GEMM_TILE_N;                                                   \
        GEMM_FMA_6 (a0[k], a1[k], a2[k], a3[k], a4[k], a5[k]);               \
      }                                                                      \
  }

#define GEMM_LOCAL_PRODUCT(blp)                                              \
  do {                                                                       \
    GEMM_A_ROWS;                                                             \
    GEMM_ACC_DECL;                                                           \
    GEMM_LOCAL_LOOP (blp);                                                   \
    GEMM_EPILOGUE;                                                           \
  } while (0)

/* Row k of the group's columns, widened from f16 into local memory (bl),
 * fetching GEMM_WIDEN_AHEAD rows ahead. */
#define GEMM_WIDEN_ROW(k)                                                    \
  {                                                                          \
    if ((k) + GEMM_WIDEN_AHEAD < K)                                          \
      {                                                                      \
        SDCL_PREFETCH (bp0 + (long) ((k) + GEMM_WIDEN_AHEAD) * ldb);         \
        SDCL_PREFETCH (bp1 + (long) ((k) + GEMM_WIDEN_AHEAD) * ldb + SDCL_GEMM_VW - 1); \
      }                                                                      \
    GEMM_STORE (GEMM_LOAD_F16 (bp0 + (long) (k) * ldb), bl + (k) * GEMM_TILE_N); \
    GEMM_STORE (GEMM_LOAD_F16 (bp1 + (long) (k) * ldb), bl + (k) * GEMM_TILE_N + SDCL_GEMM_VW); \
  }


/* Winograd F(4x4, 3x3) products M[p] = V[p] · U[p] (see cl/winograd.cl)
 * with the weight transform fused, for f16 weights on CPUs. A group takes
 * the 6 positions p = 6i + j of one row i of the 6x6 tile: it first
 * computes its columns of U[p] for each of its K input
 * channels into local memory, t[kx] = sum over ky of G[i][ky]·g[ky][kx]
 * (rows of G[i] that are 0 skipped), then U[p] = G[j] applied to t, and
 * then runs the 6 products as gemm_f16_local. U is never stored: whole,
 * it is 36 floats per weight written and read back on every call. Weight
 * rows (ky·3 + kx)·Kw + ci of ldw, the columns and the first input
 * channel from w_off; A (V) is [36][M][lda] (a_batch), the K channels from
 * a_off; C (M) is [36][M][ldc] (c_batch), added to with accumulate (the
 * engine's later ranges of input channels). Launch: global (ceil(N /
 * GEMM_TILE_N), ceil(M / 6) rounded to the group, 6), local (1, any, 1);
 * bl holds 6 · K · GEMM_TILE_N floats. */
constant float wino_g[6][3] = {
  { 0.25f, 0.0f, 0.0f },
  { -1.0f / 6.0f, -1.0f / 6.0f, -1.0f / 6.0f },
  { -1.0f / 6.0f, 1.0f / 6.0f, -1.0f / 6.0f },
  { 1.0f / 24.0f, 1.0f / 12.0f, 1.0f / 6.0f },
  { 1.0f / 24.0f, -1.0f / 12.0f, 1.0f / 6.0f },
  { 0.0f, 0.0f, 1.0f },
};

/* t<kx> += G[i][ky] · g[ky][kx] for the three kx of tap row ky */
#define GEMM_WINO_KY(ky)                                                     \
  {                                                                          \
    const float cf = wino_g[pi][ky];                                         \
    if (cf != 0.0f)                                                          \
      {                                                                      \
        const gemm_v c_ = (gemm_v) (cf);                                     \
        const global half *s0 = w0 + ((long) (3 * (ky)) * Kw + k) * ldw;     \
        const global half *s1 = s0 + (long) Kw * ldw, *s2 = s1 + (long) Kw * ldw; \
        if (k + GEMM_WIDEN_AHEAD < K)                                        \
          {                                                                  \
            SDCL_PREFETCH (s0 + GEMM_WIDEN_AHEAD * ldw);                     \
            SDCL_PREFETCH (s1 + GEMM_WIDEN_AHEAD * ldw);                     \
            SDCL_PREFETCH (s2 + GEMM_WIDEN_AHEAD * ldw);                     \
          }                                                                  \
        t0a = SDCL_FMA (c_, GEMM_LOAD_F16 (s0), t0a);                        \
        t0b = SDCL_FMA (c_, GEMM_LOAD_F16 (s0 + off1), t0b);                 \
        t1a = SDCL_FMA (c_, GEMM_LOAD_F16 (s1), t1a);                        \
        t1b = SDCL_FMA (c_, GEMM_LOAD_F16 (s1 + off1), t1b);                 \
        t2a = SDCL_FMA (c_, GEMM_LOAD_F16 (s2), t2a);                        \
        t2b = SDCL_FMA (c_, GEMM_LOAD_F16 (s2 + off1), t2b);                 \
      }                                                                      \
  }

/* U[6i + j] for the group's position j from t */
#define GEMM_WINO_STORE_J(j, h, o)                                           \
  {                                                                          \
    const gemm_v g_ = wino_g[j][0] * t0##h + wino_g[j][1] * t1##h            \
                      + wino_g[j][2] * t2##h;                                \
    GEMM_STORE (g_, bl + ((long) (j) * K + k) * GEMM_TILE_N + (o));          \
  }

kernel void gemm_wino_f16_local (global const float *a, ulong a_off, long lda, long a_batch,
          int M, int K, global const half *w, ulong w_off, long ldw, int Kw, int N,
          global float *c, ulong c_off, long ldc, long c_batch, int accumulate,
          local float *bl)
{
  const int n0 = get_global_id (0) * GEMM_TILE_N, m0 = get_global_id (1) * GEMM_TM;
  const int pi = get_global_id (2);
  if (n0 < N)
    {
      const global half *w0 = w + w_off + n0;
      /* the second vector's columns; a tile past N reads the first again */
      const int off1 = n0 + SDCL_GEMM_VW < N ? SDCL_GEMM_VW : 0;
      const int per = (K + get_local_size (1) - 1) / get_local_size (1);
      const int k_end = min (K, (int) (get_local_id (1) + 1) * per);
      for (int k = get_local_id (1) * per; k < k_end; k++)
        {
          gemm_v t0a = 0.0f, t0b = 0.0f, t1a = 0.0f, t1b = 0.0f, t2a = 0.0f, t2b = 0.0f;
          GEMM_WINO_KY (0) GEMM_WINO_KY (1) GEMM_WINO_KY (2)
          GEMM_WINO_STORE_J (0, a, 0) GEMM_WINO_STORE_J (1, a, 0) GEMM_WINO_STORE_J (2, a, 0)
          GEMM_WINO_STORE_J (3, a, 0) GEMM_WINO_STORE_J (4, a, 0) GEMM_WINO_STORE_J (5, a, 0)
          GEMM_WINO_STORE_J (0, b, SDCL_GEMM_VW) GEMM_WINO_STORE_J (1, b, SDCL_GEMM_VW)
          GEMM_WINO_STORE_J (2, b, SDCL_GEMM_VW) GEMM_WINO_STORE_J (3, b, SDCL_GEMM_VW)
          GEMM_WINO_STORE_J (4, b, SDCL_GEMM_VW) GEMM_WINO_STORE_J (5, b, SDCL_GEMM_VW)
        }
    }
  barrier (CLK_LOCAL_MEM_FENCE);
  if (n0 >= N || m0 >= M)
    return;
  const int has_bias = 0;   /* for GEMM_EPILOGUE */
  const global float *bias = c;
  const ulong bias_off = 0;
  for (int j = 0; j < 6; j++)
    {
      const int batch = pi * 6 + j;
      GEMM_LOCAL_PRODUCT (bl + (long) j * K * GEMM_TILE_N);
    }
}


/* ---- 16-wide vectors (AVX-512): the products in tiles of 6 x 64 -----------
 *
 * The macros of the product kernels below (gemm_f16, gemm_f16_local,
 * gemm_f32) for 16-wide vectors: a work-item tile of 6 rows by four float16
 * (64 columns, panels n0/16 .. n0/16 + 3; panels past N read the first
 * again, computed and not stored): 24 of the 32 zmm registers accumulate,
 * and per k four loads of B and six broadcasts of A feed 24 FMAs, where
 * 6 x 32 fed 12 with two and six. The K loop issues about half the
 * instructions per FMA, and the group's B columns (K x 64 in local memory,
 * beyond L1 from K of about 200) are read once per 24 FMAs instead of per
 * 12. PoCL, 2 Xeon cores: a loop over B in local memory reached 235-253
 * GFLOP/s at K = 1024 against 172-185 with 6 x 32 (the FMA peak measured
 * the same way: about 305). bench-ops, each product as a share of
 * OpenBLAS on its shape (timed in turns), median of four runs of each
 * build in turns, 6 x 32 -> 6 x 64: 4096x1280 · 1280x320 74 -> 83 %,
 * 512x1280 · 1280x10240 66 -> 78 %, 128x1280 · 1280x1280 72 -> 134 %,
 * 4096x320 · 320x320 66 -> 80 %; 8192x320 · 320x320 77 -> 73 % (noise).
 * Launch: global (ceil(N / 64) rounded to local0, ...).
 */
#if SDCL_GEMM_VW == 16
#define GEMM_WIDE_N 64

/* GELU with erf to 1.5e-7 absolute (Abramowitz and Stegun 7.1.26), as
 * geglu_f32 in cl/elementwise.cl computes it */
inline float16 gemm_gelu16 (float16 g)
{
  const float16 x = g * 0.70710678118654752f, a = fabs (x);
  const float16 t = 1.0f / (1.0f + 0.3275911f * a);
  const float16 poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f
                       + t * (-1.453152027f + t * 1.061405429f))));
  return 0.5f * g * (1.0f + copysign (1.0f - poly * exp (-a * a), x));
}

#define GEMM4_ACC_ROW(i)                                                     \
  float16 c##i##a = 0.0f, c##i##b = 0.0f, c##i##c = 0.0f, c##i##d = 0.0f
#define GEMM4_ACC_DECL                                                       \
  GEMM4_ACC_ROW (0); GEMM4_ACC_ROW (1); GEMM4_ACC_ROW (2);                   \
  GEMM4_ACC_ROW (3); GEMM4_ACC_ROW (4); GEMM4_ACC_ROW (5)

#define GEMM4_FMA_ROW(i, s)                                                  \
  do {                                                                       \
    const float16 s_ = (float16) (s);                                        \
    c##i##a = SDCL_FMA (s_, b0, c##i##a);                                    \
    c##i##b = SDCL_FMA (s_, b1, c##i##b);                                    \
    c##i##c = SDCL_FMA (s_, b2, c##i##c);                                    \
    c##i##d = SDCL_FMA (s_, b3, c##i##d);                                    \
  } while (0)

#define GEMM4_FMA_6                                                          \
  do {                                                                       \
    GEMM4_FMA_ROW (0, a0[k]); GEMM4_FMA_ROW (1, a1[k]); GEMM4_FMA_ROW (2, a2[k]); \
    GEMM4_FMA_ROW (3, a3[k]); GEMM4_FMA_ROW (4, a4[k]); GEMM4_FMA_ROW (5, a5[k]); \
  } while (0)

/* The tile's four panels of B; with GEGLU (flags & GEMM_GEGLU) the first
 * two are the 32 columns n0.. of the hidden half and the last two the same
 * columns of the gate half (from column F = N / 2, a multiple of 16) */
#define GEMM4_B_PANELS(T)                                                    \
  const global T *bp0 = b + b_off + batch * b_batch + (n0 / 16) * b_panel;   \
  const global T *bp1 = n0 + 16 < n_cols ? bp0 + b_panel : bp0;              \
  const global T *bp2 = geglu ? bp0 + (N / 32) * b_panel                     \
                              : n0 + 32 < N ? bp0 + 2 * b_panel : bp0;       \
  const global T *bp3 = geglu ? (n0 + 16 < n_cols ? bp2 + b_panel : bp2)     \
                              : n0 + 48 < N ? bp0 + 3 * b_panel : bp0

#define GEMM4_K_LOOP(LOADB)                                                  \
  for (int k = 0; k < K; k++)                                                \
    {                                                                        \
      const float16 b0 = LOADB (bp0), b1 = LOADB (bp1);                      \
      const float16 b2 = LOADB (bp2), b3 = LOADB (bp3);                      \
      bp0 += ldb; bp1 += ldb; bp2 += ldb; bp3 += ldb;                        \
      GEMM4_FMA_6;                                                           \
    }

#define GEMM4_BIAS_ROW(i)                                                    \
  c##i##a += ba; c##i##b += bb_; c##i##c += bc; c##i##d += bd;

#define GEMM4_ACCUMULATE_ROW(i)                                              \
  if (m0 + i < M)                                                            \
    {                                                                        \
      c##i##a += gemm_load_vec (cp + i * ldc, n0, N);                        \
      c##i##b += gemm_load_vec (cp + i * ldc, n0 + 16, N);                   \
      c##i##c += gemm_load_vec (cp + i * ldc, n0 + 32, N);                   \
      c##i##d += gemm_load_vec (cp + i * ldc, n0 + 48, N);                   \
    }

#define GEMM4_STORE_ROW(i)                                                   \
  if (m0 + i < M)                                                            \
    {                                                                        \
      gemm_store_vec (cp + i * ldc, n0, N, c##i##a);                         \
      gemm_store_vec (cp + i * ldc, n0 + 16, N, c##i##b);                    \
      gemm_store_vec (cp + i * ldc, n0 + 32, N, c##i##c);                    \
      gemm_store_vec (cp + i * ldc, n0 + 48, N, c##i##d);                    \
    }

/* GELU (erf) of the gate times the hidden values: the tile's 32 columns
 * of GEGLU's output from its hidden (a, b) and gate (c, d) vectors */
#define GEMM4_GEGLU_ROW(i)                                                   \
  if (m0 + i < M)                                                            \
    {                                                                        \
      gemm_store_vec (cp + i * ldc, n0, n_cols, c##i##a * gemm_gelu16 (c##i##c)); \
      gemm_store_vec (cp + i * ldc, n0 + 16, n_cols, c##i##b * gemm_gelu16 (c##i##d)); \
    }

/* GEMM_EPILOGUE for the wide tile; with GEGLU the bias of the gate's
 * columns is at F + n0 and the output [F] wide */
#define GEMM4_EPILOGUE                                                       \
  do {                                                                       \
    if (has_bias)                                                            \
      {                                                                      \
        float t[GEMM_WIDE_N];                                                \
        const global float *bb = bias + bias_off;                            \
        for (int j = 0; j < GEMM_WIDE_N; j++)                                \
          {                                                                  \
            const int col = !geglu ? n0 + j : j < 32 ? n0 + j : n_cols + n0 + j - 32; \
            t[j] = (!geglu ? col < N : n0 + (j & 31) < n_cols) ? bb[col] : 0.0f; \
          }                                                                  \
        const float16 ba = vload16 (0, t), bb_ = vload16 (1, t);             \
        const float16 bc = vload16 (2, t), bd = vload16 (3, t);              \
        GEMM4_BIAS_ROW (0) GEMM4_BIAS_ROW (1) GEMM4_BIAS_ROW (2)             \
        GEMM4_BIAS_ROW (3) GEMM4_BIAS_ROW (4) GEMM4_BIAS_ROW (5)             \
      }                                                                      \
    global float *cp = c + c_off + batch * c_batch + (long) m0 * ldc;        \
    if (geglu)                                                               \
      {                                                                      \
        GEMM4_GEGLU_ROW (0) GEMM4_GEGLU_ROW (1) GEMM4_GEGLU_ROW (2)          \
        GEMM4_GEGLU_ROW (3) GEMM4_GEGLU_ROW (4) GEMM4_GEGLU_ROW (5)          \
        break;                                                               \
      }                                                                      \
    if (accumulate)                                                          \
      {                                                                      \
        GEMM4_ACCUMULATE_ROW (0) GEMM4_ACCUMULATE_ROW (1) GEMM4_ACCUMULATE_ROW (2) \
        GEMM4_ACCUMULATE_ROW (3) GEMM4_ACCUMULATE_ROW (4) GEMM4_ACCUMULATE_ROW (5) \
      }                                                                      \
    GEMM4_STORE_ROW (0) GEMM4_STORE_ROW (1) GEMM4_STORE_ROW (2)              \
    GEMM4_STORE_ROW (3) GEMM4_STORE_ROW (4) GEMM4_STORE_ROW (5)              \
  } while (0)

#define GEMM4_WIDEN_ROW(k)                                                   \
  {                                                                          \
    if ((k) + GEMM_WIDEN_AHEAD < K)                                          \
      {                                                                      \
        const long ahead = (long) ((k) + GEMM_WIDEN_AHEAD) * ldb;            \
        SDCL_PREFETCH (bp0 + ahead);                                         \
        SDCL_PREFETCH (bp1 + ahead);                                         \
        SDCL_PREFETCH (bp2 + ahead);                                         \
        SDCL_PREFETCH (bp3 + ahead + 15);                                    \
      }                                                                      \
    local float *row_ = bl + (k) * GEMM_WIDE_N;                              \
    vstore16 (vload_half16 (0, bp0 + (long) (k) * ldb), 0, row_);            \
    vstore16 (vload_half16 (0, bp1 + (long) (k) * ldb), 1, row_);            \
    vstore16 (vload_half16 (0, bp2 + (long) (k) * ldb), 2, row_);            \
    vstore16 (vload_half16 (0, bp3 + (long) (k) * ldb), 3, row_);            \
  }

#define GEMM4_LOCAL_LOOP(blp)                                                \
  {                                                                          \
    const local float *lp = (blp);                                           \
    for (int k = 0; k < K; k++)                                              \
      {                                                                      \
        const float16 b0 = vload16 (0, lp), b1 = vload16 (1, lp);           \
        const float16 b2 = vload16 (2, lp), b3 = vload16 (3, lp);           \
        lp += GEMM_WIDE_N;                                                   \
        GEMM4_FMA_6;                                                         \
      }                                                                      \
  }
#endif

/* ---- the products: gemm_f16, gemm_f16_local, gemm_f32 ----------------------
 *
 * One definition for both tiles: 6 x 64 where vectors are 16 wide
 * (GEMM4_* above), else 6 x two vectors (GEMM_*). The host sizes the
 * launch and the local buffer with the same width (product_tile_n() in
 * engine/ops-gemm.c).
 */
/* flags of the product kernels: C += A·B, and GEGLU (16-wide tiles only:
 * N = 2F columns of B, F a multiple of 16, give the F columns of
 * hidden · gelu(gate), ldc >= F) */
#define GEMM_ACCUMULATE 1
#define GEMM_GEGLU      2

#if SDCL_GEMM_VW == 16
/* n_cols: the columns the tile's n0 runs over (F with GEGLU), n_step: its
 * step (32 with GEGLU: hidden and gate columns in one tile) */
#define GEMM_PROD_FLAGS                                                      \
  const int accumulate = flags & GEMM_ACCUMULATE, geglu = flags & GEMM_GEGLU; \
  const int n_cols = geglu ? N / 2 : N, n_step = geglu ? 32 : GEMM_WIDE_N
#define GEMM_PROD_N            GEMM_WIDE_N
#define GEMM_PROD_B_PANELS     GEMM4_B_PANELS
#define GEMM_PROD_ACC_DECL     GEMM4_ACC_DECL
#define GEMM_PROD_K_LOOP       GEMM4_K_LOOP
#define GEMM_PROD_LOCAL_LOOP   GEMM4_LOCAL_LOOP
#define GEMM_PROD_WIDEN_ROW    GEMM4_WIDEN_ROW
#define GEMM_PROD_EPILOGUE     GEMM4_EPILOGUE
#else
#define GEMM_PROD_FLAGS                                                      \
  const int accumulate = flags & GEMM_ACCUMULATE, n_cols = N, n_step = GEMM_TILE_N
#define GEMM_PROD_N            GEMM_TILE_N
#define GEMM_PROD_B_PANELS     GEMM_B_PANELS
#define GEMM_PROD_ACC_DECL     GEMM_ACC_DECL
#define GEMM_PROD_K_LOOP       GEMM_K_LOOP
#define GEMM_PROD_LOCAL_LOOP   GEMM_LOCAL_LOOP
#define GEMM_PROD_WIDEN_ROW    GEMM_WIDEN_ROW
#define GEMM_PROD_EPILOGUE     GEMM_EPILOGUE
#endif

/* A product kernel whose B is read from global memory as T through LOADB
 * (each row of the tile's panels every k). */
#define GEMM_PROD_KERNEL(name, T, LOADB)                                     \
kernel void name (global const float *a, ulong a_off, long lda, long a_batch, int M, int K, \
          global const T *b, ulong b_off, long ldb, long b_batch, long b_panel, int N, \
          global const float *bias, ulong bias_off, int has_bias,           \
          global float *c, ulong c_off, long ldc, long c_batch, int flags)   \
{                                                                            \
  GEMM_PROD_FLAGS;                                                           \
  const int n0 = get_global_id (0) * n_step, m0 = get_global_id (1) * GEMM_TM; \
  const int batch = get_global_id (2);                                       \
  if (n0 >= n_cols || m0 >= M)                                               \
    return;                                                                  \
  GEMM_A_ROWS;                                                               \
  GEMM_PROD_B_PANELS (T);                                                    \
  GEMM_PROD_ACC_DECL;                                                        \
  GEMM_PROD_K_LOOP (LOADB);                                                  \
  GEMM_PROD_EPILOGUE;                                                        \
}

/* B with f16 storage (linear weights). */
GEMM_PROD_KERNEL (gemm_f16, half, GEMM_LOAD_F16)

/* B with f16 storage for products with few rows (CPUs): the group's
 * work-items first widen its B columns (K x GEMM_PROD_N) into local memory
 * together, then each reads f32 from there, so every weight is converted
 * once per group instead of once per row tile. bl holds K · GEMM_PROD_N
 * floats. Each work-item widens a run of consecutive rows: PoCL runs a
 * group's work-items one after the other, so the rows are read in order,
 * each fetched GEMM_WIDEN_AHEAD rows ahead. */
kernel void gemm_f16_local (global const float *a, ulong a_off, long lda, long a_batch, int M,
          int K, global const half *b, ulong b_off, long ldb, long b_batch, long b_panel, int N,
          global const float *bias, ulong bias_off, int has_bias,
          global float *c, ulong c_off, long ldc, long c_batch, int flags,
          local float *bl)
{
  GEMM_PROD_FLAGS;
  const int n0 = get_global_id (0) * n_step, m0 = get_global_id (1) * GEMM_TM;
  const int batch = get_global_id (2);
  if (n0 < n_cols)
    {
      GEMM_PROD_B_PANELS (half);
      const int per = (K + get_local_size (1) - 1) / get_local_size (1);
      const int k_end = min (K, (int) (get_local_id (1) + 1) * per);
      for (int k = get_local_id (1) * per; k < k_end; k++)
        GEMM_PROD_WIDEN_ROW (k);
    }
  barrier (CLK_LOCAL_MEM_FENCE);
  if (n0 >= n_cols || m0 >= M)
    return;
  GEMM_A_ROWS;
  GEMM_PROD_ACC_DECL;
  GEMM_PROD_LOCAL_LOOP (bl);
  GEMM_PROD_EPILOGUE;
}

/* B with f32 storage: linear weights kept in f32, packed panels. */
GEMM_PROD_KERNEL (gemm_f32, float, GEMM_LOAD_F32)

/* Widens f16 weights to f32, 8 per work-item: count is a multiple of 16
 * (whole padded rows). Used once per call before a large product, because
 * converting inside the K loop (two vcvtph2ps per 12 FMAs) costs a third
 * of the FMA throughput on x86, while here each weight is converted once
 * for all the rows that use it. */
kernel void gemm_widen_f16 (global const half *w, ulong w_off, global float *out, long count)
{
  const long i = get_global_id (0);
  if (i * 8 < count)
    vstore8 (vload_half8 (i, w + w_off), i, out);
}

/* Packs B as f32 panels of 16 columns for the kernels above:
 *   dst[((batch · panels + p) · K + k) · 16 + j] = B[k][p·16 + j], 0 past N,
 * where B[k][n] is src[off + batch · src_batch + k · ld_k + n · ld_n]; so
 * one kernel packs a matrix (ld_n 1), its transpose (ld_k 1) or a weight's
 * rows, from f32 or f16. Each work-item writes one 16-wide row of a panel:
 * global (K, panels, batches). Sequential panels make the product's K loop
 * one stream per work-item instead of a 64-byte read per row of a wide B
 * (a new page every few rows: TLB-bound), and pad any N without a masked
 * load in the K loop. */
#define GEMM_PACK_BODY(LOAD8, LOAD1)                                         \
  const int k = get_global_id (0), p = get_global_id (1);                    \
  const long batch = get_global_id (2);                                      \
  if (k >= K || p >= panels)                                                 \
    return;                                                                  \
  const long at = off + batch * src_batch + (long) k * ld_k;                 \
  global float *d = dst + ((batch * panels + p) * K + k) * 16;               \
  const int n0 = p * 16;                                                     \
  if (ld_n == 1 && n0 + 16 <= N)                                             \
    {                                                                        \
      vstore8 (LOAD8 (0, src + at + n0), 0, d);                              \
      vstore8 (LOAD8 (1, src + at + n0), 1, d);                              \
      return;                                                                \
    }                                                                        \
  for (int j = 0; j < 16; j++)                                               \
    d[j] = n0 + j < N ? LOAD1 (src + at + (long) (n0 + j) * ld_n) : 0.0f

#define GEMM_DEREF_F32(p) (*(p))
#define GEMM_DEREF_F16(p) vload_half (0, (p))

kernel void gemm_pack_f32 (global const float *src, ulong off, long ld_k, long ld_n,
               long src_batch, int K, int N, int panels, global float *dst)
{
  GEMM_PACK_BODY (vload8, GEMM_DEREF_F32);
}

kernel void gemm_pack_f16 (global const half *src, ulong off, long ld_k, long ld_n,
               long src_batch, int K, int N, int panels, global float *dst)
{
  GEMM_PACK_BODY (vload_half8, GEMM_DEREF_F16);
}

/* ---- GPUs: tiles in local memory ---------------------------------------------
 *
 * The kernels above give each work-item its own tile and count on caches;
 * on a GPU that leaves the multiprocessors waiting on loads (gemm_f32 ran
 * at about a ninth of cuBLAS's sgemm on an H200). gemm_tiled_* is the
 * classic shared-memory GEMM: a group of 16x16 work-items computes a
 * 128x128 block of C; per step of GT_BK = 16 along K it copies a 128x16
 * block of A (transposed, k-major) and a 16x128 block of B into local
 * memory, and each work-item multiplies 8 rows by 8 columns from there
 * (two float4 of A and two of B per k: 64 FMAs per 4 local loads). The
 * next step's blocks are read into registers while this step computes.
 * A work-item's rows are ty·4 .. +3 and 64 + ty·4 .. +3, its columns
 * tx·4 .. +3 and 64 + tx·4 .. +3, so the local reads are float4 and the
 * stores of C are 16-byte runs across the work-items of a row.
 * Same arguments and layouts as gemm_f32 / gemm_f16; B is read straight
 * from its 16-column panels, f16 converted on the way to local memory.
 * H200: 4096x320 · 320x1280 at 15.3 TFLOP/s with the k loop unrolled
 * (14.7 without; gemm_f32 5.5, cuBLAS's sgemm 35.6). Measured and not
 * kept: double local blocks with one barrier per step (no faster) and
 * A's copy as row t%128, so a warp's local stores hit 32 banks (10 %
 * slower: each work-item then reads its own row of A).
 * Launch: local (16, 16, 1), global (16 · ceil(N / 128), 16 · ceil(M /
 * 128), batches).
 */
#define GT_BM 128
#define GT_BN 128
#define GT_BK 16

/* What both block shapes share: the group's place, its local blocks
 * (BM rows of A), this work-item's share of B (panel t/32, k (t%32)/2,
 * columns ((t%32)%2)·8 .. +7, zero outside) and the start of the
 * epilogue: the columns, the bias, C's batch. */
#define GT_GROUP(BM)                                                         \
  local float la[GT_BK * (BM)], lb[GT_BK * GT_BN];                           \
  const int tx = get_local_id (0), ty = get_local_id (1);                    \
  const int t = ty * 16 + tx;                                                \
  const int m0 = get_group_id (1) * (BM), n0 = get_group_id (0) * GT_BN;     \
  const int batch = get_group_id (2);                                        \
  const int bpan = t / 32, bk = (t % 32) / 2, bj = (t % 2) * 8;              \
  const int bcol = n0 + bpan * 16;                                           \
  const int bln = bpan * 16 + bj

#define GT_B_POINTER(T)                                                      \
  const global T *bp = b + b_off + batch * b_batch                          \
                       + (long) (min (bcol, N - 1) / 16) * b_panel + bj

#define GT_FETCH_B(LOADB8)                                                   \
  const int kb = k0 + bk;                                                    \
  rb = bcol < N && kb < K ? LOADB8 (bp + (long) kb * ldb) : (float8) (0.0f)

#define GT_STORE_B vstore8 (rb, 0, lb + bk * GT_BN + bln)

#define GT_EPILOGUE_START                                                    \
  const int col0 = n0 + tx * 4, col1 = n0 + 64 + tx * 4;                     \
  float4 bias0 = 0.0f, bias1 = 0.0f;                                         \
  if (has_bias)                                                              \
    {                                                                        \
      bias0 = gt_load4 (bias + bias_off, col0, N);                           \
      bias1 = gt_load4 (bias + bias_off, col1, N);                           \
    }                                                                        \
  global float *cb = c + c_off + batch * c_batch

/* This work-item's share of A's next block: row t/2, k (t%2)·8 .. +7,
 * zero outside; and of B's. */
#define GT_FETCH(LOADB8)                                                     \
  do {                                                                       \
    const int ka = k0 + akof;                                                \
    if (arow < M && ka + 8 <= K)                                             \
      ra = vload8 (0, ap + ka);                                              \
    else                                                                     \
      {                                                                      \
        float t_[8];                                                         \
        for (int j_ = 0; j_ < 8; j_++)                                       \
          t_[j_] = arow < M && ka + j_ < K ? ap[ka + j_] : 0.0f;             \
        ra = vload8 (0, t_);                                                 \
      }                                                                      \
    GT_FETCH_B (LOADB8);                                                     \
  } while (0)

#define GT_STORE_LOCAL                                                       \
  do {                                                                       \
    const float ta_[8] = { ra.s0, ra.s1, ra.s2, ra.s3, ra.s4, ra.s5, ra.s6, ra.s7 }; \
    for (int j_ = 0; j_ < 8; j_++)                                           \
      la[(akof + j_) * GT_BM + alr] = ta_[j_];                               \
    GT_STORE_B;                                                              \
  } while (0)

#define GT_FMA4(acc, s, bv) acc = fma ((float4) (s), (bv), acc)

#define GT_BODY(T, LOADB8)                                                   \
  GT_GROUP (GT_BM);                                                          \
  const int alr = t / 2, akof = (t % 2) * 8, arow = m0 + alr;                \
  const global float *ap = a + a_off + batch * a_batch + (long) min (arow, M - 1) * lda; \
  GT_B_POINTER (T);                                                          \
  float4 c00 = 0.0f, c01 = 0.0f, c10 = 0.0f, c11 = 0.0f, c20 = 0.0f, c21 = 0.0f, \
         c30 = 0.0f, c31 = 0.0f, c40 = 0.0f, c41 = 0.0f, c50 = 0.0f, c51 = 0.0f, \
         c60 = 0.0f, c61 = 0.0f, c70 = 0.0f, c71 = 0.0f;                     \
  float8 ra, rb;                                                             \
  int k0 = 0;                                                                \
  GT_FETCH (LOADB8);                                                         \
  for (; k0 < K; )                                                           \
    {                                                                        \
      barrier (CLK_LOCAL_MEM_FENCE);                                         \
      GT_STORE_LOCAL;                                                        \
      barrier (CLK_LOCAL_MEM_FENCE);                                         \
      k0 += GT_BK;                                                           \
      if (k0 < K)                                                            \
        GT_FETCH (LOADB8);                                                   \
      _Pragma ("unroll")                                                     \
      for (int kk = 0; kk < GT_BK; kk++)                                     \
        {                                                                    \
          const float4 a0 = vload4 (0, la + kk * GT_BM + ty * 4);            \
          const float4 a1 = vload4 (0, la + kk * GT_BM + 64 + ty * 4);       \
          const float4 b0 = vload4 (0, lb + kk * GT_BN + tx * 4);            \
          const float4 b1 = vload4 (0, lb + kk * GT_BN + 64 + tx * 4);       \
          GT_FMA4 (c00, a0.x, b0); GT_FMA4 (c01, a0.x, b1);                  \
          GT_FMA4 (c10, a0.y, b0); GT_FMA4 (c11, a0.y, b1);                  \
          GT_FMA4 (c20, a0.z, b0); GT_FMA4 (c21, a0.z, b1);                  \
          GT_FMA4 (c30, a0.w, b0); GT_FMA4 (c31, a0.w, b1);                  \
          GT_FMA4 (c40, a1.x, b0); GT_FMA4 (c41, a1.x, b1);                  \
          GT_FMA4 (c50, a1.y, b0); GT_FMA4 (c51, a1.y, b1);                  \
          GT_FMA4 (c60, a1.z, b0); GT_FMA4 (c61, a1.z, b1);                  \
          GT_FMA4 (c70, a1.w, b0); GT_FMA4 (c71, a1.w, b1);                  \
        }                                                                    \
    }                                                                        \
  GT_EPILOGUE_START;                                                         \
  const int r0 = m0 + ty * 4, r1 = m0 + 64 + ty * 4;                         \
  gt_store_row (cb, ldc, r0, M, col0, col1, N, c00 + bias0, c01 + bias1, accumulate); \
  gt_store_row (cb, ldc, r0 + 1, M, col0, col1, N, c10 + bias0, c11 + bias1, accumulate); \
  gt_store_row (cb, ldc, r0 + 2, M, col0, col1, N, c20 + bias0, c21 + bias1, accumulate); \
  gt_store_row (cb, ldc, r0 + 3, M, col0, col1, N, c30 + bias0, c31 + bias1, accumulate); \
  gt_store_row (cb, ldc, r1, M, col0, col1, N, c40 + bias0, c41 + bias1, accumulate); \
  gt_store_row (cb, ldc, r1 + 1, M, col0, col1, N, c50 + bias0, c51 + bias1, accumulate); \
  gt_store_row (cb, ldc, r1 + 2, M, col0, col1, N, c60 + bias0, c61 + bias1, accumulate); \
  gt_store_row (cb, ldc, r1 + 3, M, col0, col1, N, c70 + bias0, c71 + bias1, accumulate)

/* Four values of a row from col on, zero past n. */
inline float4
gt_load4 (const global float *p, int col, int n)
{
  if (col + 4 <= n)
    return vload4 (0, p + col);
  float t[4];
  for (int j = 0; j < 4; j++)
    t[j] = col + j < n ? p[col + j] : 0.0f;
  return vload4 (0, t);
}

inline void
gt_store4 (global float *p, int col, int n, float4 v, int accumulate)
{
  if (col + 4 <= n)
    {
      if (accumulate)
        v += vload4 (0, p + col);
      vstore4 (v, 0, p + col);
      return;
    }
  const float t[4] = { v.x, v.y, v.z, v.w };
  for (int j = 0; j < 4 && col + j < n; j++)
    p[col + j] = accumulate ? p[col + j] + t[j] : t[j];
}

/* Row r of C (if r < M): the work-item's two runs of four columns. */
inline void
gt_store_row (global float *cb, long ldc, int r, int M, int col0, int col1, int N, float4 v0,
              float4 v1, int accumulate)
{
  if (r >= M)
    return;
  global float *p = cb + (long) r * ldc;
  gt_store4 (p, col0, N, v0, accumulate);
  gt_store4 (p, col1, N, v1, accumulate);
}

#define GT_LOAD_F32(p) vload8 (0, (p))
#define GT_LOAD_F16(p) vload_half8 (0, (p))

/* name_f32 and name_f16: the tiled kernels with B stored f32 or f16 */
#define GT_KERNEL(name, T, BODY, LOADB8)                                     \
kernel __attribute__ ((reqd_work_group_size (16, 16, 1)))                    \
void name (global const float *a, ulong a_off, long lda, long a_batch, int M, int K, \
           global const T *b, ulong b_off, long ldb, long b_batch, long b_panel, int N, \
           global const float *bias, ulong bias_off, int has_bias,         \
           global float *c, ulong c_off, long ldc, long c_batch, int accumulate) \
{                                                                            \
  BODY (T, LOADB8);                                                          \
}

GT_KERNEL (gemm_tiled_f32, float, GT_BODY, GT_LOAD_F32)
GT_KERNEL (gemm_tiled_f16, half, GT_BODY, GT_LOAD_F16)

/* The same for products with few rows (Winograd's per-position products
 * at the small levels: 8 to 64 rows): blocks of 32x128, each work-item 2
 * rows (ty·2, +1) by the same 8 columns, so a block does not compute 96
 * rows that do not exist. Per step the group copies 32x16 of A (two
 * values per work-item) and the same 16x128 of B. */
#define GT32_BM 32

#define GT32_BODY(T, LOADB8)                                                 \
  GT_GROUP (GT32_BM);                                                        \
  const int alr = t / 8, akof = (t % 8) * 2, arow = m0 + alr;                \
  const global float *ap = a + a_off + batch * a_batch + (long) min (arow, M - 1) * lda; \
  GT_B_POINTER (T);                                                          \
  float4 c00 = 0.0f, c01 = 0.0f, c10 = 0.0f, c11 = 0.0f;                     \
  float2 ra;                                                                 \
  float8 rb;                                                                 \
  int k0 = 0;                                                                \
  GT32_FETCH (LOADB8);                                                       \
  for (; k0 < K; )                                                           \
    {                                                                        \
      barrier (CLK_LOCAL_MEM_FENCE);                                         \
      la[akof * GT32_BM + alr] = ra.x;                                       \
      la[(akof + 1) * GT32_BM + alr] = ra.y;                                 \
      GT_STORE_B;                                                            \
      barrier (CLK_LOCAL_MEM_FENCE);                                         \
      k0 += GT_BK;                                                           \
      if (k0 < K)                                                            \
        GT32_FETCH (LOADB8);                                                 \
      _Pragma ("unroll")                                                     \
      for (int kk = 0; kk < GT_BK; kk++)                                     \
        {                                                                    \
          const float2 a0 = vload2 (0, la + kk * GT32_BM + ty * 2);          \
          const float4 b0 = vload4 (0, lb + kk * GT_BN + tx * 4);            \
          const float4 b1 = vload4 (0, lb + kk * GT_BN + 64 + tx * 4);       \
          GT_FMA4 (c00, a0.x, b0); GT_FMA4 (c01, a0.x, b1);                  \
          GT_FMA4 (c10, a0.y, b0); GT_FMA4 (c11, a0.y, b1);                  \
        }                                                                    \
    }                                                                        \
  GT_EPILOGUE_START;                                                         \
  const int r0 = m0 + ty * 2;                                                \
  gt_store_row (cb, ldc, r0, M, col0, col1, N, c00 + bias0, c01 + bias1, accumulate); \
  gt_store_row (cb, ldc, r0 + 1, M, col0, col1, N, c10 + bias0, c11 + bias1, accumulate)

#define GT32_FETCH(LOADB8)                                                   \
  do {                                                                       \
    const int ka = k0 + akof;                                                \
    ra.x = arow < M && ka < K ? ap[ka] : 0.0f;                               \
    ra.y = arow < M && ka + 1 < K ? ap[ka + 1] : 0.0f;                       \
    GT_FETCH_B (LOADB8);                                                     \
  } while (0)

GT_KERNEL (gemm_tiled32_f32, float, GT32_BODY, GT_LOAD_F32)
GT_KERNEL (gemm_tiled32_f16, half, GT32_BODY, GT_LOAD_F16)

/* Split K: a product with too few blocks to fill the device runs as
 * `splits` products over consecutive ranges of K (the tiled kernels'
 * batches, partial sums p [splits][M][N]); this adds them up with the
 * bias into C (C += ... with accumulate). global (N, M). */
kernel void gemm_splitk_sum (global const float *p, int splits, int M, int N,
                             global const float *bias, ulong bias_off, int has_bias,
                             global float *c, ulong c_off, long ldc, int accumulate)
{
  const int n = get_global_id (0), m = get_global_id (1);
  if (n >= N || m >= M)
    return;
  float s = 0.0f;
  for (int i = 0; i < splits; i++)
    s += p[((long) i * M + m) * N + n];
  if (has_bias)
    s += bias[bias_off + n];
  global float *cp = c + c_off + (long) m * ldc + n;
  *cp = accumulate ? *cp + s : s;
}

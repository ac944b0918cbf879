/* attention.cl — multi-head scaled dot-product attention with online
 * softmax (FlashAttention's recurrence), so the score matrix is never
 * stored: each work-item owns one query row of one head, walks the keys in
 * blocks of ATT_BK, keeps the running max m and sum l, and rescales its
 * output accumulator once per block.
 *
 * Layout: q [H·D, Sq, B], k and v [H·D, Skv, B] with row strides (in
 * elements) so q, k, v can be views into one fused projection. D must be a
 * multiple of 4 and at most ATT_MAX_D. Launch: global (Sq rounded up, H, B);
 * the work-items of a group share the same keys, which stay in cache.
 */
#define ATT_BK     16
#define ATT_MAX_D4 40   /* D / 4 <= 40, i.e. head dims up to 160 */

kernel void attention_f32 (global const float *q, ulong q_off, long q_row, long q_batch,
                           global const float *k, ulong k_off, long k_row, long k_batch,
                           global const float *v, ulong v_off, long v_row, long v_batch,
                           global float *o, ulong o_off, long o_row, long o_batch,
                           int Sq, int Skv, int D, float scale, int causal)
{
  const int i = get_global_id (0), h = get_global_id (1), b = get_global_id (2);
  if (i >= Sq)
    return;
  const int D4 = D / 4;
  const global float *qp = q + q_off + b * q_batch + i * q_row + h * D;
  const global float *kp = k + k_off + b * k_batch + h * D;
  const global float *vp = v + v_off + b * v_batch + h * D;

  float4 qv[ATT_MAX_D4], acc[ATT_MAX_D4];
  for (int d = 0; d < D4; d++)
    {
      qv[d] = vload4 (d, qp) * scale;
      acc[d] = (float4) (0.0f);
    }

  float m = -INFINITY, l = 0.0f;
  const int n_keys = causal ? min (Skv, i + 1) : Skv;
  float s[ATT_BK];
  for (int j0 = 0; j0 < n_keys; j0 += ATT_BK)
    {
      const int nb = min (ATT_BK, n_keys - j0);
      float bmax = -INFINITY;
      for (int j = 0; j < nb; j++)
        {
          const global float *kr = kp + (long) (j0 + j) * k_row;
          float4 dot = (float4) (0.0f);
          for (int d = 0; d < D4; d++)
            dot = mad (qv[d], vload4 (d, kr), dot);
          s[j] = dot.x + dot.y + dot.z + dot.w;
          bmax = fmax (bmax, s[j]);
        }
      const float m_new = fmax (m, bmax);
      const float corr = exp (m - m_new);     /* 0 on the first block */
      l *= corr;
      for (int d = 0; d < D4; d++)
        acc[d] *= corr;
      for (int j = 0; j < nb; j++)
        {
          const float p = exp (s[j] - m_new);
          l += p;
          const global float *vr = vp + (long) (j0 + j) * v_row;
          for (int d = 0; d < D4; d++)
            acc[d] = mad ((float4) (p), vload4 (d, vr), acc[d]);
        }
      m = m_new;
    }

  global float *op = o + o_off + b * o_batch + i * o_row + h * D;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int d = 0; d < D4; d++)
    vstore4 (acc[d] * inv, d, op);
}

/* ---- GPUs: keys and values through local memory -------------------------
 *
 * attention_f32 above leaves each work-item reading every key and value
 * row from global memory on its own and sizes its registers for the widest
 * head (160), which a GPU compiler spills (H200: 1.8 TFLOP/s at 4096
 * tokens, heads of 40). attention_tiled_d<D/4> is the same recurrence for
 * one head width known when compiling: a group of AT_Q work-items, one
 * query row each, copies blocks of AT_K keys and values into local memory
 * together, then every work-item reads them from there (the same address
 * across the group: a broadcast). Scores of masked-out keys (past Skv) are
 * -inf, so they weigh 0. No causal mask (the text encoder, whose causal
 * attention is small, runs attention_f32). Same layouts as attention_f32;
 * launch: local (AT_Q, 1, 1), global (Sq rounded up to AT_Q, H, B).
 */
#define AT_Q 64
#define AT_K 32

#define ATT_TILED_KERNEL(D4)                                                 \
kernel __attribute__ ((reqd_work_group_size (AT_Q, 1, 1)))                   \
void attention_tiled_d##D4 (global const float *q, ulong q_off, long q_row, long q_batch, \
                            global const float *k, ulong k_off, long k_row, long k_batch, \
                            global const float *v, ulong v_off, long v_row, long v_batch, \
                            global float *o, ulong o_off, long o_row, long o_batch, \
                            int Sq, int Skv, float scale)                    \
{                                                                            \
  local float4 lk[AT_K * D4], lv[AT_K * D4];                                 \
  const int t = get_local_id (0), i = get_group_id (0) * AT_Q + t;           \
  const int h = get_group_id (1), b = get_group_id (2);                      \
  const global float *qp = q + q_off + b * q_batch + (long) min (i, Sq - 1) * q_row \
                           + h * (D4 * 4);                                   \
  const global float *kp = k + k_off + b * k_batch + h * (D4 * 4);           \
  const global float *vp = v + v_off + b * v_batch + h * (D4 * 4);           \
  float4 qv[D4], acc[D4];                                                    \
  for (int d = 0; d < D4; d++)                                               \
    {                                                                        \
      qv[d] = vload4 (d, qp) * scale;                                        \
      acc[d] = (float4) (0.0f);                                              \
    }                                                                        \
  float m = -INFINITY, l = 0.0f;                                             \
  for (int j0 = 0; j0 < Skv; j0 += AT_K)                                     \
    {                                                                        \
      const int nb = min (AT_K, Skv - j0);                                   \
      barrier (CLK_LOCAL_MEM_FENCE);                                         \
      for (int e = t; e < AT_K * D4; e += AT_Q)                              \
        {                                                                    \
          const long r = j0 + min (e / D4, nb - 1);                          \
          lk[e] = vload4 (e % D4, kp + r * k_row);                           \
          lv[e] = vload4 (e % D4, vp + r * v_row);                           \
        }                                                                    \
      barrier (CLK_LOCAL_MEM_FENCE);                                         \
      float s[AT_K];                                                         \
      float bmax = -INFINITY;                                                \
      for (int j = 0; j < AT_K; j++)                                         \
        {                                                                    \
          float4 dot = (float4) (0.0f);                                      \
          for (int d = 0; d < D4; d++)                                       \
            dot = fma (qv[d], lk[j * D4 + d], dot);                          \
          s[j] = j < nb ? dot.x + dot.y + dot.z + dot.w : -INFINITY;         \
          bmax = fmax (bmax, s[j]);                                          \
        }                                                                    \
      const float m_new = fmax (m, bmax);                                    \
      const float corr = exp (m - m_new);     /* 0 on the first block */     \
      l *= corr;                                                             \
      for (int d = 0; d < D4; d++)                                           \
        acc[d] *= corr;                                                      \
      for (int j = 0; j < AT_K; j++)                                         \
        {                                                                    \
          const float p = exp (s[j] - m_new);                                \
          l += p;                                                            \
          for (int d = 0; d < D4; d++)                                       \
            acc[d] = fma ((float4) (p), lv[j * D4 + d], acc[d]);             \
        }                                                                    \
      m = m_new;                                                             \
    }                                                                        \
  if (i < Sq)                                                                \
    {                                                                        \
      global float *op = o + o_off + b * o_batch + (long) i * o_row + h * (D4 * 4); \
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;                          \
      for (int d = 0; d < D4; d++)                                           \
        vstore4 (acc[d] * inv, d, op);                                       \
    }                                                                        \
}

/* head widths 32, 40, 64 and 80 (SD 1.x: 40 and 80; 2.x and SDXL: 64) */
ATT_TILED_KERNEL (8)
ATT_TILED_KERNEL (10)
ATT_TILED_KERNEL (16)
ATT_TILED_KERNEL (20)

/* ---- CPUs with 16-wide vectors (AVX-512): the same recurrence, register
 * tiled like cl/gemm.cl ------------------------------------------------------
 *
 * A work-item owns FA_TQ = 6 query rows of one head and walks the keys in
 * blocks of FA_KB: S = Q·Kᵀ for the block, 32 keys at a time (6 rows x two
 * float16 of keys, the GEMM's K loop over the head dimension), written to
 * a small private buffer; then per row the online softmax update over the
 * whole block (one maximum, the running sum and output rescaled only when
 * it grows, a polynomial exp2 with scale·log2 e folded in), the
 * probabilities replacing the scores in the buffer; then O += P·V with one
 * float16 of V per 16 head dimensions (at most 3: D <= 48) and P broadcast
 * from the buffer. The scores never leave the core's L1, where the block
 * path (GEMM, softmax, GEMM) writes and rereads a 16 MiB block of them.
 * The per-block work of the softmax (the maximum, the rescale test) is
 * paid once per FA_KB keys, and the scores of a block need no registers
 * beyond the 32 keys being summed, so the output rows stay in registers.
 * Tried and slower on PoCL (Xeon, 2 cores): 4 rows per work-item (as fast
 * as the block path); the scores of 48 keys in registers (spills).
 *
 * K and V come packed as sdcl_matmul_pack makes them for the GEMM: kp in
 * panels of 16 keys, each D x 16 contiguous (batch stride kp_batch); vp in
 * panels of 16 head dimensions, each Skv x 16 contiguous (vp_batch). Both
 * are zero past Skv and D. q and o are one head's columns (offsets include
 * the head), rows of q_row / o_row, batches of q_batch / o_batch.
 * Launch: global (ceil(Sq / 6) rounded up to the group, 1, B), any group
 * along dimension 0 (the work-items of a group share the key blocks).
 */
#if SDCL_GEMM_VW == 16
#define FA_TQ 6
#ifndef FA_KB
#define FA_KB 128
#endif

#if defined (FP_FAST_FMAF) || defined (__FMA__) || defined (__ARM_FEATURE_FMA) || SDCL_IS_GPU
#define FA_FMA(a, b, c) fma ((a), (b), (c))
#else
#define FA_FMA(a, b, c) mad ((a), (b), (c))
#endif

/* max without fmax's NaN rules, which cost several instructions per
 * step on x86 (NaN scores give NaN through the exp anyway) */
#define FA_MAX(a, b) ((a) > (b) ? (a) : (b))

inline float fa_hmax (float16 v)
{
  const float8 a = FA_MAX (v.lo, v.hi);
  const float4 b = FA_MAX (a.lo, a.hi);
  const float2 c = FA_MAX (b.lo, b.hi);
  return FA_MAX (c.x, c.y);
}

inline float fa_hsum (float16 v)
{
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
  const float2 c = b.lo + b.hi;
  return c.x + c.y;
}

/* 2^x for x <= 0 (scores minus their running max), clamped at -127 where
 * the result is 0 in float anyway: 2^n · 2^f, f in [-0.5, 0.5], with 2^f a
 * degree-6 polynomial (relative error 2e-9 before rounding). PoCL's
 * library exp2 handles the whole range and costs several times as much. */
inline float16 fa_exp2 (float16 y)
{
  y = FA_MAX (y, (float16) (-127.0f));
  /* round to nearest through the float format (|y| < 2^22) */
  const float16 n = (y + 12582912.0f) - 12582912.0f, f = y - n;
  float16 p = 1.533757683e-04f;
  p = FA_FMA (p, f, 1.339986036e-03f);
  p = FA_FMA (p, f, 9.618519534e-03f);
  p = FA_FMA (p, f, 5.550328998e-02f);
  p = FA_FMA (p, f, 2.402264661e-01f);
  p = FA_FMA (p, f, 6.931472056e-01f);
  p = FA_FMA (p, f, 1.000000001e+00f);
  return p * as_float16 ((convert_int16 (n) + 127) << 23);
}

#define FA_QK_ROW(r)                                                         \
  {                                                                          \
    const float16 a_ = (float16) (q##r[d]);                                  \
    s##r##a = FA_FMA (a_, k0, s##r##a);                                      \
    s##r##b = FA_FMA (a_, k1, s##r##b);                                      \
  }

/* Row r's 32 scores into the buffer, -inf past the keys. */
#define FA_STORE_S_ROW(r)                                                    \
  sb[(r * FA_KB + jp) / 16] = select (s##r##a, (float16) (-INFINITY), mask_a);       \
  sb[(r * FA_KB + jp) / 16 + 1] = select (s##r##b, (float16) (-INFINITY), mask_b);

/* Row r's scores of the block (nv vectors in the buffer): the running
 * max, the rescale of the row's sum and output, and its probabilities in
 * place of the scores. The max is kept in unscaled units and the scale
 * applied to the difference, as the block path does: the scores near the
 * max then give exact small differences, where scaling first would round
 * both terms (an error of about 1e-6 in the exponent at scores of 16). */
#define FA_SOFTMAX_ROW(r)                                                    \
  {                                                                          \
    float16 *sr = sb + r * (FA_KB / 16);                                     \
    float16 mx = sr[0];                                                      \
    for (int v = 1; v < nv; v++)                                             \
      mx = FA_MAX (mx, sr[v]);                                               \
    const float mn = FA_MAX (m##r, fa_hmax (mx));                            \
    if (mn > m##r)                                                           \
      {                                                                      \
        /* a new maximum: rescale what was summed (0 on the first block) */  \
        const float corr = exp2 ((m##r - mn) * scale);                       \
        l##r *= corr; o##r##a *= corr; o##r##b *= corr; o##r##c *= corr;     \
        m##r = mn;                                                           \
      }                                                                      \
    float16 sum = 0.0f;                                                      \
    for (int v = 0; v < nv; v++)                                             \
      {                                                                      \
        const float16 p = fa_exp2 ((sr[v] - mn) * scale);                    \
        sum += p;                                                            \
        sr[v] = p;                                                           \
      }                                                                      \
    l##r += fa_hsum (sum);                                                   \
  }

#define FA_PV_ROW(r)                                                         \
  {                                                                          \
    const float16 p_ = (float16) (pf[r * FA_KB + j]);                        \
    o##r##a = FA_FMA (p_, v0, o##r##a);                                      \
    o##r##b = FA_FMA (p_, v1, o##r##b);                                      \
    o##r##c = FA_FMA (p_, v2, o##r##c);                                      \
  }

/* Stores the D values of row r (if it exists), divided by its sum. */
#define FA_STORE_ROW(r)                                                      \
  if (i0 + r < Sq)                                                           \
    {                                                                        \
      const float inv = 1.0f / l##r;                                         \
      global float *dst = ob + (long) (i0 + r) * o_row;                      \
      float t[48];                                                           \
      vstore16 (o##r##a * inv, 0, t);                                        \
      vstore16 (o##r##b * inv, 0, t + 16);                                   \
      vstore16 (o##r##c * inv, 0, t + 32);                                   \
      for (int d = 0; d < D; d++)                                            \
        dst[d] = t[d];                                                       \
    }

kernel void attention_flash16 (global const float *q, ulong q_off, long q_row, long q_batch,
                               global const float *kp, ulong kp_off, long kp_batch,
                               global const float *vp, ulong vp_off, long vp_batch,
                               global float *o, ulong o_off, long o_row, long o_batch,
                               int Sq, int Skv, int D, float scale)
{
  /* a work-item past the rows still walks the keys with its group (the
   * barrier below) on the last row, and stores nothing */
  const int live = get_global_id (0) * FA_TQ < Sq;
  const int i0 = live ? get_global_id (0) * FA_TQ : Sq - 1, b = get_global_id (2);
  /* rows past Sq repeat the last (computed, never stored) */
  const global float *qb = q + q_off + b * q_batch;
  const global float *q0 = qb + (long) i0 * q_row;
  const global float *q1 = qb + (long) min (i0 + 1, Sq - 1) * q_row;
  const global float *q2 = qb + (long) min (i0 + 2, Sq - 1) * q_row;
  const global float *q3 = qb + (long) min (i0 + 3, Sq - 1) * q_row;
  const global float *q4 = qb + (long) min (i0 + 4, Sq - 1) * q_row;
  const global float *q5 = qb + (long) min (i0 + 5, Sq - 1) * q_row;
  const global float *kb = kp + kp_off + b * kp_batch;
  const global float *vb = vp + vp_off + b * vp_batch;
  /* V's panels of 16 head dimensions; missing ones read the first (their
   * sums are computed, never stored) */
  const long vpanel = (long) Skv * 16;
  const long v1_off = D > 16 ? vpanel : 0, v2_off = D > 32 ? 2 * vpanel : 0;
  const float16 lane = (float16) (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

  float16 o0a = 0.0f, o0b = 0.0f, o0c = 0.0f, o1a = 0.0f, o1b = 0.0f, o1c = 0.0f;
  float16 o2a = 0.0f, o2b = 0.0f, o2c = 0.0f, o3a = 0.0f, o3b = 0.0f, o3c = 0.0f;
  float16 o4a = 0.0f, o4b = 0.0f, o4c = 0.0f, o5a = 0.0f, o5b = 0.0f, o5c = 0.0f;
  float l0 = 0.0f, l1 = 0.0f, l2 = 0.0f, l3 = 0.0f, l4 = 0.0f, l5 = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, m2 = -INFINITY, m3 = -INFINITY;
  float m4 = -INFINITY, m5 = -INFINITY;
  /* the block's scores, then its probabilities: row r at r · FA_KB */
  float16 sb[FA_TQ * FA_KB / 16];
  const float *pf = (const float *) sb;

  for (int j0 = 0; j0 < Skv; j0 += FA_KB)
    {
      /* the group's work-items take each block in turn, which PoCL runs
       * one after the other on a core: the block's keys and values
       * (about 45 KB at heads of 40) are read from memory once per group
       * and then from cache, not once per work-item */
      barrier (CLK_LOCAL_MEM_FENCE);
      const int nb = min (FA_KB, Skv - j0);
      /* S, 32 keys (two panels of 16) at a time; a missing second panel
       * reads the first (masked) */
      for (int jp = 0; jp < nb; jp += 32)
        {
          const global float *k0p = kb + (long) (j0 + jp) * D;
          const global float *k1p = jp + 16 < nb ? k0p + 16 * D : k0p;
          float16 s0a = 0.0f, s0b = 0.0f, s1a = 0.0f, s1b = 0.0f;
          float16 s2a = 0.0f, s2b = 0.0f, s3a = 0.0f, s3b = 0.0f;
          float16 s4a = 0.0f, s4b = 0.0f, s5a = 0.0f, s5b = 0.0f;
          for (int d = 0; d < D; d++)
            {
              const float16 k0 = vload16 (0, k0p + d * 16), k1 = vload16 (0, k1p + d * 16);
              FA_QK_ROW (0) FA_QK_ROW (1) FA_QK_ROW (2) FA_QK_ROW (3) FA_QK_ROW (4) FA_QK_ROW (5)
            }
          const float16 left = (float16) (nb - jp);
          const int16 mask_a = lane >= left, mask_b = lane + 16.0f >= left;
          FA_STORE_S_ROW (0) FA_STORE_S_ROW (1) FA_STORE_S_ROW (2)
          FA_STORE_S_ROW (3) FA_STORE_S_ROW (4) FA_STORE_S_ROW (5)
        }
      /* the vectors of scores written (whole sub-blocks of 32) */
      const int nv = (nb + 31) / 32 * 2;
      FA_SOFTMAX_ROW (0) FA_SOFTMAX_ROW (1) FA_SOFTMAX_ROW (2)
      FA_SOFTMAX_ROW (3) FA_SOFTMAX_ROW (4) FA_SOFTMAX_ROW (5)
      const global float *vr = vb + (long) j0 * 16;
      for (int j = 0; j < nb; j++, vr += 16)
        {
          const float16 v0 = vload16 (0, vr), v1 = vload16 (0, vr + v1_off);
          const float16 v2 = vload16 (0, vr + v2_off);
          FA_PV_ROW (0) FA_PV_ROW (1) FA_PV_ROW (2)
          FA_PV_ROW (3) FA_PV_ROW (4) FA_PV_ROW (5)
        }
    }

  if (!live)
    return;
  global float *ob = o + o_off + b * o_batch;
  FA_STORE_ROW (0) FA_STORE_ROW (1) FA_STORE_ROW (2)
  FA_STORE_ROW (3) FA_STORE_ROW (4) FA_STORE_ROW (5)
}
#endif

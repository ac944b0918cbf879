/* norm.cl — group norm, layer norm and softmax.
 *
 * Each reduction runs in one work-group of NORM_WG work-items (a power of
 * two) with a tree reduction in local memory. Means and variances use two
 * passes (mean, then squared deviations), which keeps fp32 accurate over the
 * million-element groups of a 512² VAE.
 */
#define NORM_WG 256

/* Sums v over the work-group; every work-item gets the result. */
inline float wg_sum (float v, local float *scratch)
{
  const int l = get_local_id (0);
  scratch[l] = v;
  barrier (CLK_LOCAL_MEM_FENCE);
  for (int s = NORM_WG / 2; s > 0; s >>= 1)
    {
      if (l < s)
        scratch[l] += scratch[l + s];
      barrier (CLK_LOCAL_MEM_FENCE);
    }
  const float r = scratch[0];
  barrier (CLK_LOCAL_MEM_FENCE);
  return r;
}

inline float wg_max (float v, local float *scratch)
{
  const int l = get_local_id (0);
  scratch[l] = v;
  barrier (CLK_LOCAL_MEM_FENCE);
  for (int s = NORM_WG / 2; s > 0; s >>= 1)
    {
      if (l < s)
        scratch[l] = fmax (scratch[l], scratch[l + s]);
      barrier (CLK_LOCAL_MEM_FENCE);
    }
  const float r = scratch[0];
  barrier (CLK_LOCAL_MEM_FENCE);
  return r;
}

/* Mean and 1/sqrt(var + eps) of each contiguous block of `n` elements;
 * one work-group per block. stats[2b] = mean, stats[2b+1] = rstd. */
kernel __attribute__ ((reqd_work_group_size (NORM_WG, 1, 1)))
void block_stats_f32 (global const float *x, ulong x_off, long n, float eps,
                      global float *stats, int blocks)
{
  local float scratch[NORM_WG];
  const int l = get_local_id (0);
  const long b = get_group_id (1);
  const global float *p = x + x_off + b * n;

  float s = 0.0f;
  for (long i = l; i < n; i += NORM_WG)
    s += p[i];
  const float mean = wg_sum (s, scratch) / (float) n;

  float q = 0.0f;
  for (long i = l; i < n; i += NORM_WG)
    {
      const float d = p[i] - mean;
      q += d * d;
    }
  const float var = wg_sum (q, scratch) / (float) n;
  if (l == 0)
    {
      stats[2 * b] = mean;
      stats[2 * b + 1] = rsqrt (var + eps);
    }
}

/* Group norm apply: x [HW, C, N] contiguous; group of channel c is
 * c / (C / G). Optional affine (has_affine) and fused SiLU. A work-item
 * does 8 pixels of one channel with vector loads and the vector exp (one
 * pixel each, through the scalar exp, ran at 2 GB/s on PoCL).
 * Grid (ceil(HW / 8), C, N). */
kernel void group_norm_apply_f32 (global const float *x, ulong x_off,
                                  global const float *stats,
                                  global const float *gamma, ulong gamma_off,
                                  global const float *beta, ulong beta_off,
                                  int has_affine, int silu,
                                  global float *y, ulong y_off,
                                  int HW, int C, int G)
{
  const int i = get_global_id (0) * 8, c = get_global_id (1), n = get_global_id (2);
  if (i >= HW)
    return;
  const int b = n * G + c / (C / G);
  const long idx = ((long) n * C + c) * HW + i;
  float scale = stats[2 * b + 1], shift = -stats[2 * b] * scale;
  if (has_affine)
    {
      const float g = gamma[gamma_off + c];
      scale *= g;
      shift = shift * g + beta[beta_off + c];
    }
  if (i + 8 <= HW)
    {
      float8 v = vload8 (0, x + x_off + idx) * scale + shift;
      if (silu)
        v = v / (1.0f + exp (-v));
      vstore8 (v, 0, y + y_off + idx);
    }
  else
    for (int j = 0; j < HW - i; j++)
      {
        float v = x[x_off + idx + j] * scale + shift;
        if (silu)
          v = v / (1.0f + exp (-v));
        y[y_off + idx + j] = v;
      }
}

/* Layer norm over rows of length n; one work-group per row (GPUs; `rows`
 * is the grid's second dimension). */
kernel __attribute__ ((reqd_work_group_size (NORM_WG, 1, 1)))
void layer_norm_f32 (global const float *x, ulong x_off, int n, float eps,
                     global const float *gamma, ulong gamma_off,
                     global const float *beta, ulong beta_off, int has_affine,
                     global float *y, ulong y_off, int rows)
{
  local float scratch[NORM_WG];
  const int l = get_local_id (0);
  const long row = get_group_id (1);
  const global float *p = x + x_off + row * n;
  global float *out = y + y_off + row * n;

  float s = 0.0f;
  for (int i = l; i < n; i += NORM_WG)
    s += p[i];
  const float mean = wg_sum (s, scratch) / (float) n;
  float q = 0.0f;
  for (int i = l; i < n; i += NORM_WG)
    {
      const float d = p[i] - mean;
      q += d * d;
    }
  const float rstd = rsqrt (wg_sum (q, scratch) / (float) n + eps);
  for (int i = l; i < n; i += NORM_WG)
    {
      float v = (p[i] - mean) * rstd;
      if (has_affine)
        v = v * gamma[gamma_off + i] + beta[beta_off + i];
      out[i] = v;
    }
}

/* The same for CPUs: one work-item per row, float8 loops, no barriers
 * (PoCL splits a work-group's loops at every barrier; the work-group form
 * ran at 1.5 GB/s there). Two passes as above, each a compensated (Kahan)
 * sum, so that one work-item's sequential sum over a long row (a million
 * values in a VAE's group norm) stays as accurate as the tree sum above.
 * Grid (rows). */
/* The row-per-work-item kernels' start: row, its input p and output out,
 * and n8 whole float8 vectors in it. */
#define ROW_KERNEL_START                                                     \
  const int row = get_global_id (0);                                         \
  if (row >= rows)                                                           \
    return;                                                                  \
  const global float *p = x + x_off + (long) row * n;                        \
  global float *out = y + y_off + (long) row * n;                            \
  const int n8 = n / 8

inline float hsum8 (float8 v)
{
  return ((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7));
}

#define KAHAN_ADD(sum, comp, v)                                              \
  do {                                                                       \
    const float8 y_ = (v) - comp;                                            \
    const float8 t_ = sum + y_;                                              \
    comp = (t_ - sum) - y_;                                                  \
    sum = t_;                                                                \
  } while (0)

/* Mean and variance of p[0 .. n-1]: two passes of compensated float8 sums. */
inline float2 row_mean_var (const global float *p, long n)
{
  const long n8 = n / 8;
  float8 s8 = 0.0f, c8 = 0.0f;
  for (long i = 0; i < n8; i++)
    KAHAN_ADD (s8, c8, vload8 (i, p));
  float s = hsum8 (s8) - hsum8 (c8);
  for (long i = n8 * 8; i < n; i++)
    s += p[i];
  const float mean = s / (float) n;
  float8 q8 = 0.0f;
  c8 = 0.0f;
  for (long i = 0; i < n8; i++)
    {
      const float8 d = vload8 (i, p) - mean;
      KAHAN_ADD (q8, c8, d * d);
    }
  float q = hsum8 (q8) - hsum8 (c8);
  for (long i = n8 * 8; i < n; i++)
    q += (p[i] - mean) * (p[i] - mean);
  return (float2) (mean, q / (float) n);
}

/* block_stats_f32 for CPUs: one work-item per block, compensated float8
 * sums as layer_norm_rows_f32. Grid (blocks). */
kernel void block_stats_rows_f32 (global const float *x, ulong x_off, long n, float eps,
                                  global float *stats, int blocks)
{
  const int b = get_global_id (0);
  if (b >= blocks)
    return;
  const float2 mv = row_mean_var (x + x_off + (long) b * n, n);
  stats[2 * b] = mv.x;
  stats[2 * b + 1] = rsqrt (mv.y + eps);
}

kernel void layer_norm_rows_f32 (global const float *x, ulong x_off, int n, float eps,
                                 global const float *gamma, ulong gamma_off,
                                 global const float *beta, ulong beta_off, int has_affine,
                                 global float *y, ulong y_off, int rows)
{
  ROW_KERNEL_START;
  const float2 mv = row_mean_var (p, n);
  const float mean = mv.x, rstd = rsqrt (mv.y + eps);
  const global float *g = gamma + gamma_off, *b = beta + beta_off;
  for (int i = 0; i < n8; i++)
    {
      float8 v = (vload8 (i, p) - mean) * rstd;
      if (has_affine)
        v = v * vload8 (i, g) + vload8 (i, b);
      vstore8 (v, i, out);
    }
  for (int i = n8 * 8; i < n; i++)
    {
      float v = (p[i] - mean) * rstd;
      out[i] = has_affine ? v * g[i] + b[i] : v;
    }
}

/* Softmax of scale·x over rows of length n (scale > 0); one work-group per
 * row, for GPUs. A row that is entirely -inf (fully masked) becomes zeros
 * instead of NaN. */
kernel __attribute__ ((reqd_work_group_size (NORM_WG, 1, 1)))
void softmax_f32 (global const float *x, ulong x_off, int n, global float *y, ulong y_off,
                  float scale)
{
  local float scratch[NORM_WG];
  const int l = get_local_id (0);
  const long row = get_group_id (1);
  const global float *p = x + x_off + row * n;
  global float *out = y + y_off + row * n;

  float m = -INFINITY;
  for (int i = l; i < n; i += NORM_WG)
    m = fmax (m, p[i]);
  m = wg_max (m, scratch);
  /* no early return for masked rows: PoCL needs every work-item to reach
   * the barriers below; exp(-inf - 0) = 0 makes such a row all zeros */
  if (m == -INFINITY)
    m = 0.0f;
  float s = 0.0f;
  for (int i = l; i < n; i += NORM_WG)
    s += exp ((p[i] - m) * scale);
  s = wg_sum (s, scratch);
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  for (int i = l; i < n; i += NORM_WG)
    out[i] = exp ((p[i] - m) * scale) * inv;
}

/* The same with one row per work-item and 8-wide vectors, for CPUs: a row
 * of attention scores (16 KB for 4096 keys) stays in L1 over the three
 * passes, and there are no barriers, which PoCL runs slowly (the
 * work-group version above ran at a tenth of this speed there). */
inline float hmax8 (float8 v)
{
  return fmax (fmax (fmax (v.s0, v.s1), fmax (v.s2, v.s3)),
               fmax (fmax (v.s4, v.s5), fmax (v.s6, v.s7)));
}

inline float hmax16 (float16 v) { return fmax (hmax8 (v.lo), hmax8 (v.hi)); }
inline float hsum16 (float16 v) { return hsum8 (v.lo) + hsum8 (v.hi); }

/* W-wide vectors (float8 or float16) over the row; the tail past the last
 * whole vector one by one */
#define SOFTMAX_ROW_BODY(W)                                                  \
  ROW_KERNEL_START;                                                          \
  const int nv = n / W;                                                      \
  float##W mv = -INFINITY;                                                   \
  for (int i = 0; i < nv; i++)                                               \
    mv = fmax (mv, vload##W (i, p));                                         \
  float m = hmax##W (mv);                                                    \
  for (int i = nv * W; i < n; i++)                                           \
    m = fmax (m, p[i]);                                                      \
  if (m == -INFINITY)                                                        \
    m = 0.0f;                                                                \
  float##W sv = 0.0f;                                                        \
  for (int i = 0; i < nv; i++)                                               \
    {                                                                        \
      const float##W e = exp ((vload##W (i, p) - m) * scale);                \
      vstore##W (e, i, out);                                                 \
      sv += e;                                                               \
    }                                                                        \
  float s = hsum##W (sv);                                                    \
  for (int i = nv * W; i < n; i++)                                           \
    {                                                                        \
      out[i] = exp ((p[i] - m) * scale);                                     \
      s += out[i];                                                           \
    }                                                                        \
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;                              \
  for (int i = 0; i < nv; i++)                                               \
    vstore##W (vload##W (i, out) * inv, i, out);                             \
  for (int i = nv * W; i < n; i++)                                           \
    out[i] *= inv

kernel void softmax_rows_f32 (global const float *x, ulong x_off, int n, global float *y,
                              ulong y_off, float scale, int rows)
{
  SOFTMAX_ROW_BODY (8);
}

/* float16 for long rows where the device's vectors are 16 wide (AVX-512):
 * the exp runs at twice the rate; attention over 4096 keys took about 15 %
 * less (bench-ops, PoCL on 2 cores, three interleaved pairs) */
kernel void softmax_rows16_f32 (global const float *x, ulong x_off, int n, global float *y,
                                ulong y_off, float scale, int rows)
{
  SOFTMAX_ROW_BODY (16);
}

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
                      global float *stats)
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
 * c / (C / G). Optional affine (has_affine) and fused SiLU. */
kernel void group_norm_apply_f32 (global const float *x, ulong x_off,
                                  global const float *stats,
                                  global const float *gamma, ulong gamma_off,
                                  global const float *beta, ulong beta_off,
                                  int has_affine, int silu,
                                  global float *y, ulong y_off,
                                  int HW, int C, int G)
{
  const int i = get_global_id (0), c = get_global_id (1), n = get_global_id (2);
  if (i >= HW)
    return;
  const int b = n * G + c / (C / G);
  const long idx = ((long) n * C + c) * HW + i;
  float v = (x[x_off + idx] - stats[2 * b]) * stats[2 * b + 1];
  if (has_affine)
    v = v * gamma[gamma_off + c] + beta[beta_off + c];
  if (silu)
    v = v / (1.0f + exp (-v));
  y[y_off + idx] = v;
}

/* Layer norm over rows of length n; one work-group per row. */
kernel __attribute__ ((reqd_work_group_size (NORM_WG, 1, 1)))
void layer_norm_f32 (global const float *x, ulong x_off, int n, float eps,
                     global const float *gamma, ulong gamma_off,
                     global const float *beta, ulong beta_off, int has_affine,
                     global float *y, ulong y_off)
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

/* Softmax over rows of length n; one work-group per row. A row that is
 * entirely -inf (fully masked) becomes zeros instead of NaN. */
kernel __attribute__ ((reqd_work_group_size (NORM_WG, 1, 1)))
void softmax_f32 (global const float *x, ulong x_off, int n, global float *y, ulong y_off)
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
    s += exp (p[i] - m);
  s = wg_sum (s, scratch);
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  for (int i = l; i < n; i += NORM_WG)
    out[i] = exp (p[i] - m) * inv;
}

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

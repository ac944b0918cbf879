/* winograd.cl — stride-1 3x3 convolution as Winograd F(4x4, 3x3): each 4x4
 * block of output pixels comes from a 6x6 input tile through
 *
 *   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,
 *
 * so the 9 multiply-adds per output pixel and input channel of the direct
 * convolution become 36 / 16 = 2.25. The elementwise product summed over
 * input channels is 36 independent GEMMs, one per tile position p:
 *
 *   M[p] (tiles x Cout) = V[p] (tiles x Cin) · U[p] (Cin x Cout),
 *
 * run by gemm_f32 (cl/gemm.cl) as one batched launch. This file holds the
 * three transforms around it:
 *   wino_weight_*  U[p][co / 16][ci][co % 16] = (G g Gᵀ)[p] for each channel
 *                  pair, from the packed weight (rows k = (ky·3 + kx)·Cin + ci
 *                  of ldw), in panels that gemm_f32 streams (b_panel);
 *   wino_input_*   V[p][t][ci] = (Bᵀ d B)[p] for each tile t, 8 channels per
 *                  work-item as one float8;
 *   wino_output    y = Aᵀ M A + bias, 8 output channels per work-item.
 * Transform matrices are the usual ones for the points 0, ±1, ±2, ∞ (Lavin
 * and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015). In
 * f32 they keep the result within about 1e-5 of the output's largest value
 * on SD's layer shapes (tests/test-ops.c measures it against the direct
 * kernel).
 *
 * Tiles are numbered over a run of tile rows: t = (r - r0)·tiles_w + tx for
 * tile row r = n·tiles_h + ty, so the host can transform a large input in
 * slices of tile rows and keep V and M small.
 */

/* Gᵀ applied on one side: 3 taps -> 6 */
#define WINO_G(g0, g1, g2, o)                                                \
  do {                                                                       \
    o[0] = (g0) * 0.25f;                                                     \
    o[1] = ((g0) + (g1) + (g2)) * (-1.0f / 6.0f);                            \
    o[2] = ((g0) - (g1) + (g2)) * (-1.0f / 6.0f);                            \
    o[3] = (g0) * (1.0f / 24.0f) + (g1) * (1.0f / 12.0f) + (g2) * (1.0f / 6.0f); \
    o[4] = (g0) * (1.0f / 24.0f) - (g1) * (1.0f / 12.0f) + (g2) * (1.0f / 6.0f); \
    o[5] = (g2);                                                             \
  } while (0)

/* Work-item (16 output channels, ci), as two float8 (the packed weight's
 * tail columns are zero, so U's are too) of a block of `panels` x 16
 * output channels starting at w_off (rows of ldw). U is [36][panels][Cin]
 * [16]: per position, panels of 16 columns, each K x 16 contiguous (see
 * b_panel in cl/gemm.cl). Launch: global (panels, Cin). */
#define WINO_G6(g0, g1, g2, o0, o1, o2, o3, o4, o5)                          \
  o0 = (g0) * 0.25f;                                                         \
  o1 = ((g0) + (g1) + (g2)) * (-1.0f / 6.0f);                                \
  o2 = ((g0) - (g1) + (g2)) * (-1.0f / 6.0f);                                \
  o3 = (g0) * (1.0f / 24.0f) + (g1) * (1.0f / 12.0f) + (g2) * (1.0f / 6.0f); \
  o4 = (g0) * (1.0f / 24.0f) - (g1) * (1.0f / 12.0f) + (g2) * (1.0f / 6.0f); \
  o5 = (g2)

/* Row i of U (6 positions) from a<i>0..2, stored. Named values, no arrays:
 * PoCL keeps arrays of a work-group's work-items in memory. */
#define WINO_WEIGHT_ROW(i)                                                   \
  {                                                                          \
    float8 o0, o1, o2, o3, o4, o5;                                           \
    WINO_G6 (a##i##0, a##i##1, a##i##2, o0, o1, o2, o3, o4, o5);             \
    vstore8 (o0, 0, dst + (i * 6 + 0) * plane);                              \
    vstore8 (o1, 0, dst + (i * 6 + 1) * plane);                              \
    vstore8 (o2, 0, dst + (i * 6 + 2) * plane);                              \
    vstore8 (o3, 0, dst + (i * 6 + 3) * plane);                              \
    vstore8 (o4, 0, dst + (i * 6 + 4) * plane);                              \
    vstore8 (o5, 0, dst + (i * 6 + 5) * plane);                              \
  }

#define WINO_WEIGHT_BODY(LOAD8)                                              \
  const int pn = get_global_id (0), ci = get_global_id (1);                  \
  if (pn >= panels || ci >= Cin)                                             \
    return;                                                                  \
  const long plane = (long) Cin * panels * 16;                               \
  for (int hv = 0; hv < 2; hv++)                                             \
    {                                                                        \
      const global TYPE *src = w + w_off + (long) ci * ldw + pn * 16 + hv * 8; \
      const long tap = (long) Cin * ldw;                                     \
      float8 a00, a10, a20, a30, a40, a50, a01, a11, a21, a31, a41, a51,     \
             a02, a12, a22, a32, a42, a52;                                   \
      WINO_G6 (LOAD8 (0, src), LOAD8 (0, src + 3 * tap), LOAD8 (0, src + 6 * tap), \
               a00, a10, a20, a30, a40, a50);                                \
      WINO_G6 (LOAD8 (0, src + tap), LOAD8 (0, src + 4 * tap),               \
               LOAD8 (0, src + 7 * tap), a01, a11, a21, a31, a41, a51);      \
      WINO_G6 (LOAD8 (0, src + 2 * tap), LOAD8 (0, src + 5 * tap),           \
               LOAD8 (0, src + 8 * tap), a02, a12, a22, a32, a42, a52);      \
      global float *dst = u + ((long) pn * Cin + ci) * 16 + hv * 8;          \
      WINO_WEIGHT_ROW (0) WINO_WEIGHT_ROW (1) WINO_WEIGHT_ROW (2)            \
      WINO_WEIGHT_ROW (3) WINO_WEIGHT_ROW (4) WINO_WEIGHT_ROW (5)            \
    }

#define WINO_LOAD_F32(i, p) (p)[i]

#define TYPE float
kernel void wino_weight_f32 (global const float *w, ulong w_off, long ldw, int Cin,
                             int panels, global float *u)
{
  WINO_WEIGHT_BODY (vload8);
}
#undef TYPE

#define TYPE half
kernel void wino_weight_f16 (global const half *w, ulong w_off, long ldw, int Cin,
                             int panels, global float *u)
{
  WINO_WEIGHT_BODY (vload_half8);
}
#undef TYPE

/* Bᵀ applied on one side: 6 -> 6 */
#define WINO_BT(d, o, s)                                                     \
  do {                                                                       \
    o[0 * s] = 4.0f * d[0] - 5.0f * d[2] + d[4];                             \
    o[1 * s] = -4.0f * (d[1] + d[2]) + d[3] + d[4];                          \
    o[2 * s] = 4.0f * (d[1] - d[2]) - d[3] + d[4];                           \
    o[3 * s] = 2.0f * (d[3] - d[1]) - d[2] + d[4];                           \
    o[4 * s] = 2.0f * (d[1] - d[3]) - d[2] + d[4];                           \
    o[5 * s] = 4.0f * d[1] - 5.0f * d[3] + d[5];                             \
  } while (0)

/* x [W, H, C, N] with any strides (elements), zero outside the image
 * (pad pixels before the first row and column). Work-item (8 channels,
 * tx, tile row r0 + r). Launch: global (ceil(C/8), tiles_w, rows). */
#define WINO_INPUT_BODY(LOAD)                                                \
  const int c0 = get_global_id (0) * 8, tx = get_global_id (1);              \
  const int r = r0 + get_global_id (2);                                      \
  if (c0 >= C || tx >= tiles_w || r >= r_end)                                \
    return;                                                                  \
  const int n = r / tiles_h, ty = r - n * tiles_h;                           \
  const int iy0 = ty * 4 - pad, ix0 = tx * 4 - pad;                          \
  const int nc = min (8, C - c0);                                            \
  float8 d[6][6];                                                            \
  for (int i = 0; i < 6; i++)                                                \
    for (int j = 0; j < 6; j++)                                              \
      {                                                                      \
        const int iy = iy0 + i, ix = ix0 + j;                                \
        float t[8];                                                          \
        if (iy >= 0 && iy < H && ix >= 0 && ix < W)                          \
          {                                                                  \
            const long at = x_off + (long) ix * s0 + (long) iy * s1          \
                            + (long) c0 * s2 + (long) n * s3;                \
            for (int c = 0; c < 8; c++)                                      \
              t[c] = c < nc ? LOAD (at + c * s2, x) : 0.0f;                  \
          }                                                                  \
        else                                                                 \
          for (int c = 0; c < 8; c++)                                        \
            t[c] = 0.0f;                                                     \
        d[i][j] = vload8 (0, t);                                             \
      }                                                                      \
  /* rows: e[i][j] = (Bᵀ d)[i][j], then columns: v = e B */                  \
  float8 e[6][6];                                                            \
  for (int j = 0; j < 6; j++)                                                \
    {                                                                        \
      float8 col[6] = { d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j] }; \
      WINO_BT (col, (&e[0][j]), 6);                                          \
    }                                                                        \
  const long t_idx = (long) (r - r0) * tiles_w + tx;                         \
  const long plane = (long) tiles * C;                                       \
  global float *dst = v + t_idx * C + c0;                                    \
  for (int i = 0; i < 6; i++)                                                \
    {                                                                        \
      float8 o[6];                                                           \
      WINO_BT (e[i], o, 1);                                                  \
      for (int j = 0; j < 6; j++)                                            \
        {                                                                    \
          global float *p = dst + (i * 6 + j) * plane;                       \
          if (nc == 8)                                                       \
            vstore8 (o[j], 0, p);                                            \
          else                                                               \
            {                                                                \
              float t[8];                                                    \
              vstore8 (o[j], 0, t);                                          \
              for (int c = 0; c < nc; c++)                                   \
                p[c] = t[c];                                                 \
            }                                                                \
        }                                                                    \
    }

#define WINO_INPUT_ARGS(T)                                                   \
  global const T *x, ulong x_off, long s0, long s1, long s2, long s3,        \
  int W, int H, int C, int N, int pad, int tiles_w, int tiles_h,             \
  int r0, int r_end, int tiles, global float *v

kernel void wino_input_f32 (WINO_INPUT_ARGS (float)) { WINO_INPUT_BODY (WINO_LOAD_F32); }
kernel void wino_input_f16 (WINO_INPUT_ARGS (half))  { WINO_INPUT_BODY (vload_half); }

/* Aᵀ applied on one side: 6 -> 4 */
#define WINO_AT(m, o, s)                                                     \
  do {                                                                       \
    const float8 p12_ = m[1] + m[2], m12_ = m[1] - m[2];                     \
    const float8 p34_ = m[3] + m[4], m34_ = m[3] - m[4];                     \
    o[0 * s] = m[0] + p12_ + p34_;                                           \
    o[1 * s] = m12_ + 2.0f * m34_;                                           \
    o[2 * s] = p12_ + 4.0f * p34_;                                           \
    o[3 * s] = m12_ + 8.0f * m34_ + m[5];                                    \
  } while (0)

/* M [36][tiles][ldm] -> Cout channels of y [Wo, Ho, Ctot, N] (contiguous; y_off
 * the first channel's plane), plus the bias (bias_off the same channel's).
 * Work-item (8 output channels, tx, tile row r0 + r); ldm is a multiple of
 * 8 and M's columns up to it exist, so its loads are never masked.
 * Launch: global (ceil(Cout/8), tiles_w, rows). */
kernel void wino_output (global const float *m, long ldm, int tiles,
                         int tiles_w, int tiles_h, int r0, int r_end,
                         global const float *bias, ulong bias_off, int has_bias,
                         global float *y, ulong y_off, int Wo, int Ho, int Cout, int Ctot)
{
  const int c0 = get_global_id (0) * 8, tx = get_global_id (1);
  const int r = r0 + get_global_id (2);
  if (c0 >= Cout || tx >= tiles_w || r >= r_end)
    return;
  const int n = r / tiles_h, ty = r - n * tiles_h;
  const long t_idx = (long) (r - r0) * tiles_w + tx;
  const long plane = (long) tiles * ldm;
  const global float *src = m + t_idx * ldm + c0;
  /* columns first: e[ky][j] = (Aᵀ m)[ky][j], then each row of e by A */
  float8 e[4][6];
  for (int j = 0; j < 6; j++)
    {
      float8 col[6];
      for (int i = 0; i < 6; i++)
        col[i] = vload8 (0, src + (i * 6 + j) * plane);
      WINO_AT (col, (&e[0][j]), 6);
    }
  float8 b = 0.0f;
  const int nc = min (8, Cout - c0);
  if (has_bias)
    {
      float t[8];
      for (int c = 0; c < 8; c++)
        t[c] = c < nc ? bias[bias_off + c0 + c] : 0.0f;
      b = vload8 (0, t);
    }
  const long HoWo = (long) Ho * Wo;
  global float *dst = y + y_off + ((long) n * Ctot + c0) * HoWo;
  const int oy0 = ty * 4, ox0 = tx * 4;
  for (int k = 0; k < 4; k++)
    {
      if (oy0 + k >= Ho)
        break;
      float8 o[4];
      WINO_AT (e[k], o, 1);
      float t[4][8];
      for (int j = 0; j < 4; j++)
        vstore8 (o[j] + b, 0, t[j]);
      const int nx = min (4, Wo - ox0);
      for (int c = 0; c < nc; c++)
        {
          global float *p = dst + c * HoWo + (long) (oy0 + k) * Wo + ox0;
          for (int j = 0; j < nx; j++)
            p[j] = t[j][c];
        }
    }
}

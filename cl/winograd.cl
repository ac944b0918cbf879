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
 *                  of ldw), in panels that gemm_f32 streams (b_panel); on
 *                  CPUs with f16 weights gemm_wino_f16_local (cl/gemm.cl)
 *                  makes its columns of U itself instead;
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

#define WINO_WEIGHT_BODY(TYPE, LOAD8)                                        \
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

/* One kernel making U (a block of `panels` x 16 output channels) from
 * the packed weight stored as T. */
#define WINO_WEIGHT_KERNEL(name, T, BODY, LOAD)                              \
kernel void name (global const T *w, ulong w_off, long ldw, int Cin, int panels, \
                  global float *u)                                           \
{                                                                            \
  BODY (T, LOAD);                                                            \
}

WINO_WEIGHT_KERNEL (wino_weight_f32, float, WINO_WEIGHT_BODY, vload8)
WINO_WEIGHT_KERNEL (wino_weight_f16, half, WINO_WEIGHT_BODY, vload_half8)

/* The same for GPUs, a quarter of a panel (4 output channels) per
 * work-item: global (4, Cin, panels), so neighbouring work-items read
 * neighbouring columns of a weight row and write neighbouring 16 bytes of
 * U. The float8 form above needs about 200 registers a work-item, which
 * left an H200 at a tenth of its memory bandwidth writing U. */
#define WINO_WEIGHT4_ROW(i)                                                  \
  {                                                                          \
    float4 o0, o1, o2, o3, o4, o5;                                           \
    WINO_G6 (a##i##0, a##i##1, a##i##2, o0, o1, o2, o3, o4, o5);             \
    vstore4 (o0, 0, dst + (i * 6 + 0) * plane);                              \
    vstore4 (o1, 0, dst + (i * 6 + 1) * plane);                              \
    vstore4 (o2, 0, dst + (i * 6 + 2) * plane);                              \
    vstore4 (o3, 0, dst + (i * 6 + 3) * plane);                              \
    vstore4 (o4, 0, dst + (i * 6 + 4) * plane);                              \
    vstore4 (o5, 0, dst + (i * 6 + 5) * plane);                              \
  }

#define WINO_WEIGHT4_BODY(TYPE, LOAD4)                                       \
  const int q = get_global_id (0), ci = get_global_id (1), pn = get_global_id (2); \
  if (pn >= panels || ci >= Cin)                                             \
    return;                                                                  \
  const long plane = (long) Cin * panels * 16;                               \
  const global TYPE *src = w + w_off + (long) ci * ldw + pn * 16 + q * 4;    \
  const long tap = (long) Cin * ldw;                                         \
  float4 a00, a10, a20, a30, a40, a50, a01, a11, a21, a31, a41, a51,         \
         a02, a12, a22, a32, a42, a52;                                       \
  WINO_G6 (LOAD4 (0, src), LOAD4 (0, src + 3 * tap), LOAD4 (0, src + 6 * tap), \
           a00, a10, a20, a30, a40, a50);                                    \
  WINO_G6 (LOAD4 (0, src + tap), LOAD4 (0, src + 4 * tap), LOAD4 (0, src + 7 * tap), \
           a01, a11, a21, a31, a41, a51);                                    \
  WINO_G6 (LOAD4 (0, src + 2 * tap), LOAD4 (0, src + 5 * tap), LOAD4 (0, src + 8 * tap), \
           a02, a12, a22, a32, a42, a52);                                    \
  global float *dst = u + ((long) pn * Cin + ci) * 16 + q * 4;               \
  WINO_WEIGHT4_ROW (0) WINO_WEIGHT4_ROW (1) WINO_WEIGHT4_ROW (2)             \
  WINO_WEIGHT4_ROW (3) WINO_WEIGHT4_ROW (4) WINO_WEIGHT4_ROW (5)

WINO_WEIGHT_KERNEL (wino_weight4_f32, float, WINO_WEIGHT4_BODY, vload4)
WINO_WEIGHT_KERNEL (wino_weight4_f16, half, WINO_WEIGHT4_BODY, vload_half4)


/* Bᵀ applied on one side: d0..d5 -> o0..o5 (named values) */
#define WINO_BT6(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)             \
  o0 = 4.0f * (d0) - 5.0f * (d2) + (d4);                                     \
  o1 = -4.0f * ((d1) + (d2)) + (d3) + (d4);                                  \
  o2 = 4.0f * ((d1) - (d2)) - (d3) + (d4);                                   \
  o3 = 2.0f * ((d3) - (d1)) - (d2) + (d4);                                   \
  o4 = 2.0f * ((d1) - (d3)) - (d2) + (d4);                                   \
  o5 = 4.0f * (d1) - 5.0f * (d3) + (d5)

/* The 8 channels c0 .. c0+7 of pixel (iy, ix) as one float8, zero outside
 * the image and past C. */
#define WINO_LANE(LOAD, at, c) ((c) < nc ? LOAD ((at) + (c) * s2, x) : 0.0f)
#define WINO_PIXEL(LOAD, iy, ix)                                             \
  ((iy) >= 0 && (iy) < H && (ix) >= 0 && (ix) < W                            \
   ? wino_gather_at (LOAD, base + (long) (ix) * s0 + (long) (iy) * s1)      \
   : (float8) (0.0f))
#define wino_gather_at(LOAD, at)                                             \
  (nc == 8 ? (float8) (LOAD ((at), x), LOAD ((at) + s2, x), LOAD ((at) + 2 * s2, x), \
                       LOAD ((at) + 3 * s2, x), LOAD ((at) + 4 * s2, x),     \
                       LOAD ((at) + 5 * s2, x), LOAD ((at) + 6 * s2, x),     \
                       LOAD ((at) + 7 * s2, x))                              \
   : wino_gather_nc (LOAD, at))
#define wino_gather_nc(LOAD, at)                                             \
  (float8) (WINO_LANE (LOAD, at, 0), WINO_LANE (LOAD, at, 1),                \
            WINO_LANE (LOAD, at, 2), WINO_LANE (LOAD, at, 3),                \
            WINO_LANE (LOAD, at, 4), WINO_LANE (LOAD, at, 5),                \
            WINO_LANE (LOAD, at, 6), WINO_LANE (LOAD, at, 7))

/* Input row k of the tile, transformed along x: t<k>0 .. t<k>5. */
#define WINO_INPUT_ROW(LOAD, k)                                              \
  float8 t##k##0, t##k##1, t##k##2, t##k##3, t##k##4, t##k##5;               \
  {                                                                          \
    const int iy = iy0 + k;                                                  \
    WINO_BT6 (WINO_PIXEL (LOAD, iy, ix0), WINO_PIXEL (LOAD, iy, ix0 + 1),    \
              WINO_PIXEL (LOAD, iy, ix0 + 2), WINO_PIXEL (LOAD, iy, ix0 + 3), \
              WINO_PIXEL (LOAD, iy, ix0 + 4), WINO_PIXEL (LOAD, iy, ix0 + 5), \
              t##k##0, t##k##1, t##k##2, t##k##3, t##k##4, t##k##5);         \
  }

/* The same row for a tile inside the image with 8 channels, x contiguous
 * along W (s0 == 1) and 8 pixels from ix0 in it: one vector load of 8
 * pixels per channel (r<c>), then pixel j's 8 channels (r0.sj .. r7.sj),
 * where the gather reads 48 scalars from 8 planes. */
#define WINO_ROWS8_LOAD(LOADV8, k)                                           \
  __typeof__ (x) rp_ = x + base + (long) (iy0 + k) * s1 + ix0;               \
  const float8 r0_ = LOADV8 (0, rp_), r1_ = LOADV8 (0, rp_ + s2);            \
  const float8 r2_ = LOADV8 (0, rp_ + 2 * s2), r3_ = LOADV8 (0, rp_ + 3 * s2); \
  const float8 r4_ = LOADV8 (0, rp_ + 4 * s2), r5_ = LOADV8 (0, rp_ + 5 * s2); \
  const float8 r6_ = LOADV8 (0, rp_ + 6 * s2), r7_ = LOADV8 (0, rp_ + 7 * s2)
#define WINO_PIX8(j)                                                         \
  (float8) (r0_.s##j, r1_.s##j, r2_.s##j, r3_.s##j, r4_.s##j, r5_.s##j, r6_.s##j, r7_.s##j)
#define WINO_INPUT_ROW8(LOADV8, k)                                           \
  float8 t##k##0, t##k##1, t##k##2, t##k##3, t##k##4, t##k##5;               \
  {                                                                          \
    WINO_ROWS8_LOAD (LOADV8, k);                                             \
    WINO_BT6 (WINO_PIX8 (0), WINO_PIX8 (1), WINO_PIX8 (2), WINO_PIX8 (3),   \
              WINO_PIX8 (4), WINO_PIX8 (5),                                  \
              t##k##0, t##k##1, t##k##2, t##k##3, t##k##4, t##k##5);         \
  }

/* Stores the nc channels of o at p. */
#define WINO_STORE_NC(o, p)                                                  \
  do {                                                                       \
    global float *q_ = (p);                                                  \
    if (nc == 8)                                                             \
      vstore8 ((o), 0, q_);                                                  \
    else                                                                     \
      {                                                                      \
        q_[0] = (o).s0;                                                      \
        if (nc > 1) q_[1] = (o).s1;                                          \
        if (nc > 2) q_[2] = (o).s2;                                          \
        if (nc > 3) q_[3] = (o).s3;                                          \
        if (nc > 4) q_[4] = (o).s4;                                          \
        if (nc > 5) q_[5] = (o).s5;                                          \
        if (nc > 6) q_[6] = (o).s6;                                          \
      }                                                                      \
  } while (0)

/* Column j: V[i·6 + j] for the six i. */
#define WINO_INPUT_COL(j)                                                    \
  {                                                                          \
    float8 o0, o1, o2, o3, o4, o5;                                           \
    WINO_BT6 (t0##j, t1##j, t2##j, t3##j, t4##j, t5##j, o0, o1, o2, o3, o4, o5); \
    WINO_STORE_NC (o0, dst + (0 * 6 + j) * plane);                           \
    WINO_STORE_NC (o1, dst + (1 * 6 + j) * plane);                           \
    WINO_STORE_NC (o2, dst + (2 * 6 + j) * plane);                           \
    WINO_STORE_NC (o3, dst + (3 * 6 + j) * plane);                           \
    WINO_STORE_NC (o4, dst + (4 * 6 + j) * plane);                           \
    WINO_STORE_NC (o5, dst + (5 * 6 + j) * plane);                           \
  }

/* x [W, H, C, N] with any strides (elements), zero outside the image
 * (pad pixels before the first row and column). Work-item (8 channels,
 * tx, tile row r0 + r). Launch: global (ceil(C/8), tiles_w, rows). All
 * values are named, not arrays: PoCL keeps a work-item's arrays indexed
 * by loop counters in memory. */
#define WINO_INPUT_BODY(LOAD, LOADV8)                                        \
  const int c0 = get_global_id (0) * 8, tx = get_global_id (1);              \
  const int r = r0 + get_global_id (2);                                      \
  if (c0 >= C || tx >= tiles_w || r >= r_end)                                \
    return;                                                                  \
  const int n = r / tiles_h, ty = r - n * tiles_h;                           \
  const int iy0 = ty * 4 - pad, ix0 = tx * 4 - pad;                          \
  const int nc = min (8, C - c0);                                            \
  const long base = x_off + (long) c0 * s2 + (long) n * s3;                  \
  const long t_idx = (long) (r - r0) * tiles_w + tx;                         \
  const long plane = (long) tiles * C;                                       \
  global float *dst = v + t_idx * C + c0;                                    \
  if (nc == 8 && s0 == 1 && ix0 >= 0 && ix0 + 8 <= W && iy0 >= 0 && iy0 + 6 <= H) \
    {                                                                        \
      WINO_INPUT_ROW8 (LOADV8, 0) WINO_INPUT_ROW8 (LOADV8, 1)                \
      WINO_INPUT_ROW8 (LOADV8, 2) WINO_INPUT_ROW8 (LOADV8, 3)                \
      WINO_INPUT_ROW8 (LOADV8, 4) WINO_INPUT_ROW8 (LOADV8, 5)                \
      WINO_INPUT_COL (0) WINO_INPUT_COL (1) WINO_INPUT_COL (2)               \
      WINO_INPUT_COL (3) WINO_INPUT_COL (4) WINO_INPUT_COL (5)               \
      return;                                                                \
    }                                                                        \
  WINO_INPUT_ROW (LOAD, 0) WINO_INPUT_ROW (LOAD, 1) WINO_INPUT_ROW (LOAD, 2) \
  WINO_INPUT_ROW (LOAD, 3) WINO_INPUT_ROW (LOAD, 4) WINO_INPUT_ROW (LOAD, 5) \
  WINO_INPUT_COL (0) WINO_INPUT_COL (1) WINO_INPUT_COL (2)                   \
  WINO_INPUT_COL (3) WINO_INPUT_COL (4) WINO_INPUT_COL (5)

#define WINO_INPUT_ARGS(T)                                                   \
  global const T *x, ulong x_off, long s0, long s1, long s2, long s3,        \
  int W, int H, int C, int N, int pad, int tiles_w, int tiles_h,             \
  int r0, int r_end, int tiles, global float *v

kernel void wino_input_f32 (WINO_INPUT_ARGS (float)) { WINO_INPUT_BODY (WINO_LOAD_F32, vload8); }
kernel void wino_input_f16 (WINO_INPUT_ARGS (half))  { WINO_INPUT_BODY (vload_half, vload_half8); }

/* Aᵀ applied on one side: m0..m5 -> o0..o3 (named values) */
#define WINO_AT4(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)                     \
  {                                                                          \
    const float8 p12_ = (m1) + (m2), m12_ = (m1) - (m2);                     \
    const float8 p34_ = (m3) + (m4), m34_ = (m3) - (m4);                     \
    o0 = (m0) + p12_ + p34_;                                                 \
    o1 = m12_ + 2.0f * m34_;                                                 \
    o2 = p12_ + 4.0f * p34_;                                                 \
    o3 = m12_ + 8.0f * m34_ + (m5);                                          \
  }

/* Column j of M, transformed along y: e0<j> .. e3<j>. */
#define WINO_OUTPUT_COL(j)                                                   \
  float8 e0##j, e1##j, e2##j, e3##j;                                         \
  WINO_AT4 (vload8 (0, src + (0 * 6 + j) * plane),                           \
            vload8 (0, src + (1 * 6 + j) * plane),                           \
            vload8 (0, src + (2 * 6 + j) * plane),                           \
            vload8 (0, src + (3 * 6 + j) * plane),                           \
            vload8 (0, src + (4 * 6 + j) * plane),                           \
            vload8 (0, src + (5 * 6 + j) * plane), e0##j, e1##j, e2##j, e3##j)

/* Output channel c (lane sc) of the row's four pixels, plus the residual
 * at the same place (add_mode 2; the row's pixels at a_row). */
#define WINO_OUTPUT_CH(c, sc)                                                \
  if (c < nc)                                                                \
    {                                                                        \
      global float *p_ = row + (long) c * HoWo;                              \
      float4 v_ = (float4) (o0.sc, o1.sc, o2.sc, o3.sc);                     \
      if (add_mode == 2)                                                     \
        {                                                                    \
          const global float *a_ = a_row + (long) c * HoWo;                  \
          v_ += nx == 4 ? vload4 (0, a_)                                     \
                        : (float4) (a_[0], nx > 1 ? a_[1] : 0.0f,            \
                                    nx > 2 ? a_[2] : 0.0f, 0.0f);            \
        }                                                                    \
      if (nx == 4)                                                           \
        vstore4 (v_, 0, p_);                                                 \
      else                                                                   \
        {                                                                    \
          p_[0] = v_.x;                                                      \
          if (nx > 1) p_[1] = v_.y;                                          \
          if (nx > 2) p_[2] = v_.z;                                          \
        }                                                                    \
    }

/* Output row k of the tile: e<k>0..5 along x, plus the bias, stored. */
#define WINO_OUTPUT_ROW(k)                                                   \
  if (oy0 + k < Ho)                                                          \
    {                                                                        \
      float8 o0, o1, o2, o3;                                                 \
      WINO_AT4 (e##k##0, e##k##1, e##k##2, e##k##3, e##k##4, e##k##5,        \
                o0, o1, o2, o3);                                             \
      o0 += b; o1 += b; o2 += b; o3 += b;                                    \
      global float *row = dst + (long) (oy0 + k) * Wo + ox0;                 \
      const global float *a_row = a_dst + (long) (oy0 + k) * Wo + ox0;       \
      WINO_OUTPUT_CH (0, s0) WINO_OUTPUT_CH (1, s1) WINO_OUTPUT_CH (2, s2)   \
      WINO_OUTPUT_CH (3, s3) WINO_OUTPUT_CH (4, s4) WINO_OUTPUT_CH (5, s5)   \
      WINO_OUTPUT_CH (6, s6) WINO_OUTPUT_CH (7, s7)                          \
    }

/* nc (1..8) consecutive floats at p, zero past them */
inline float8
wino_load_nc (const global float *p, int nc)
{
  return nc == 8 ? vload8 (0, p)
                 : (float8) (p[0], nc > 1 ? p[1] : 0.0f, nc > 2 ? p[2] : 0.0f,
                             nc > 3 ? p[3] : 0.0f, nc > 4 ? p[4] : 0.0f,
                             nc > 5 ? p[5] : 0.0f, nc > 6 ? p[6] : 0.0f, 0.0f);
}

/* M [36][tiles][ldm] -> Cout channels of y [Wo, Ho, Ctot, N] (contiguous; y_off
 * the first channel's plane), plus the bias (bias_off the same channel's),
 * plus by add_mode: 0 nothing; 1 a value per channel and image, add
 * [Ctot, N] (add_off the first channel's); 2 a residual laid out as y
 * (add_off the first channel's plane; add may be y itself: each element is
 * read, then written, by one work-item). Work-item (8 output channels, tx,
 * tile row r0 + r); ldm is a multiple of 8 and M's columns up to it exist,
 * so its loads are never masked. Launch: global (ceil(Cout/8), tiles_w,
 * rows). */
kernel void wino_output (global const float *m, long ldm, int tiles,
                         int tiles_w, int tiles_h, int r0, int r_end,
                         global const float *bias, ulong bias_off, int has_bias,
                         global float *y, ulong y_off, int Wo, int Ho, int Cout, int Ctot,
                         global const float *add, ulong add_off, int add_mode)
{
  const int c0 = get_global_id (0) * 8, tx = get_global_id (1);
  const int r = r0 + get_global_id (2);
  if (c0 >= Cout || tx >= tiles_w || r >= r_end)
    return;
  const int n = r / tiles_h, ty = r - n * tiles_h;
  const long t_idx = (long) (r - r0) * tiles_w + tx;
  const long plane = (long) tiles * ldm;
  const global float *src = m + t_idx * ldm + c0;
  /* columns first, then each row by A */
  WINO_OUTPUT_COL (0); WINO_OUTPUT_COL (1); WINO_OUTPUT_COL (2);
  WINO_OUTPUT_COL (3); WINO_OUTPUT_COL (4); WINO_OUTPUT_COL (5);
  const int nc = min (8, Cout - c0);
  const global float *bb = bias + bias_off + c0;
  float8 b = !has_bias ? (float8) (0.0f) : wino_load_nc (bb, nc);
  if (add_mode == 1)
    b += wino_load_nc (add + add_off + (long) n * Ctot + c0, nc);
  const long HoWo = (long) Ho * Wo;
  global float *dst = y + y_off + ((long) n * Ctot + c0) * HoWo;
  const global float *a_dst = add + add_off + ((long) n * Ctot + c0) * HoWo;
  const int oy0 = ty * 4, ox0 = tx * 4, nx = min (4, Wo - ox0);
  WINO_OUTPUT_ROW (0) WINO_OUTPUT_ROW (1) WINO_OUTPUT_ROW (2) WINO_OUTPUT_ROW (3)
}

/* elementwise.cl — copies between layouts, activations, broadcast
 * arithmetic, nearest upsampling and the timestep embedding.
 *
 * Offsets and strides are in elements. Shapes are innermost first
 * (ne0 contiguous), as in engine/tensor.h.
 */

/* dst[i0,i1,i2,i3] = src[...] for any strides on either side; one
 * work-item per element of a (ne0, ne1, ne2*ne3) grid. */
#define COPY_KERNEL(NAME, SRC_T, LOAD)                                        \
kernel void NAME (global const SRC_T *src, ulong src_off,                    \
                  long ss0, long ss1, long ss2, long ss3,                    \
                  global float *dst, ulong dst_off,                          \
                  long ds0, long ds1, long ds2, long ds3,                    \
                  int ne0, int ne1, int ne2)                                 \
{                                                                            \
  const int i0 = get_global_id (0), i1 = get_global_id (1);                 \
  const int i23 = get_global_id (2);                                         \
  if (i0 >= ne0 || i1 >= ne1)                                                \
    return;                                                                  \
  const int i2 = i23 % ne2, i3 = i23 / ne2;                                  \
  const long s = src_off + i0 * ss0 + i1 * ss1 + i2 * ss2 + i3 * ss3;        \
  const long d = dst_off + i0 * ds0 + i1 * ds1 + i2 * ds2 + i3 * ds3;        \
  dst[d] = LOAD;                                                             \
}

COPY_KERNEL (copy_f32, float, src[s])
COPY_KERNEL (copy_f16, half, vload_half (0, src + s))

/* The same copy where dimensions 0 and 1 are contiguous on both sides
 * (runs of ne0·ne1 elements, as in a part of a concatenation): each
 * work-item moves 16 consecutive elements of a run with one vector load
 * and store, where copy_f32 moves one through strided addressing. Grid
 * (ceil(run / 16), ne2, ne3). */
kernel void copy_runs_f32 (global const float *src, ulong src_off, long ss2, long ss3,
                           global float *dst, ulong dst_off, long ds2, long ds3, int run)
{
  const int i = get_global_id (0) * 16;
  if (i >= run)
    return;
  const long i2 = get_global_id (1), i3 = get_global_id (2);
  const global float *s = src + src_off + i2 * ss2 + i3 * ss3 + i;
  global float *d = dst + dst_off + i2 * ds2 + i3 * ds3 + i;
  if (i + 16 <= run)
    vstore16 (vload16 (0, s), 0, d);
  else
    for (int j = 0; j < run - i; j++)
      d[j] = s[j];
}

/* The same copy where src's dimension 1 is the contiguous one and dst is
 * contiguous (a transpose of dimensions 0 and 1, as between an image's
 * channel planes and its tokens): each work-item moves a 16x16 block,
 * reading 16 runs of 16 along src's rows and writing 16 runs along dst's,
 * so both sides move whole cache lines, where copy_f32 reads each element
 * from a different line. Blocks cut by the edges go element by element.
 * Grid (ceil(ne1 / 16), ceil(ne0 / 16), ne2·ne3). transpose_add_f32 adds
 * add (contiguous, laid out as dst; it may be dst itself: each element is
 * read, then written, by one work-item) on the way: a residual added to
 * tokens in image layout. */
/* The 16x16 block in registers: row r of src in p<r>, transposed in four
 * steps, step b exchanging bit b of the row and column indices between
 * the rows r and r + 2^b (two shuffles per pair of rows), where a copy
 * through a private array moves its 256 elements one by one. */
#define TP_LOAD(r) float16 p##r = vload16 (0, s + (long) (r) * ss0);
#define TP_LO0 (uint16) (0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30)
#define TP_HI0 (uint16) (1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31)
#define TP_LO1 (uint16) (0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29)
#define TP_HI1 (uint16) (2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31)
#define TP_LO2 (uint16) (0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27)
#define TP_HI2 (uint16) (4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31)
#define TP_LO3 (uint16) (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
#define TP_HI3 (uint16) (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31)
#define TP_PAIR(b, x, y)                                                     \
  {                                                                          \
    const float16 lo_ = shuffle2 (p##x, p##y, TP_LO##b);                     \
    p##y = shuffle2 (p##x, p##y, TP_HI##b);                                  \
    p##x = lo_;                                                              \
  }
/* the pairs (x<k>, y<k>) of step b: rows without bit b, with it */
#define TP_STEP(b, y0, y1, y2, y3, y4, y5, y6, y7, x0, x1, x2, x3, x4, x5, x6, x7) \
  TP_PAIR (b, x0, y0) TP_PAIR (b, x1, y1) TP_PAIR (b, x2, y2) TP_PAIR (b, x3, y3) \
  TP_PAIR (b, x4, y4) TP_PAIR (b, x5, y5) TP_PAIR (b, x6, y6) TP_PAIR (b, x7, y7)
#define TP_STORE(c, ADD)                                                     \
  vstore16 (p##c ADD ((c) * ne0, 16), 0, d + (long) (c) * ne0);

#define TRANSPOSE_BODY(ADD)                                                  \
  const int b1 = get_global_id (0) * 16, b0 = get_global_id (1) * 16;       \
  const int i23 = get_global_id (2), i2 = i23 % ne2, i3 = i23 / ne2;         \
  if (b1 >= ne1 || b0 >= ne0)                                                \
    return;                                                                  \
  const global float *s = src + src_off + i2 * ss2 + i3 * ss3 + (long) b0 * ss0 + b1; \
  const long at = dst_off + (long) i23 * ne0 * ne1 + (long) b1 * ne0 + b0;   \
  global float *d = dst + at;                                                \
  if (b0 + 16 > ne0 || b1 + 16 > ne1)                                        \
    {                                                                        \
      for (int r = 0; r < min (16, ne0 - b0); r++)                           \
        for (int c = 0; c < min (16, ne1 - b1); c++)                         \
          d[(long) c * ne0 + r] = s[(long) r * ss0 + c] ADD (c * ne0 + r, 1); \
      return;                                                                \
    }                                                                        \
  TP_LOAD (0) TP_LOAD (1) TP_LOAD (2) TP_LOAD (3) TP_LOAD (4) TP_LOAD (5)    \
  TP_LOAD (6) TP_LOAD (7) TP_LOAD (8) TP_LOAD (9) TP_LOAD (10) TP_LOAD (11)  \
  TP_LOAD (12) TP_LOAD (13) TP_LOAD (14) TP_LOAD (15)                        \
  TP_STEP (0, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14)         \
  TP_STEP (1, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13)         \
  TP_STEP (2, 4, 5, 6, 7, 12, 13, 14, 15, 0, 1, 2, 3, 8, 9, 10, 11)         \
  TP_STEP (3, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)         \
  TP_STORE (0, ADD) TP_STORE (1, ADD) TP_STORE (2, ADD) TP_STORE (3, ADD)    \
  TP_STORE (4, ADD) TP_STORE (5, ADD) TP_STORE (6, ADD) TP_STORE (7, ADD)    \
  TP_STORE (8, ADD) TP_STORE (9, ADD) TP_STORE (10, ADD) TP_STORE (11, ADD)  \
  TP_STORE (12, ADD) TP_STORE (13, ADD) TP_STORE (14, ADD) TP_STORE (15, ADD)

#define TRANSPOSE_ARGS                                                       \
  global const float *src, ulong src_off, long ss0, long ss2, long ss3,      \
  global float *dst, ulong dst_off, int ne0, int ne1, int ne2
#define TRANSPOSE_NO_ADD(o, n)
#define TRANSPOSE_ADD(o, n) TRANSPOSE_ADD_##n (add + (at - dst_off + add_off) + (long) (o))
#define TRANSPOSE_ADD_1(p) + *(p)
#define TRANSPOSE_ADD_16(p) + vload16 (0, (p))

kernel void transpose_f32 (TRANSPOSE_ARGS)
{
  TRANSPOSE_BODY (TRANSPOSE_NO_ADD)
}

kernel void transpose_add_f32 (TRANSPOSE_ARGS, global const float *add, ulong add_off)
{
  TRANSPOSE_BODY (TRANSPOSE_ADD)
}

/* y[:, j] = table[:, ids[j]]; ids as exact floats. Grid (W, n). */
#define EMBEDDING_KERNEL(NAME, T, LOAD)                                       \
kernel void NAME (global const T *table, ulong t_off, global const float *ids, \
                  global float *y, int W, int n)                             \
{                                                                            \
  const int i = get_global_id (0), j = get_global_id (1);                   \
  if (i >= W || j >= n)                                                      \
    return;                                                                  \
  const long s = t_off + (long) ids[j] * W + i;                              \
  y[(long) j * W + i] = LOAD;                                                \
}

EMBEDDING_KERNEL (embedding_f32, float, table[s])
EMBEDDING_KERNEL (embedding_f16, half, vload_half (0, table + s))

/* ---- activations ---------------------------------------------------------- */

inline float silu (float x)       { return x / (1.0f + exp (-x)); }
inline float gelu (float x)       { return 0.5f * x * (1.0f + erf (x * 0.70710678118654752f)); }
inline float quick_gelu (float x) { return x / (1.0f + exp (-1.702f * x)); }

#define UNARY_KERNEL(NAME, F)                                                 \
kernel void NAME (global const float *x, ulong x_off, global float *y,       \
                  ulong y_off, long n)                                       \
{                                                                            \
  const long i = get_global_id (0);                                          \
  if (i < n)                                                                 \
    y[y_off + i] = F (x[x_off + i]);                                         \
}

UNARY_KERNEL (silu_f32, silu)
UNARY_KERNEL (gelu_f32, gelu)
UNARY_KERNEL (quick_gelu_f32, quick_gelu)

/* erf to 1.5e-7 absolute (Abramowitz and Stegun 7.1.26), in vector
 * arithmetic and one vector exp: PoCL's vector erf ran as 8 scalar calls. */
inline float8 erf8 (float8 x)
{
  const float8 a = fabs (x);
  const float8 t = 1.0f / (1.0f + 0.3275911f * a);
  const float8 poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f
                      + t * (-1.453152027f + t * 1.061405429f))));
  return copysign (1.0f - poly * exp (-a * a), x);
}

/* GEGLU as diffusers: hidden, gate = x.chunk(2, -1); hidden * gelu(gate).
 * x [2F, rows] -> y [F, rows]. A work-item does 8 features with vector
 * loads and the vector erf (one per element was bound by the scalar erf
 * call: 1.5 GB/s on PoCL). Grid (ceil(F / 8), rows). */
kernel void geglu_f32 (global const float *x, ulong x_off, global float *y, ulong y_off,
                       int F, int rows)
{
  const int i = get_global_id (0) * 8, r = get_global_id (1);
  if (i >= F || r >= rows)
    return;
  const global float *row = x + x_off + (long) r * 2 * F;
  global float *out = y + y_off + (long) r * F;
  if (i + 8 <= F)
    {
      const float8 g = vload8 (0, row + F + i);
      const float8 act = 0.5f * g * (1.0f + erf8 (g * 0.70710678118654752f));
      vstore8 (vload8 (0, row + i) * act, 0, out + i);
    }
  else
    for (int j = i; j < F; j++)
      out[j] = row[j] * gelu (row[F + j]);
}

/* y = a op b; a and y contiguous [ne0, ne1, ne2*ne3]; b indexed through
 * strides that are 0 in broadcast dimensions. */
#define BINARY_KERNEL(NAME, OP)                                               \
kernel void NAME (global const float *a, ulong a_off,                        \
                  global const float *b, ulong b_off,                        \
                  long bs0, long bs1, long bs2, long bs3,                    \
                  global float *y, ulong y_off, int ne0, int ne1, int ne2)   \
{                                                                            \
  const int i0 = get_global_id (0), i1 = get_global_id (1);                 \
  const int i23 = get_global_id (2);                                         \
  if (i0 >= ne0 || i1 >= ne1)                                                \
    return;                                                                  \
  const int i2 = i23 % ne2, i3 = i23 / ne2;                                  \
  const long i = ((long) i23 * ne1 + i1) * ne0 + i0;                         \
  const float bv = b[b_off + i0 * bs0 + i1 * bs1 + i2 * bs2 + i3 * bs3];     \
  y[y_off + i] = a[a_off + i] OP bv;                                         \
}

BINARY_KERNEL (add_f32, +)
BINARY_KERNEL (mul_f32, *)

kernel void scale_f32 (global const float *x, ulong x_off, global float *y, ulong y_off,
                       long n, float s, float t)
{
  const long i = get_global_id (0);
  if (i < n)
    y[y_off + i] = x[x_off + i] * s + t;
}

/* Nearest 2× upsampling: y [2W, 2H, planes] from x [W, H, planes]. */
/* Nearest-neighbour resize to OW x OH, as torch's interpolate(mode="nearest")
 * picks sources: exact halves for 2x, else floor(o * (in / out)) in float. */
inline int
nearest_source (int o, int in, int out)
{
  if (out == 2 * in)
    return o >> 1;
  return min ((int) floor ((float) o * ((float) in / (float) out)), in - 1);
}

kernel void upsample_nearest_f32 (global const float *x, ulong x_off, global float *y,
                                  ulong y_off, int W, int H, int OW, int OH)
{
  const int ox = get_global_id (0), oy = get_global_id (1), p = get_global_id (2);
  if (ox >= OW || oy >= OH)
    return;
  y[y_off + ((long) p * OH + oy) * OW + ox]
    = x[x_off + ((long) p * H + nearest_source (oy, H, OH)) * W + nearest_source (ox, W, OW)];
}

/* diffusers' get_timestep_embedding, in float32 as it computes:
 * exponent = -ln(10000)·j / (half - shift); arg = t·exp(exponent);
 * [sin | cos], or [cos | sin] when flipped; a zero column pads odd dims. */
kernel void timestep_embedding_f32 (global const float *t, global float *y, int dim,
                                    int flip, float shift)
{
  const int j = get_global_id (0), i = get_global_id (1);
  const int half_dim = dim / 2;
  if (j >= dim)
    return;
  float v = 0.0f;
  if (j < 2 * half_dim)
    {
      const int k = j % half_dim;
      const float exponent = (-9.210340371976184f * (float) k) / ((float) half_dim - shift);
      const float arg = t[i] * exp (exponent);
      const int first = j < half_dim;           /* first half: sin, or cos if flipped */
      v = (first != (flip != 0)) ? sin (arg) : cos (arg);
    }
  y[(long) i * dim + j] = v;
}

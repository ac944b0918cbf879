/* ops-gemm.c — host side of the matrix products and convolutions: weight
 * packing, shape checks and launch geometry for the kernels in cl/gemm.cl
 * and cl/conv.cl.
 *
 * Packed weights are ordinary (strided) tensor views, so they describe
 * themselves truthfully: element (n, k) of a linear weight is W[n][k].
 *   linear  ne = { out, in, 1, 1 }, stored as Wᵀ: for each input feature k
 *           a row of ldw >= out elements (nb[1] = ldw · element size, ldw a
 *           multiple of 16, the tail zero-filled), so the kernel's 16-wide
 *           loads of output features never need a mask;
 *   conv2d  ne = { out, kw, kh, in }, the same [k][ldw] rows with k running
 *           over (kh, kw, in), in innermost: the implicit GEMM's K order
 *           over a channel-innermost input (see cl/conv.cl); so nb[3]
 *           (one input channel) is the row stride.
 * Storage is f16 or f32. When M is large, a call reads an f32 copy: linear
 * weights packed into panels of 16 columns (pack_panels), f16 conv weights
 * widened row for row (weight_for_rows); x86 converts f16 with vcvtph2ps,
 * which in the K loop would cost a third of the FMA throughput.
 */
#include "ops-internal.h"

#if defined (__x86_64__) && defined (__GNUC__)
#include <immintrin.h>
#endif

/* Work-item tile and work-group shapes; GEMM_TM and GEMM_TN must match
 * cl/gemm.cl and cl/conv.cl (a GEMM work-item covers GEMM_TN columns with
 * float8, twice that with float16: sdcl_engine_gemm_width).
 * A GEMM group is one column tile by GEMM_WG_M tiles of 6 rows: PoCL runs
 * a group's work-items one after the other on a core, so the tile's B
 * panels (up to K x 32 floats) stay in L2 for all 16 row blocks. Measured
 * on PoCL, Xeon AVX-512, 2 threads, against 4x8 (GFLOP/s, two runs each):
 * 512x5120·5120x1280 184/162 vs 114/134, 77x768·768x3072 93/107 vs 64/65,
 * the 4096-row shapes within noise (the machine's own spread was ±30 %).
 * The direct conv keeps 4 panels x 8 row tiles (measured on AVX2, where
 * 1x8 to 20x4 were within noise). */
#define GEMM_TM   6
#define GEMM_TN   16
#define GEMM_WG_N 1
#define GEMM_WG_M 16
#define CONV_WG_N 4
#define CONV_WG_M 8

/* Linear products with at least this many rows read their weight packed
 * into f32 panels (pack_panels), convolutions a widened f32 copy of f16
 * weights (weight_for_rows); at 77 rows (the text encoder) reading the
 * stored rows, converting f16 in the K loop, was faster. */
#define PACK_MIN_ROWS 96

/* Convolutions sum over at most this many K rows (input channels x taps)
 * per launch; wider ones run in channel blocks that accumulate in the
 * output (see cl/conv.cl). Measured on PoCL, 2 cores (bench-ops, GFLOP/s
 * for 320/640/1280 channels): one pass 60/35/25, blocks of 2304 63/46/26,
 * 1152 62/56/31, 768 59/55/47, 576 56/53/45, 288 47/44/45. */
#define CONV_BLOCK_K 768
/* Products with f16 weights and at most this many rows (output pixels of
 * a convolution, tokens of a linear layer) have each group widen its
 * weight columns in local memory on CPUs (see widen_in_local); above it
 * the groups are many and a widened copy of the weight pays. For linear
 * layers with 128 rows this took a third less than packing the weight to
 * f32 panels per call, e.g. 128x1280 · 1280x10240 21–26 ms against
 * 31–36 ms (bench-ops, three interleaved runs); at 4096 rows packing stays
 * ahead. */
#define LOCAL_MAX_ROWS 1024
/* Linear layers keep the local widening up to 2048 rows (the 32x32 level
 * of 512² images with CFG): UNet 64x64 CFG forward, GEMM kernel time about
 * 4 % less than packing at 2048 rows (two interleaved runs); widening at
 * every size was no better than 1024. */
#define LINEAR_LOCAL_MAX_ROWS 2048
/* ... and their groups span up to this many row tiles: with all 22 row
 * tiles of the 8x8 level (CFG batch) in one group, conv3x3_f16_local took
 * about 20 % less than with groups of 8 (1280 channels, four interleaved
 * pairs of kernel time); 256² txt2img conv kernel time about 12 % less */
#define LOCAL_WG_M 32

/* ---- helpers ----------------------------------------------------------------- */

/* Whether a product with f16 weights and `rows` rows should have each
 * group widen its weight columns (`bytes` of f32) into local memory:
 * CPUs only (local memory is ordinary cache there), with at least three
 * row tiles to share the widening, and room to spare. `env` names the
 * variable that turns it off ("0") for comparisons. */
static gboolean
widen_in_local (SdclEngine *engine, const SdclTensor *w, gint64 rows, gsize bytes,
                const gchar *env)
{
  const SdclDeviceInfo *dev = sdcl_engine_device (engine);
  return w->dtype == SDCL_DTYPE_F16 && !dev->is_gpu && (rows + GEMM_TM - 1) / GEMM_TM >= 3
         && bytes <= dev->local_mem_bytes / 2 && g_strcmp0 (g_getenv (env), "0") != 0;
}

/* Whether products run gemm_tiled_* (cl/gemm.cl: 128x128 blocks of C
 * staged through local memory by 16x16 work-items): on GPUs, where the
 * per-work-item kernels leave the multiprocessors waiting on loads (H200,
 * NVIDIA OpenCL: gemm_f32 at 5.5 TFLOP/s on 4096x320 · 320x1280, cuBLAS's
 * sgemm at 35). SDCL_GEMM_TILED=1 forces it on any device (tests), =0
 * turns it off. */
static gboolean
gemm_tiled (SdclEngine *engine)
{
  const SdclDeviceInfo *dev = sdcl_engine_device (engine);
  if (dev->max_work_group_size < 256 || dev->local_mem_bytes < 16384)
    return FALSE;
  const gchar *env = g_getenv ("SDCL_GEMM_TILED");
  if (env && *env)
    return g_str_equal (env, "1");
  return dev->is_gpu;
}

/* Columns per work-item of the product kernels (gemm_f16, gemm_f16_local,
 * gemm_f32 in cl/gemm.cl) and of the direct convolution (cl/conv.cl): four
 * vectors where they are 16 wide (6 x 64 tiles), else two. The Winograd
 * products keep two. */
static gint64
product_tile_n (SdclEngine *engine)
{
  const guint width = sdcl_engine_gemm_width (engine);
  return width == 16 ? 4 * width : 2 * width;
}

/* Whether a product of M rows and K-row f16 B runs gemm_f16_local: its
 * group's columns (K x the tile's width) widened in local memory. */
static gboolean
gemm_widens (SdclEngine *engine, const SdclTensor *b, gint64 M, gint64 K)
{
  const gsize panel_bytes = (gsize) K * product_tile_n (engine) * sizeof (gfloat);
  return widen_in_local (engine, b, M, panel_bytes, "SDCL_GEMM_LOCAL");
}

/* Into how many ranges of K (at most 8) a product of M rows with K-row
 * f16 B must be cut for gemm_f16_local to widen each range's columns in
 * local memory: 1 where the whole fits, 0 where no cut makes it run. */
static gint
local_k_ranges (SdclEngine *engine, const SdclTensor *b, gint64 M, gint64 K)
{
  for (gint n = 1; n <= 8; n++)
    if (gemm_widens (engine, b, M, (K + n - 1) / n))
      return n;
  return 0;
}

static inline glong
elem_stride (const SdclTensor *t, int i)
{
  return (glong) (t->nb[i] / sdcl_dtype_size (t->dtype));
}

static SdclTensor *
dtype_error (GError **error, const gchar *op, const gchar *what, const SdclTensor *t)
{
  g_autofree gchar *d = sdcl_tensor_describe (t);
  g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_DTYPE, "%s: %s, got %s", op, what, d);
  return NULL;
}

/* TRUE when dims 1..3 of t can be walked as one run of rows with a single
 * stride (in elements, *row_stride), ne0 being unit-stride f32. */
static gboolean
uniform_rows (const SdclTensor *t, glong *row_stride)
{
  if (t->dtype != SDCL_DTYPE_F32 || (t->ne[0] > 1 && t->nb[0] != sizeof (gfloat)))
    return FALSE;
  glong stride = -1;
  gsize expect = 0;
  for (int i = 1; i < 4; i++)
    {
      if (t->ne[i] == 1)
        continue;
      if (stride < 0)
        stride = elem_stride (t, i);
      else if (t->nb[i] != expect)
        return FALSE;
      expect = t->nb[i] * t->ne[i];
    }
  *row_stride = stride < 0 ? t->ne[0] : stride;
  return TRUE;
}

/* x itself (a new reference) when its rows are uniformly strided f32,
 * else a contiguous f32 copy. */
static SdclTensor *
rows_of (const SdclTensor *x, glong *row_stride, GError **error)
{
  if (uniform_rows (x, row_stride))
    return sdcl_tensor_view (x, x->ne, x->nb, 0, error);
  SdclTensor *c = sdcl_contiguous (x, error);
  if (c)
    *row_stride = c->ne[0];
  return c;
}

/* The bias as a unit-stride f32 vector of n elements, or NULL with an error. */
static SdclTensor *
bias_of (const SdclTensor *bias, gint64 n, const gchar *op, GError **error)
{
  if (sdcl_tensor_numel (bias) != n)
    {
      g_autofree gchar *d = sdcl_tensor_describe (bias);
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "%s: bias %s should have %" G_GINT64_FORMAT " elements", op, d, n);
      return NULL;
    }
  if (sdcl_tensor_is_contiguous (bias) && bias->dtype == SDCL_DTYPE_F32)
    return sdcl_tensor_view (bias, bias->ne, bias->nb, 0, error);
  return sdcl_contiguous (bias, error);
}

/* ---- weight packing ---------------------------------------------------------- */

/* Packing runs over blocks of PACK_COLS(storage) output rows, one 64-byte
 * line of a packed row, and PACK_KC elements of K at a time: the block's
 * source rows are converted into a small buffer along K (sequential reads
 * of the file), then written out along the packed rows. */
#define PACK_KC 256
#define PACK_COLS(esize) (64 / (esize))
#define PACK_THREADED_MIN (1 << 20)      /* elements; smaller weights pack on one thread */

static gsize
weight_type_size (SdclWeightType type)
{
  return type == SDCL_WEIGHT_F32 ? 4 : 2;
}

typedef struct
{
  const SdclWeightPart *parts;
  guint                 n_parts;
  gint64                n_out, n_in, taps, n_k, ldw;
  SdclDtype             storage;
  guint8               *dst;
  gint64                block0, block1;  /* the blocks of PACK_COLS rows this worker packs */
} PackJob;

/* n elements of `type` at src as `storage` at dst (n <= PACK_KC). */
static void
convert_run (gconstpointer src, SdclWeightType type, gpointer dst, SdclDtype storage, gsize n)
{
  const gboolean to_f16 = storage == SDCL_DTYPE_F16;
  if (type == SDCL_WEIGHT_F32)
    {
      if (to_f16)
        sdcl_f32_to_f16_n (src, dst, n);
      else
        memcpy (dst, src, n * 4);
    }
  else if (type == SDCL_WEIGHT_F16)
    {
      if (to_f16)
        memcpy (dst, src, n * 2);
      else
        sdcl_f16_to_f32_n (src, dst, n);
    }
  else
    {
      gfloat f[PACK_KC];
      const guint16 *b = src;
      for (gsize i = 0; i < n; i++)
        f[i] = sdcl_bf16_to_f32 (b[i]);
      if (to_f16)
        sdcl_f32_to_f16_n (f, dst, n);
      else
        memcpy (dst, f, n * 4);
    }
}

/* dst[k][r] = src[r][k] for r < rows, k < kc: src rows PACK_KC apart,
 * dst rows ld apart, 2-byte elements; 8x8 blocks through SSE2 unpacks on
 * x86-64 (a scalar transpose was half of a model's load time). */
static void
transpose16 (const guint16 *src, gint64 rows, gint64 kc, guint16 *dst, gint64 ld)
{
  gint64 r0 = 0;
#if defined (__x86_64__) && defined (__GNUC__)
  for (; r0 + 8 <= rows; r0 += 8)
    {
      gint64 k = 0;
      for (; k + 8 <= kc; k += 8)
        {
          __m128i a[8], b[8], c[8];
          for (int i = 0; i < 8; i++)
            a[i] = _mm_loadu_si128 ((const __m128i *) (src + (r0 + i) * PACK_KC + k));
          for (int i = 0; i < 4; i++)
            {
              b[2 * i] = _mm_unpacklo_epi16 (a[2 * i], a[2 * i + 1]);
              b[2 * i + 1] = _mm_unpackhi_epi16 (a[2 * i], a[2 * i + 1]);
            }
          /* b[0] = r0r1 k0-3, b[1] = r0r1 k4-7, b[2] = r2r3 k0-3, ... */
          c[0] = _mm_unpacklo_epi32 (b[0], b[2]);
          c[1] = _mm_unpackhi_epi32 (b[0], b[2]);
          c[2] = _mm_unpacklo_epi32 (b[1], b[3]);
          c[3] = _mm_unpackhi_epi32 (b[1], b[3]);
          c[4] = _mm_unpacklo_epi32 (b[4], b[6]);
          c[5] = _mm_unpackhi_epi32 (b[4], b[6]);
          c[6] = _mm_unpacklo_epi32 (b[5], b[7]);
          c[7] = _mm_unpackhi_epi32 (b[5], b[7]);
          /* c[0] = r0-3 k0-1, c[1] = r0-3 k2-3, c[2] = r0-3 k4-5, c[3] = r0-3 k6-7,
           * c[4..7] the same for r4-7 */
          for (int i = 0; i < 4; i++)
            {
              _mm_storeu_si128 ((__m128i *) (dst + (k + 2 * i) * ld + r0),
                                _mm_unpacklo_epi64 (c[i], c[i + 4]));
              _mm_storeu_si128 ((__m128i *) (dst + (k + 2 * i + 1) * ld + r0),
                                _mm_unpackhi_epi64 (c[i], c[i + 4]));
            }
        }
      for (; k < kc; k++)
        for (gint64 r = r0; r < r0 + 8; r++)
          dst[k * ld + r] = src[r * PACK_KC + k];
    }
#endif
  for (gint64 k = 0; k < kc && r0 < rows; k++)
    for (gint64 r = r0; r < rows; r++)
      dst[k * ld + r] = src[r * PACK_KC + k];
}

/* o[k] = element k0 + k of a row's packed K (tap, input channel) from the
 * file's row [n_in][taps], for k < kc: runs of one tap, each a strided
 * read, with the stride a constant for 3x3 weights (a counter per element
 * and a product for its index, as before, were most of a model's load
 * time). */
#define GATHER_TAPS(name, T)                                                   \
  static void                                                                  \
  name (const T *src, gint64 n_in, gint64 taps, gint64 k0, gint64 kc, T *o)    \
  {                                                                            \
    gint64 t = k0 / n_in, i = k0 % n_in;                                       \
    for (gint64 k = 0; k < kc;)                                                \
      {                                                                        \
        const gint64 run = MIN (kc - k, n_in - i);                             \
        const T *s = src + i * taps + t;                                       \
        T *d = o + k;                                                          \
        if (taps == 9)                                                         \
          for (gint64 q = 0; q < run; q++)                                     \
            d[q] = s[9 * q];                                                   \
        else                                                                   \
          for (gint64 q = 0; q < run; q++)                                     \
            d[q] = s[q * taps];                                                \
        k += run;                                                              \
        i = 0;                                                                 \
        t++;                                                                   \
      }                                                                        \
  }
GATHER_TAPS (gather_taps16, guint16)
GATHER_TAPS (gather_taps32, guint32)

static gpointer
pack_worker (gpointer data)
{
  const PackJob *j = data;
  const gsize esize = sdcl_dtype_size (j->storage);
  const gint64 cols = PACK_COLS (esize);
  guint8 *tmp = g_malloc (cols * PACK_KC * esize);
  guint32 raw[PACK_KC];
  const guint8 *row_src[64];
  SdclWeightType row_type[64];

  for (gint64 blk = j->block0; blk < j->block1; blk++)
    {
      const gint64 n0 = blk * cols;
      const gint64 width = MIN (cols, j->ldw - n0);       /* packed columns of this block */
      const gint64 valid = CLAMP (j->n_out - n0, 0, width);
      for (gint64 r = 0; r < valid; r++)
        {
          gint64 n = n0 + r;
          guint p = 0;
          while (n >= j->parts[p].rows)
            n -= j->parts[p++].rows;
          row_type[r] = j->parts[p].type;
          row_src[r] = (const guint8 *) j->parts[p].data
                       + (gsize) n * j->n_in * j->taps * weight_type_size (row_type[r]);
        }
      for (gint64 k0 = 0; k0 < j->n_k; k0 += PACK_KC)
        {
          const gint64 kc = MIN (PACK_KC, j->n_k - k0);
          for (gint64 r = 0; r < valid; r++)
            {
              const gsize tsize = weight_type_size (row_type[r]);
              gconstpointer run = row_src[r] + (gsize) k0 * tsize;
              guint8 *into = tmp + (gsize) r * PACK_KC * esize;
              const gboolean same = tsize == esize && (row_type[r] != SDCL_WEIGHT_BF16);
              if (j->taps > 1)
                {
                  /* packed K runs over (tap, input channel), the file's
                   * over (input channel, tap); f16 into f16 and f32 into
                   * f32 gather straight into the block */
                  gpointer g = same ? (gpointer) into : (gpointer) raw;
                  if (tsize == 2)
                    gather_taps16 ((const guint16 *) row_src[r], j->n_in, j->taps, k0, kc, g);
                  else
                    gather_taps32 ((const guint32 *) row_src[r], j->n_in, j->taps, k0, kc, g);
                  if (same)
                    continue;
                  run = raw;
                }
              convert_run (run, row_type[r], into, j->storage, kc);
            }
          guint8 *out = j->dst + ((gsize) k0 * j->ldw + n0) * esize;
          if (esize == 2)
            transpose16 ((const guint16 *) tmp, valid, kc, (guint16 *) out, j->ldw);
          else
            for (gint64 k = 0; k < kc; k++)
              for (gint64 r = 0; r < valid; r++)
                ((guint32 *) out)[k * j->ldw + r] = ((const guint32 *) tmp)[r * PACK_KC + k];
          if (valid < width)
            for (gint64 k = 0; k < kc; k++)
              memset (out + ((gsize) k * j->ldw + valid) * esize, 0, (width - valid) * esize);
        }
    }
  g_free (tmp);
  return NULL;
}

/* Packs the rows of `parts` (each row [n_in][taps] elements, n_out rows in
 * all) as a [n_in·taps][ldw] matrix of `storage` dtype, K running over
 * (tap, input channel), zero beyond n_out, and returns the strided view of
 * it with the given 4-D shape (ne[0] == n_out). */
static SdclTensor *
pack_parts (SdclEngine *engine, SdclDtype storage, const SdclWeightPart *parts, guint n_parts,
            gint64 n_in, gint64 taps, const gint64 ne[4], GError **error)
{
  const gsize esize = sdcl_dtype_size (storage);
  gint64 n_out = 0;
  for (guint p = 0; p < n_parts; p++)
    n_out += parts[p].rows;
  const gint64 n_k = n_in * taps;
  const gint64 ldw = sdcl_round_up (MAX (n_out, 1), GEMM_TN);
  gsize count;
  if (n_parts == 0 || n_parts > 16 || n_out <= 0 || n_in <= 0 || taps <= 0
      || !g_size_checked_mul (&count, ldw, n_k) || count > G_MAXSIZE / esize)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "weight of %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT
                   " is out of range", n_out, n_in, taps);
      return NULL;
    }
  const gint64 dense_ne[1] = { (gint64) count };
  g_autoptr (SdclTensor) t = sdcl_tensor_new (engine, storage, 1, dense_ne, error);
  if (!t)
    return NULL;
  guint8 *dst = sdcl_tensor_map_write (t, error);
  if (!dst)
    return NULL;

  const gint64 cols = PACK_COLS (esize), blocks = (ldw + cols - 1) / cols;
  const gint64 n_threads = count < PACK_THREADED_MIN ? 1 : CLAMP (g_get_num_processors (), 1, 4);
  PackJob jobs[4];
  GThread *threads[4] = { NULL };
  for (gint64 i = 0; i < n_threads; i++)
    {
      jobs[i] = (PackJob) { parts, n_parts, n_out, n_in, taps, n_k, ldw, storage, dst,
                            blocks * i / n_threads, blocks * (i + 1) / n_threads };
      if (i > 0)
        threads[i] = g_thread_try_new ("sdcl-pack", pack_worker, &jobs[i], NULL);
    }
  pack_worker (&jobs[0]);
  for (gint64 i = 1; i < n_threads; i++)
    {
      if (threads[i])
        g_thread_join (threads[i]);
      else
        pack_worker (&jobs[i]);            /* no thread to be had: pack it here */
    }
  if (!sdcl_tensor_unmap (t, dst, error))
    return NULL;

  /* ne = { n_out, d1, d2, d3 } with d1·d2·d3 == n_k, rows of ldw */
  gsize nb[4] = { esize, esize * ldw, 0, 0 };
  nb[2] = nb[1] * ne[1];
  nb[3] = nb[2] * ne[2];
  return sdcl_tensor_view (t, ne, nb, 0, error);
}

/* Packs rows W[n][k] (n < n_out, k < n_k, row-major floats); see pack_parts. */
static SdclTensor *
pack_weight (SdclEngine *engine, SdclDtype storage, const gfloat *w, gint64 n_out,
             gint64 n_k, const gint64 ne[4], GError **error)
{
  const SdclWeightPart part = { w, SDCL_WEIGHT_F32, n_out };
  return pack_parts (engine, storage, &part, 1, n_k, 1, ne, error);
}

/* The row stride (elements) of a packed weight whose dimension `dim` steps
 * one row, or 0 when w does not look like one made by pack_weight. */
static glong
packed_ldw (const SdclTensor *w, int dim)
{
  const gsize esize = sdcl_dtype_size (w->dtype);
  if (w->nb[0] != esize || w->nb[dim] % esize != 0)
    return 0;
  const glong ldw = w->nb[dim] / esize;
  if (ldw % GEMM_TN != 0 || ldw < (glong) sdcl_round_up (w->ne[0], GEMM_TN))
    return 0;
  return ldw;
}

/* The packed weight w ([k_rows][ldw] rows) as the kernels should read it
 * for a product with m_rows rows: f16 weights are widened into a pooled
 * f32 copy when there are enough rows to amortise it (see gemm_widen_f16
 * in cl/gemm.cl); otherwise w itself. Returns a new reference. */
static SdclTensor *
weight_for_rows (const SdclTensor *w, gint64 k_rows, glong ldw, gint64 m_rows, GError **error)
{
  if (w->dtype != SDCL_DTYPE_F16 || m_rows < PACK_MIN_ROWS)
    return sdcl_tensor_view (w, w->ne, w->nb, 0, error);
  const gint64 count = k_rows * ldw;
  g_autoptr (SdclTensor) wide = sdcl_tensor_new (w->engine, SDCL_DTYPE_F32, 1, &count, error);
  const gsize local = 64, global = sdcl_round_up ((count / 8), local);
  if (!wide || !SDCL_LAUNCH (w->engine, "gemm_widen_f16", 1, &global, &local, error,
                             SDCL_ARG_MEM (w->mem), SDCL_ARG_ULONG (sdcl_elem_off (w)),
                             SDCL_ARG_MEM (wide->mem), SDCL_ARG_LONG (count)))
    return NULL;
  return g_steal_pointer (&wide);
}

/* ---- linear and matmul -------------------------------------------------------- */

SdclTensor *
sdcl_linear_weight_new (SdclEngine *engine, SdclDtype storage, const gfloat *w,
                        gint64 out_features, gint64 in_features, GError **error)
{
  const gint64 ne[4] = { out_features, in_features, 1, 1 };
  return pack_weight (engine, storage, w, out_features, in_features, ne, error);
}

SdclTensor *
sdcl_linear_weight_new_parts (SdclEngine *engine, SdclDtype storage, const SdclWeightPart *parts,
                              guint n_parts, gint64 in_features, GError **error)
{
  gint64 out_features = 0;
  for (guint p = 0; p < n_parts; p++)
    out_features += parts[p].rows;
  const gint64 ne[4] = { out_features, in_features, 1, 1 };
  return pack_parts (engine, storage, parts, n_parts, in_features, 1, ne, error);
}

/* The arguments of every GEMM kernel in cl/gemm.cl (C at element c_off
 * of c), then the local buffer of gemm_f16_local (panel_bytes): an
 * initializer, so that the values (compound literals) live in the
 * caller's block. */
#define GEMM_N_ARGS 21
#define GEMM_ARGS(a, lda, a_batch, M, K, b, ldb, b_batch, b_panel, N, bias, c, c_off, ldc,    \
                  c_batch, accumulate, panel_bytes)                                        \
  {                                                                                        \
    SDCL_ARG_MEM ((a)->mem), SDCL_ARG_ULONG (sdcl_elem_off (a)),                           \
    SDCL_ARG_LONG (lda), SDCL_ARG_LONG (a_batch),                                          \
    SDCL_ARG_INT (M), SDCL_ARG_INT (K),                                                    \
    SDCL_ARG_MEM ((b)->mem), SDCL_ARG_ULONG (sdcl_elem_off (b)),                           \
    SDCL_ARG_LONG (ldb), SDCL_ARG_LONG (b_batch), SDCL_ARG_LONG (b_panel),                 \
    SDCL_ARG_INT (N),                                                                      \
    SDCL_ARG_MEM ((bias) ? (bias)->mem : (c)->mem),                                        \
    SDCL_ARG_ULONG ((bias) ? sdcl_elem_off (bias) : 0),                                    \
    SDCL_ARG_INT ((bias) != NULL),                                                         \
    SDCL_ARG_MEM ((c)->mem), SDCL_ARG_ULONG (c_off),                                       \
    SDCL_ARG_LONG (ldc), SDCL_ARG_LONG (c_batch), SDCL_ARG_INT (accumulate),               \
    SDCL_ARG_LOCAL (panel_bytes),                                                          \
  }

/* One launch of gemm_tiled_* (128-row blocks) or gemm_tiled32_* (32-row
 * blocks, for products of at most 64 rows) over `batches` products. */
static gboolean
launch_tiled (SdclEngine *engine, const SdclArg *args, gint64 M, gint64 N, gboolean f16,
              gint64 batches, GError **error)
{
  const gboolean few = M <= 64;
  const gint64 bm = few ? 32 : 128;
  const gsize local[3] = { 16, 16, 1 };
  const gsize global[3] = { 16 * ((N + 127) / 128), 16 * ((M + bm - 1) / bm), batches };
  const gchar *name = few ? (f16 ? "gemm_tiled32_f16" : "gemm_tiled32_f32")
                          : (f16 ? "gemm_tiled_f16" : "gemm_tiled_f32");
  return sdcl_launch (engine, name, 3, global, local, args, GEMM_N_ARGS - 1, error);
}

/* How many ranges of K a single tiled product is split into: enough for
 * its blocks to cover the device's compute units (a 256-row, 1280-column
 * product makes 20 blocks of 128x128, against 132 multiprocessors on an
 * H200), each range at least 64 long and K divided evenly. Batched
 * products have blocks enough. SDCL_GEMM_SPLIT=n forces n where it
 * divides K (tests). */
static gint
tiled_splits (SdclEngine *engine, gint64 M, gint64 K, gint64 N, gint64 batches)
{
  const gchar *env = g_getenv ("SDCL_GEMM_SPLIT");
  if (env && *env)
    {
      const gint64 n = g_ascii_strtoll (env, NULL, 10);
      return batches == 1 && n > 1 && n <= K && K % n == 0 ? (gint) n : 1;
    }
  if (batches != 1)
    return 1;
  const gint64 bm = M <= 64 ? 32 : 128;
  const gint64 blocks = (M + bm - 1) / bm * ((N + 127) / 128);
  const gint64 units = sdcl_engine_device (engine)->compute_units;
  gint splits = 1;
  while (blocks * splits < units && K % (2 * splits) == 0 && K / (2 * splits) >= 64)
    splits *= 2;
  return splits;
}

/* One launch of gemm_f16/gemm_f32 over `batches` products; with
 * `accumulate`, C += A·B (+ bias) instead of C = A·B (+ bias). */
static gboolean
launch_gemm_panels (SdclEngine *engine, const SdclTensor *a, glong lda, glong a_batch, gint64 M,
                    gint64 K, const SdclTensor *b, glong ldb, glong b_batch, glong b_panel,
                    gint64 N, const SdclTensor *bias, SdclTensor *c, glong ldc, glong c_batch,
                    gint64 batches, gboolean accumulate, GError **error)
{
  const gboolean f16 = b->dtype == SDCL_DTYPE_F16;
  if (gemm_tiled (engine))
    {
      const gint splits = tiled_splits (engine, M, K, N, batches);
      if (splits == 1)
        {
          const SdclArg args[] = GEMM_ARGS (a, lda, a_batch, M, K, b, ldb, b_batch, b_panel, N,
                                            bias, c, sdcl_elem_off (c), ldc, c_batch,
                                            accumulate, 0);
          return launch_tiled (engine, args, M, N, f16, batches, error);
        }
      /* partial products over K / splits each (the kernel's batches),
         then their sum with the bias into C */
      const gint64 ks = K / splits, count = splits * M * N;
      g_autoptr (SdclTensor) part = sdcl_tensor_new (engine, SDCL_DTYPE_F32, 1, &count, error);
      if (!part)
        return FALSE;
      const SdclTensor *no_bias = NULL;
      const SdclArg args[] = GEMM_ARGS (a, lda, ks, M, ks, b, ldb, ks * ldb, b_panel, N, no_bias,
                                        part, 0, N, M * N, FALSE, 0);
      const gsize s_local[2] = { 64, 1 };
      const gsize s_global[2] = { sdcl_round_up (N, 64), M };
      return launch_tiled (engine, args, M, N, f16, splits, error)
             && SDCL_LAUNCH (engine, "gemm_splitk_sum", 2, s_global, s_local, error,
                             SDCL_ARG_MEM (part->mem), SDCL_ARG_INT (splits),
                             SDCL_ARG_INT (M), SDCL_ARG_INT (N),
                             SDCL_ARG_MEM (bias ? bias->mem : c->mem),
                             SDCL_ARG_ULONG (bias ? sdcl_elem_off (bias) : 0),
                             SDCL_ARG_INT (bias != NULL),
                             SDCL_ARG_MEM (c->mem), SDCL_ARG_ULONG (sdcl_elem_off (c)),
                             SDCL_ARG_LONG (ldc), SDCL_ARG_INT (accumulate));
    }
  const gint64 tile_n = product_tile_n (engine);
  /* f16 B shared by several row tiles of a group: widened once per group
     in local memory (CPUs, where local memory is ordinary cache) */
  const gsize panel_bytes = (gsize) K * tile_n * sizeof (gfloat);
  const gboolean widen = gemm_widens (engine, b, M, K);
  const gint64 row_tiles = (M + GEMM_TM - 1) / GEMM_TM;
  const gsize local[3] = { GEMM_WG_N, widen ? MIN (row_tiles, LOCAL_WG_M) : GEMM_WG_M, 1 };
  const gsize global[3] = {
    sdcl_round_up ((N + tile_n - 1) / tile_n, local[0]),
    sdcl_round_up (row_tiles, local[1]),
    batches,
  };
  const SdclArg args[] = GEMM_ARGS (a, lda, a_batch, M, K, b, ldb, b_batch, b_panel, N, bias, c,
                                    sdcl_elem_off (c), ldc, c_batch, accumulate, panel_bytes);
  return sdcl_launch (engine, widen ? "gemm_f16_local" : f16 ? "gemm_f16" : "gemm_f32",
                      3, global, local, args, GEMM_N_ARGS - !widen, error);
}

/* The same with B as plain rows of ldb >= N padded columns: panel n0/16
 * starts at column n0. */
static gboolean
launch_gemm (SdclEngine *engine, const SdclTensor *a, glong lda, glong a_batch, gint64 M,
             gint64 K, const SdclTensor *b, glong ldb, glong b_batch, gint64 N,
             const SdclTensor *bias, SdclTensor *c, glong ldc, glong c_batch, gint64 batches,
             gboolean accumulate, GError **error)
{
  return launch_gemm_panels (engine, a, lda, a_batch, M, K, b, ldb, b_batch, GEMM_TN, N, bias,
                             c, ldc, c_batch, batches, accumulate, error);
}

/* B[k][n] = src[off + batch · src_batch + k · ld_k + n · ld_n] (elements,
 * f32 or f16) packed by gemm_pack_* into f32 panels of 16 columns: a new
 * tensor of ne { 16, K, panels, batches }, zero past column N. */
static SdclTensor *
pack_panels (const SdclTensor *src, glong ld_k, glong ld_n, glong src_batch, gint64 K,
             gint64 N, gint64 batches, GError **error)
{
  const gint64 ne[4] = { GEMM_TN, K, (N + GEMM_TN - 1) / GEMM_TN, batches };
  if (K > G_MAXINT || N > G_MAXINT)
    return sdcl_ops_shape_error (error, "matmul", "the operand is too large", src, NULL);
  g_autoptr (SdclTensor) p = sdcl_tensor_new (src->engine, SDCL_DTYPE_F32, 4, ne, error);
  const gsize local[3] = { 64, 1, 1 };
  const gsize global[3] = { sdcl_round_up (K, local[0]), ne[2], batches };
  if (!p || !SDCL_LAUNCH (src->engine, src->dtype == SDCL_DTYPE_F16 ? "gemm_pack_f16"
                                                                     : "gemm_pack_f32",
                          3, global, local, error,
                          SDCL_ARG_MEM (src->mem), SDCL_ARG_ULONG (sdcl_elem_off (src)),
                          SDCL_ARG_LONG (ld_k), SDCL_ARG_LONG (ld_n), SDCL_ARG_LONG (src_batch),
                          SDCL_ARG_INT (K), SDCL_ARG_INT (N), SDCL_ARG_INT (ne[2]),
                          SDCL_ARG_MEM (p->mem)))
    return NULL;
  return g_steal_pointer (&p);
}

/* The same launch with B packed by pack_panels (one batch for all, or one
 * per product). */
static gboolean
launch_gemm_packed (const SdclTensor *a, glong lda, glong a_batch, gint64 M,
                    const SdclTensor *packed, gint64 N, const SdclTensor *bias, SdclTensor *c,
                    glong ldc, glong c_batch, gint64 batches, gboolean accumulate,
                    GError **error)
{
  const gint64 K = packed->ne[1];
  const glong panel = GEMM_TN * K, b_batch = packed->ne[3] == 1 ? 0 : panel * packed->ne[2];
  return launch_gemm_panels (a->engine, a, lda, a_batch, M, K, packed, GEMM_TN, b_batch, panel,
                             N, bias, c, ldc, c_batch, batches, accumulate, error);
}

/* Whether x and w fit a linear layer (error set when not). */
static gboolean
linear_check (const SdclTensor *x, const SdclTensor *w, GError **error)
{
  if (packed_ldw (w, 1) == 0 || w->ne[2] != 1 || w->ne[3] != 1)
    {
      sdcl_ops_shape_error (error, "linear", "the weight was not made by sdcl_linear_weight_new",
                            w, NULL);
      return FALSE;
    }
  if (x->ne[0] != w->ne[1])
    {
      sdcl_ops_shape_error (error, "linear", "input features differ from the weight's", x, w);
      return FALSE;
    }
  if (x->dtype != SDCL_DTYPE_F32 && x->dtype != SDCL_DTYPE_F16)
    {
      dtype_error (error, "linear", "the input must be f32", x);
      return FALSE;
    }
  return TRUE;
}

/* The product kernels' flags (GEMM_ACCUMULATE, GEMM_GEGLU in cl/gemm.cl),
 * passed where they take `accumulate`. */
#define GEMM_FLAG_ACCUMULATE 1
#define GEMM_FLAG_GEGLU      2

/* y = x·wᵀ + bias; with GEMM_FLAG_ACCUMULATE y += x·wᵀ + bias; with
 * GEMM_FLAG_GEGLU y = GEGLU of x·wᵀ + bias (where geglu_fuses, and K in one
 * range: see sdcl_linear_geglu). x and w passed linear_check, y is [N (N /
 * 2 with GEGLU), rows of x] contiguous f32 (checked by the callers). */
static gboolean
linear_into (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias, SdclTensor *y,
             gint flags, GError **error)
{
  const gint64 N = w->ne[0], K = w->ne[1];
  const glong ldw = packed_ldw (w, 1);
  glong lda;
  g_autoptr (SdclTensor) xr = rows_of (x, &lda, error);
  g_autoptr (SdclTensor) br = xr && bias ? bias_of (bias, N, "linear", error) : NULL;
  if (!xr || (bias && !br))
    return FALSE;
  const gint64 M = x->ne[1] * x->ne[2] * x->ne[3];
  /* few rows read the stored f16 rows (widened per group in local memory
     on CPUs, see launch_gemm_panels), and so does the tiled GEMM, which
     converts each weight once per block of 128 rows; on CPUs many rows
     read an f32 copy in panels */
  const gint ranges = M <= LINEAR_LOCAL_MAX_ROWS ? local_k_ranges (x->engine, w, M, K) : 0;
  const gint64 ldy = y->ne[0];
  if (M < PACK_MIN_ROWS || gemm_tiled (x->engine) || ranges == 1)
    return launch_gemm (x->engine, xr, lda, 0, M, K, w, ldw, 0, N, br, y, ldy, 0, 1, flags,
                        error);
  if (ranges > 1)
    {
      /* K too long for the group's columns to fit in local memory whole
         (the feed-forward's 5120 -> 1280 at 16x16 latents): ranges of K,
         each adding into y, the bias with the first */
      const gint64 step = (K + ranges - 1) / ranges;
      for (gint64 k0 = 0; k0 < K; k0 += step)
        {
          const gint64 kc = MIN (step, K - k0);
          const gint64 a_ne[4] = { kc, xr->ne[1], xr->ne[2], xr->ne[3] };
          const gint64 w_ne[4] = { N, kc, 1, 1 };
          g_autoptr (SdclTensor) av = sdcl_tensor_view (xr, a_ne, xr->nb, k0 * sizeof (gfloat),
                                                        error);
          g_autoptr (SdclTensor) wv = av ? sdcl_tensor_view (w, w_ne, w->nb, k0 * w->nb[1], error)
                                         : NULL;
          if (!wv || !launch_gemm (x->engine, av, lda, 0, M, kc, wv, ldw, 0, N,
                                   k0 == 0 ? br : NULL, y, ldy, 0, 1,
                                   k0 > 0 ? GEMM_FLAG_ACCUMULATE : flags, error))
            return FALSE;
        }
      return TRUE;
    }
  g_autoptr (SdclTensor) packed = pack_panels (w, ldw, 1, 0, K, ldw, 1, error);
  return packed && launch_gemm_packed (xr, lda, 0, M, packed, N, br, y, ldy, 0, 1, flags,
                                       error);
}

/* Whether sdcl_linear_geglu forms GEGLU in the product's output (the
 * 16-wide product kernels on CPUs, hidden and gate halves of whole panels;
 * SDCL_GEGLU_FUSED=0 turns it off, for tests). */
static gboolean
geglu_fuses (SdclEngine *engine, gint64 N)
{
  return !sdcl_engine_device (engine)->is_gpu && sdcl_engine_gemm_width (engine) == 16
         && !gemm_tiled (engine) && N % 32 == 0
         && g_strcmp0 (g_getenv ("SDCL_GEGLU_FUSED"), "0") != 0;
}

SdclTensor *
sdcl_linear_geglu (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                   GError **error)
{
  if (!linear_check (x, w, error))
    return NULL;
  const gint64 N = w->ne[0], K = w->ne[1];
  const gint64 M = x->ne[1] * x->ne[2] * x->ne[3];
  /* K in ranges sums partial products in y: GEGLU needs the whole sum */
  const gint ranges = M <= LINEAR_LOCAL_MAX_ROWS ? local_k_ranges (x->engine, w, M, K) : 0;
  if (!geglu_fuses (x->engine, N) || ranges > 1)
    {
      g_autoptr (SdclTensor) h = sdcl_linear (x, w, bias, error);
      return h ? sdcl_geglu (h, error) : NULL;
    }
  const gint64 ne[4] = { N / 2, x->ne[1], x->ne[2], x->ne[3] };
  g_autoptr (SdclTensor) y = sdcl_tensor_new (x->engine, SDCL_DTYPE_F32, 4, ne, error);
  return y && linear_into (x, w, bias, y, GEMM_FLAG_GEGLU, error) ? g_steal_pointer (&y) : NULL;
}

SdclTensor *
sdcl_linear (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias, GError **error)
{
  if (!linear_check (x, w, error))
    return NULL;
  const gint64 ne[4] = { w->ne[0], x->ne[1], x->ne[2], x->ne[3] };
  g_autoptr (SdclTensor) y = sdcl_tensor_new (x->engine, SDCL_DTYPE_F32, 4, ne, error);
  return y && linear_into (x, w, bias, y, 0, error) ? g_steal_pointer (&y) : NULL;
}

gboolean
sdcl_linear_accumulate (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                        SdclTensor *y, GError **error)
{
  glong ldy;
  if (!linear_check (x, w, error))
    return FALSE;
  if (y->dtype != SDCL_DTYPE_F32 || y->ne[0] != w->ne[0] || y->ne[1] != x->ne[1]
      || y->ne[2] != x->ne[2] || y->ne[3] != x->ne[3] || y->nb[0] != sizeof (gfloat)
      || !uniform_rows (y, &ldy) || ldy != y->ne[0])
    {
      sdcl_ops_shape_error (error, "linear", "the sum must be contiguous f32 of the output's shape",
                            x, y);
      return FALSE;
    }
  return linear_into (x, w, bias, y, GEMM_FLAG_ACCUMULATE, error);
}

/* The batch stride (elements) of a 3-D operand whose dims 2 and 3 are
 * walked as one batch dimension, or -1 when they cannot be. */
static glong
batch_stride (const SdclTensor *t)
{
  if (t->ne[2] > 1 && t->ne[3] > 1 && t->nb[3] != t->nb[2] * t->ne[2])
    return -1;
  if (t->ne[2] > 1)
    return elem_stride (t, 2);
  return t->ne[3] > 1 ? elem_stride (t, 3) : 0;
}

/* t when its ne0 is unit-stride f32 and its batch dims flatten, else a
 * contiguous copy; both as new references. */
static SdclTensor *
matrix_of (const SdclTensor *t, GError **error)
{
  if (t->dtype == SDCL_DTYPE_F32 && (t->ne[0] == 1 || t->nb[0] == sizeof (gfloat))
      && batch_stride (t) >= 0)
    return sdcl_tensor_view (t, t->ne, t->nb, 0, error);
  return sdcl_contiguous (t, error);
}

/* K and N of a matmul's b; FALSE when a's K does not fit (error set). */
static gboolean
matmul_operand (const SdclTensor *a, const SdclTensor *b, gboolean transpose_b, gint64 *K,
                gint64 *N, GError **error)
{
  *K = b->ne[transpose_b ? 0 : 1];
  *N = b->ne[transpose_b ? 1 : 0];
  if (*K == a->ne[0])
    return TRUE;
  sdcl_ops_shape_error (error, "matmul", transpose_b ? "b's ne0 must equal a's ne0 (K)"
                                                     : "b's ne1 must equal a's ne0 (K)", a, b);
  return FALSE;
}

SdclTensor *
sdcl_matmul_pack (const SdclTensor *b, gboolean transpose_b, GError **error)
{
  if (b->dtype != SDCL_DTYPE_F32 && b->dtype != SDCL_DTYPE_F16)
    return dtype_error (error, "matmul", "operands must be f32", b);
  g_autoptr (SdclTensor) bb = batch_stride (b) >= 0 ? sdcl_tensor_view (b, b->ne, b->nb, 0, error)
                                                    : sdcl_contiguous (b, error);
  if (!bb)
    return NULL;
  const int kd = transpose_b ? 0 : 1, nd = 1 - kd;
  return pack_panels (bb, elem_stride (bb, kd), elem_stride (bb, nd), batch_stride (bb),
                      bb->ne[kd], bb->ne[nd], bb->ne[2] * bb->ne[3], error);
}

gboolean
sdcl_matmul_packed_into (const SdclTensor *a, const SdclTensor *packed, gint64 N,
                         SdclTensor *c, GError **error)
{
  const gint64 K = packed->ne[1], batches = a->ne[2] * a->ne[3];
  if (a->dtype != SDCL_DTYPE_F32 && a->dtype != SDCL_DTYPE_F16)
    {
      dtype_error (error, "matmul", "operands must be f32", a);
      return FALSE;
    }
  if (packed->ne[0] != GEMM_TN || packed->ne[2] != (N + GEMM_TN - 1) / GEMM_TN
      || (packed->ne[3] != 1 && packed->ne[3] != batches) || a->ne[0] != K)
    {
      sdcl_ops_shape_error (error, "matmul", "a does not fit the packed b", a, packed);
      return FALSE;
    }
  glong c_batch = batch_stride (c);
  if (c->dtype != SDCL_DTYPE_F32 || c->ne[0] != N || c->ne[1] != a->ne[1]
      || c->ne[2] != a->ne[2] || c->ne[3] != a->ne[3] || c->nb[0] != sizeof (gfloat)
      || c_batch < 0)
    {
      sdcl_ops_shape_error (error, "matmul", "the output does not fit", a, c);
      return FALSE;
    }
  g_autoptr (SdclTensor) ar = matrix_of (a, error);
  return ar && launch_gemm_packed (ar, elem_stride (ar, 1), batch_stride (ar), a->ne[1], packed,
                                   N, NULL, c, elem_stride (c, 1), c_batch, batches, FALSE,
                                   error);
}

SdclTensor *
sdcl_matmul (const SdclTensor *a, const SdclTensor *b, gboolean transpose_b, GError **error)
{
  if (a->dtype != SDCL_DTYPE_F32 && a->dtype != SDCL_DTYPE_F16)
    return dtype_error (error, "matmul", "operands must be f32", a);
  gint64 K, N;
  if (!matmul_operand (a, b, transpose_b, &K, &N, error))
    return NULL;
  if (b->ne[2] * b->ne[3] != 1 && (b->ne[2] != a->ne[2] || b->ne[3] != a->ne[3]))
    return sdcl_ops_shape_error (error, "matmul", "b's batch must be 1 or a's", a, b);
  g_autoptr (SdclTensor) packed = sdcl_matmul_pack (b, transpose_b, error);
  const gint64 ne[4] = { N, a->ne[1], a->ne[2], a->ne[3] };
  g_autoptr (SdclTensor) y = packed ? sdcl_tensor_new (a->engine, SDCL_DTYPE_F32, 4, ne, error)
                                    : NULL;
  if (!y || !sdcl_matmul_packed_into (a, packed, N, y, error))
    return NULL;
  return g_steal_pointer (&y);
}

/* ---- conv2d --------------------------------------------------------------------- */

SdclTensor *
sdcl_conv2d_weight_new_parts (SdclEngine *engine, SdclDtype storage, const SdclWeightPart *part,
                              gint64 out_channels, gint64 in_channels, gint64 kh, gint64 kw,
                              GError **error)
{
  if (kh <= 0 || kw <= 0 || in_channels <= 0 || out_channels <= 0 || part->rows != out_channels
      || kh > G_MAXINT32 || kw > G_MAXINT32 || in_channels > G_MAXINT64 / (kh * kw))
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "conv2d weight [%" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " x %"
                   G_GINT64_FORMAT " x %" G_GINT64_FORMAT "] is empty or out of range",
                   out_channels, in_channels, kh, kw);
      return NULL;
    }
  /* PyTorch's [out][in][kh][kw] packed as rows over (kh, kw, in) */
  const gint64 taps = kh * kw;
  const gint64 flat[4] = { out_channels, in_channels * taps, 1, 1 };
  g_autoptr (SdclTensor) packed = pack_parts (engine, storage, part, 1, in_channels, taps, flat,
                                              error);
  if (!packed)
    return NULL;
  /* element (o, kx, ky, i) of the view is W[o][i][ky][kx] */
  const gsize row = packed->nb[1];
  const gint64 ne[4] = { out_channels, kw, kh, in_channels };
  const gsize nb[4] = { packed->nb[0], row * in_channels, row * in_channels * kw, row };
  return sdcl_tensor_view (packed, ne, nb, 0, error);
}

SdclTensor *
sdcl_conv2d_weight_new (SdclEngine *engine, SdclDtype storage, const gfloat *w,
                        gint64 out_channels, gint64 in_channels, gint64 kh, gint64 kw,
                        GError **error)
{
  const SdclWeightPart part = { w, SDCL_WEIGHT_F32, out_channels };
  return sdcl_conv2d_weight_new_parts (engine, storage, &part, out_channels, in_channels, kh, kw,
                                       error);
}

SdclTensor *
sdcl_conv2d (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias, gint stride,
             gint pad, GError **error)
{
  return sdcl_conv2d_padded (x, w, bias, stride, pad, pad, error);
}

SdclTensor *
sdcl_conv2d_padded (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                    gint stride, gint pad, gint pad_end, GError **error)
{
  return sdcl_conv2d_with (x, w, bias, stride, pad, pad_end, SDCL_CONV_AUTO, error);
}

/* ---- Winograd F(4x4, 3x3) (cl/winograd.cl) ----------------------------------- */

/* V and M of one slice of tile rows take at most about this many bytes
 * together; larger inputs are transformed in slices. */
#define WINO_SLICE_BYTES (48u << 20)

/* Winograd does 36 / (9·16) of the direct kernel's multiply-adds plus the
 * transforms, whose share grows as channels shrink. bench-ops, PoCL on 2
 * cores, times the direct kernel's: 3.6x faster at 320 channels 64x64, 4.1x
 * at 640 32x32, 3.3x at 1280 16x16, 1.5x even at 1280 8x8 (8 tiles per
 * position), 2.6x at 128 channels 512x512. Below 32 channels (the first
 * layers) the transforms would dominate. */
static gboolean
winograd_pays (SdclEngine *engine, gint64 Cin, gint64 Cout, gint64 tiles)
{
  /* GPUs: from 32 tiles (16x16 with the CFG batch); fewer run as a plain
   * product (conv_gemm), where Winograd's weight transform per call costs
   * more than it saves (H200, 1280 channels at 8x8 x2: Winograd 1.6 ms,
   * the direct kernel 5.2 ms) */
  if (sdcl_engine_device (engine)->is_gpu)
    return Cin >= 32 && Cout >= 32 && tiles >= 32;
  /* on the AVX-512 machine with float16 GEMM tiles the direct kernel won at
   * 1280 channels 8x8 x2 (8 tiles: 53 vs 64 ms), Winograd at 16x16 x2 (32
   * tiles: 77 vs 204 ms): the weight transform is a fixed cost per call */
  return Cin >= 32 && Cout >= 32 && tiles >= 16;
}

/* U of at most about this many bytes: wider layers transform their
 * weights in blocks of output channels (U is 4x the f32 weight: 472 MB at
 * 2560 -> 1280 channels, which set the process's peak memory). */
#define WINO_U_BYTES (128u << 20)

/* U [36][panels][Cin][16] of output channels co0 .. co0 + 16·panels - 1. */
static gboolean
wino_weight_block (const SdclTensor *w, glong ldw, gint64 Cin, gint64 co0, gint64 panels,
                   SdclTensor *u, GError **error)
{
  /* GPUs: a quarter panel per work-item (wino_weight4_*; SDCL_WINO_WEIGHT4=1
     elsewhere, for tests) */
  const gboolean four = sdcl_engine_device (w->engine)->is_gpu
                        || g_strcmp0 (g_getenv ("SDCL_WINO_WEIGHT4"), "1") == 0;
  const gboolean f16 = w->dtype == SDCL_DTYPE_F16;
  const gsize local[3] = { four ? 4 : 1, 16, 1 };
  const gsize global[3] = { four ? 4 : panels, sdcl_round_up (Cin, 16), four ? panels : 1 };
  return SDCL_LAUNCH (w->engine, four ? (f16 ? "wino_weight4_f16" : "wino_weight4_f32")
                                      : (f16 ? "wino_weight_f16" : "wino_weight_f32"),
                      3, global, local, error,
                      SDCL_ARG_MEM (w->mem), SDCL_ARG_ULONG (sdcl_elem_off (w) + co0),
                      SDCL_ARG_LONG (ldw), SDCL_ARG_INT (Cin), SDCL_ARG_INT (panels),
                      SDCL_ARG_MEM (u->mem));
}

/* The output kernels' add_mode for add: 0 none, 1 a value per channel and
 * image ([1, 1, Cout, N]), 2 a residual of the output's shape. */
static gint
conv_add_mode (const SdclTensor *add)
{
  return !add ? 0 : add->ne[0] * add->ne[1] == 1 ? 1 : 2;
}

static SdclTensor *
conv_winograd (const SdclTensor *x, const SdclTensor *w, glong ldw, const SdclTensor *bias,
               gint pad, gint64 Wo, gint64 Ho, const SdclTensor *add, SdclTensor *into,
               GError **error)
{
  SdclEngine *engine = x->engine;
  const gint64 Cout = w->ne[0], Cin = w->ne[3];
  const gint64 W = x->ne[0], H = x->ne[1], N = x->ne[3];
  const gint64 tiles_w = (Wo + 3) / 4, tiles_h = (Ho + 3) / 4, rows = tiles_h * N;

  /* f16 weights on CPUs: the products make their columns of U themselves,
     6 positions per group (gemm_wino_f16_local), so no U is made;
     else U in f32, in blocks of output channels. Stored, U is 36 floats
     per weight, written and read back on every call; UNet CFG forward,
     kernel time of the transforms and products, interleaved runs: 64x64
     latents about 10 % less fused, 32x32 about 18 % less. (One position
     per group was slower than the stored U at 16x16: each group's
     transform cost as much as its product.) */
  const gint64 tile_n = 2 * sdcl_engine_gemm_width (engine);
  const SdclDeviceInfo *dev = sdcl_engine_device (engine);
  /* a group's U columns for its 6 positions fill local memory (half of
     it) from 1366 input channels at 6 x 32 tiles: wider layers run in
     ranges of input channels, the later ones adding to M. (Three
     positions per group instead, as before, had two groups transform and
     read the same weights: 2560 -> 1280 channels at 16x16 x2, bench-ops,
     three runs of each in turns, best 112 -> 79 ms, median 122 -> 102 ms
     in two ranges.) */
  const gsize budget = dev->local_mem_bytes / 2;
  gint64 k_ranges = 1;
  while (k_ranges < 8
         && 6 * (gsize) ((Cin + k_ranges - 1) / k_ranges) * tile_n * sizeof (gfloat) > budget)
    k_ranges++;
  const gint64 k_per = (Cin + k_ranges - 1) / k_ranges;
  const gsize panel_bytes = (gsize) k_per * tile_n * sizeof (gfloat);
  const gboolean fused = w->dtype == SDCL_DTYPE_F16 && !dev->is_gpu
                         && 6 * panel_bytes <= budget
                         && g_strcmp0 (g_getenv ("SDCL_WINOGRAD_FUSED"), "0") != 0;
  /* output channels in blocks of bw (a multiple of 16) whose U fits in
   * WINO_U_BYTES; U [36][bw / 16][Cin][16], f32: per position, panels of 16
   * output channels, each a sequential stream over the input channels */
  const gint64 fit = (gint64) (WINO_U_BYTES / (36 * (gsize) Cin * sizeof (gfloat)));
  const gint64 bw = fused ? ldw : MIN (ldw, MAX (GEMM_TN, fit / GEMM_TN * GEMM_TN));
  const gint64 blocks = (ldw + bw - 1) / bw;
  const gint64 u_count = 36 * Cin * bw;
  g_autoptr (SdclTensor) u = fused ? NULL
                                   : sdcl_tensor_new (engine, SDCL_DTYPE_F32, 1, &u_count, error);
  if (!fused
      && (!u || (blocks == 1 && !wino_weight_block (w, ldw, Cin, 0, bw / GEMM_TN, u, error))))
    return NULL;

  const gsize row_bytes = 36 * (gsize) tiles_w * (Cin + bw) * sizeof (gfloat);
  const gint64 slice = CLAMP ((gint64) (WINO_SLICE_BYTES / row_bytes), 1, rows);
  const gint64 v_count = 36 * slice * tiles_w * Cin, m_count = 36 * slice * tiles_w * bw;
  g_autoptr (SdclTensor) v = sdcl_tensor_new (engine, SDCL_DTYPE_F32, 1, &v_count, error);
  g_autoptr (SdclTensor) m = v ? sdcl_tensor_new (engine, SDCL_DTYPE_F32, 1, &m_count, error)
                               : NULL;
  g_autoptr (SdclTensor) br = m && bias ? bias_of (bias, Cout, "conv2d", error) : NULL;
  g_autoptr (SdclTensor) y = !m || (bias && !br) ? NULL
                             : into ? sdcl_tensor_view (into, into->ne, into->nb, 0, error)
                             : sdcl_tensor_new_4d (engine, SDCL_DTYPE_F32, Wo, Ho, Cout, N, error);
  if (!y)
    return NULL;
  const gint add_mode = conv_add_mode (add);

  for (gint64 r0 = 0; r0 < rows; r0 += slice)
    {
      const gint64 r_end = MIN (rows, r0 + slice), tiles = (r_end - r0) * tiles_w;
      /* GPUs: 8 tiles by 8 channel blocks per group (a group of 8
         work-items leaves most of a multiprocessor idle) */
      const gsize in_local[3] = { MIN ((Cin + 7) / 8, 8), dev->is_gpu ? 8 : 1, 1 };
      const gsize in_global[3] = { sdcl_round_up ((Cin + 7) / 8, in_local[0]),
                                   sdcl_round_up (tiles_w, in_local[1]), r_end - r0 };
      if (!SDCL_LAUNCH (engine, x->dtype == SDCL_DTYPE_F16 ? "wino_input_f16" : "wino_input_f32",
                        3, in_global, in_local, error,
                        SDCL_ARG_MEM (x->mem), SDCL_ARG_ULONG (sdcl_elem_off (x)),
                        SDCL_ARG_LONG (elem_stride (x, 0)), SDCL_ARG_LONG (elem_stride (x, 1)),
                        SDCL_ARG_LONG (elem_stride (x, 2)), SDCL_ARG_LONG (elem_stride (x, 3)),
                        SDCL_ARG_INT (W), SDCL_ARG_INT (H), SDCL_ARG_INT (Cin), SDCL_ARG_INT (N),
                        SDCL_ARG_INT (pad), SDCL_ARG_INT (tiles_w), SDCL_ARG_INT (tiles_h),
                        SDCL_ARG_INT (r0), SDCL_ARG_INT (r_end), SDCL_ARG_INT (tiles),
                        SDCL_ARG_MEM (v->mem)))
        return NULL;
      for (gint64 co0 = 0; co0 < Cout; co0 += bw)
        {
          const gint64 cols = MIN (bw, ldw - co0), n_out = MIN (bw, Cout - co0);
          if (fused)
            {
              /* M[p] = V[p] · U[p], U's columns made by each group */
              const gint64 row_tiles = (tiles + GEMM_TM - 1) / GEMM_TM;
              const gsize local[3] = { 1, MIN (row_tiles, LOCAL_WG_M), 1 };
              const gsize global[3] = { (cols + tile_n - 1) / tile_n,
                                        sdcl_round_up (row_tiles, local[1]), 6 };
              for (gint64 k0 = 0; k0 < Cin; k0 += k_per)
                {
                  const SdclArg args[] = {
                    SDCL_ARG_MEM (v->mem), SDCL_ARG_ULONG (k0),
                    SDCL_ARG_LONG (Cin), SDCL_ARG_LONG (tiles * Cin),
                    SDCL_ARG_INT (tiles), SDCL_ARG_INT (MIN (k_per, Cin - k0)),
                    SDCL_ARG_MEM (w->mem), SDCL_ARG_ULONG (sdcl_elem_off (w) + co0 + k0 * ldw),
                    SDCL_ARG_LONG (ldw), SDCL_ARG_INT (Cin), SDCL_ARG_INT (cols),
                    SDCL_ARG_MEM (m->mem), SDCL_ARG_ULONG (0),
                    SDCL_ARG_LONG (cols), SDCL_ARG_LONG (tiles * cols), SDCL_ARG_INT (k0 > 0),
                    SDCL_ARG_LOCAL (6 * panel_bytes),
                  };
                  if (!sdcl_launch (engine, "gemm_wino_f16_local", 3, global, local, args,
                                    G_N_ELEMENTS (args), error))
                    return NULL;
                }
            }
          else
            {
              if (blocks > 1
                  && !wino_weight_block (w, ldw, Cin, co0, cols / GEMM_TN, u, error))
                return NULL;
              /* M[p] = V[p] · U[p] for the 36 positions p, the block's columns */
              if (!launch_gemm_panels (engine, v, Cin, tiles * Cin, tiles, Cin, u, GEMM_TN,
                                       Cin * cols, Cin * GEMM_TN, cols, NULL, m, cols,
                                       tiles * cols, 36, FALSE, error))
                return NULL;
            }
          const gsize out_local[3] = { MIN ((n_out + 7) / 8, 8), dev->is_gpu ? 8 : 1, 1 };
          const gsize out_global[3] = { sdcl_round_up ((n_out + 7) / 8, out_local[0]),
                                        sdcl_round_up (tiles_w, out_local[1]), r_end - r0 };
          if (!SDCL_LAUNCH (engine, "wino_output", 3, out_global, out_local, error,
                            SDCL_ARG_MEM (m->mem), SDCL_ARG_LONG (cols), SDCL_ARG_INT (tiles),
                            SDCL_ARG_INT (tiles_w), SDCL_ARG_INT (tiles_h),
                            SDCL_ARG_INT (r0), SDCL_ARG_INT (r_end),
                            SDCL_ARG_MEM (br ? br->mem : y->mem),
                            SDCL_ARG_ULONG (br ? sdcl_elem_off (br) + co0 : 0),
                            SDCL_ARG_INT (br != NULL),
                            SDCL_ARG_MEM (y->mem),
                            SDCL_ARG_ULONG (sdcl_elem_off (y) + co0 * Wo * Ho),
                            SDCL_ARG_INT (Wo), SDCL_ARG_INT (Ho), SDCL_ARG_INT (n_out),
                            SDCL_ARG_INT (Cout),
                            SDCL_ARG_MEM (add ? add->mem : y->mem),
                            SDCL_ARG_ULONG (!add ? 0
                                            : sdcl_elem_off (add)
                                                + (add_mode == 1 ? co0 : co0 * Wo * Ho)),
                            SDCL_ARG_INT (add_mode)))
            return NULL;
        }
    }
  return g_steal_pointer (&y);
}

/* Whether a convolution that Winograd does not take runs as a plain
 * matrix product (im2col, then the tiled GEMM with K split as needed):
 * on GPUs, where the direct kernel's groups of 4x8 tiles are too few at
 * the small levels (H200, 1280 channels at 8x8 x2: 5.2 ms in 15 channel
 * blocks of 40 groups) and wide ones too slow at stride 2; on CPUs for
 * 1x1 layers (no im2col: the packed input is A as it is), where the
 * direct kernel ran at about half the product's rate (320->640 at 32x32
 * x2: 10 ms direct, 8 ms as product and transpose). Needs input channels
 * in multiples of 4 and an A of at most 256 MiB.
 * SDCL_CONV_GEMM=1 forces it on any device (tests), =0 turns it off. */
static gboolean
conv_by_gemm (SdclEngine *engine, gint64 Cin, gint64 M, gint64 K, gint64 ks, gint stride)
{
  if (Cin % 4 != 0 || (gsize) M * K * sizeof (gfloat) > (256u << 20) || M > G_MAXINT
      || K > G_MAXINT)
    return FALSE;
  const gchar *env = g_getenv ("SDCL_CONV_GEMM");
  if (env && *env)
    return g_str_equal (env, "1");
  return sdcl_engine_device (engine)->is_gpu || (ks == 1 && stride == 1);
}

/* y = conv(xp) + bias through conv_im2col (unless a 1x1 stride-1 layer,
 * whose xp rows are A already), a product C [M][Cout] and a copy of C's
 * transpose into y's pixel-innermost layout. */
static SdclTensor *
conv_gemm (const SdclTensor *xp, const SdclTensor *w, glong ldw, const SdclTensor *bias,
           gint64 ks, gint stride, gint64 Wp, gint64 Hp, gint64 Wo, gint64 Ho, GError **error)
{
  SdclEngine *engine = xp->engine;
  const gint64 Cin = xp->ne[0], N = xp->ne[3], Cout = w->ne[0];
  const gint64 M = Wo * Ho * N, K = ks * ks * Cin;
  g_autoptr (SdclTensor) a = NULL;
  if (ks == 1 && stride == 1 && Wp == Wo && Hp == Ho)
    a = sdcl_tensor_view (xp, xp->ne, xp->nb, 0, error);
  else
    {
      const gint64 ne[2] = { K, M };
      a = sdcl_tensor_new (engine, SDCL_DTYPE_F32, 2, ne, error);
      const gsize local[2] = { 64, 1 };
      const gsize global[2] = { sdcl_round_up (K / 4, 64), M };
      if (a && !SDCL_LAUNCH (engine, "conv_im2col", 2, global, local, error,
                             SDCL_ARG_MEM (xp->mem), SDCL_ARG_INT (Wp), SDCL_ARG_INT (Hp),
                             SDCL_ARG_INT (Cin), SDCL_ARG_INT (ks), SDCL_ARG_INT (stride),
                             SDCL_ARG_INT (Wo), SDCL_ARG_INT (Wo * Ho), SDCL_ARG_INT (M),
                             SDCL_ARG_MEM (a->mem)))
        g_clear_pointer (&a, sdcl_tensor_free);
    }
  const gint64 c_ne[4] = { Cout, Wo, Ho, N };
  g_autoptr (SdclTensor) c = a ? sdcl_tensor_new (engine, SDCL_DTYPE_F32, 4, c_ne, error) : NULL;
  if (!c || !launch_gemm (engine, a, K, 0, M, K, w, ldw, 0, Cout, bias, c, Cout, 0, 1, FALSE,
                          error))
    return NULL;
  /* C's transpose: y (p, co, n) = C[n][p][co] for the pixels p = (ox, oy),
     one plane of pixels per channel (a copy whose source rows are the
     contiguous dimension 1: the transposing kernel) */
  const gint64 t_ne[4] = { Wo * Ho, Cout, N, 1 };
  const gsize t_nb[4] = { Cout * sizeof (gfloat), sizeof (gfloat),
                          Wo * Ho * Cout * sizeof (gfloat), Wo * Ho * Cout * N * sizeof (gfloat) };
  g_autoptr (SdclTensor) ct = sdcl_tensor_view (c, t_ne, t_nb, 0, error);
  g_autoptr (SdclTensor) y = ct ? sdcl_contiguous (ct, error) : NULL;
  return y ? sdcl_tensor_reshape (y, Wo, Ho, Cout, N, error) : NULL;
}

/* Whether add fits a convolution's output [Wo, Ho, Cout, N]: contiguous
 * f32 of that shape, or [1, 1, Cout, N] unless the sum goes into it. */
static gboolean
conv_add_fits (const SdclTensor *add, gboolean into, gint64 Wo, gint64 Ho, gint64 Cout,
               gint64 N, GError **error)
{
  const gboolean per_image = add->ne[0] == 1 && add->ne[1] == 1 && !into;
  if (add->dtype != SDCL_DTYPE_F32 || !sdcl_tensor_is_contiguous (add)
      || (!per_image && (add->ne[0] != Wo || add->ne[1] != Ho)) || add->ne[2] != Cout
      || add->ne[3] != N)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "conv2d: the tensor added to the output must be contiguous f32 [%" G_GINT64_FORMAT
                   " x %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT "]%s, not "
                   "%s [%" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT
                   " x %" G_GINT64_FORMAT "]",
                   Wo, Ho, Cout, N, into ? "" : " or [1 x 1 x Cout x N]",
                   sdcl_tensor_is_contiguous (add) ? sdcl_dtype_name (add->dtype) : "a strided view of",
                   add->ne[0], add->ne[1], add->ne[2], add->ne[3]);
      return FALSE;
    }
  return TRUE;
}

/* conv(x) + bias, plus add (see sdcl_conv2d_add) in the output's pass where
 * the kernels take it; with into (== add) the sum is written into it and a
 * view of it returned. */
static SdclTensor *
conv2d_full (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias, gint stride,
             gint pad, gint pad_end, SdclConvAlgorithm algorithm, const SdclTensor *add,
             SdclTensor *into, GError **error)
{
  const gint64 Cout = w->ne[0], kw = w->ne[1], kh = w->ne[2], Cin = w->ne[3];
  const gint64 W = x->ne[0], H = x->ne[1], N = x->ne[3];
  const glong ldw = packed_ldw (w, 3);
  if (ldw == 0 || w->nb[1] != w->nb[3] * Cin || w->nb[2] != w->nb[1] * kw)
    return sdcl_ops_shape_error (error, "conv2d", "the weight was not made by sdcl_conv2d_weight_new",
                        w, NULL);
  if (kh != kw || (kh != 1 && kh != 3))
    return sdcl_ops_shape_error (error, "conv2d", "only 1x1 and 3x3 kernels are supported", w, NULL);
  if (stride != 1 && stride != 2)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "conv2d: stride %d is not 1 or 2", stride);
      return NULL;
    }
  if (pad < 0 || pad > 16 || pad_end < 0 || pad_end > 16)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "conv2d: padding %d, %d is not 0..16", pad, pad_end);
      return NULL;
    }
  if (x->ne[2] != Cin)
    return sdcl_ops_shape_error (error, "conv2d", "input channels (ne2) differ from the weight's", x, w);
  if (x->dtype != SDCL_DTYPE_F32 && x->dtype != SDCL_DTYPE_F16)
    return dtype_error (error, "conv2d", "the input must be f32", x);
  /* the pack kernel pads `pad` before and whatever Wp - W - pad is after */
  const gint64 Wp = W + pad + pad_end, Hp = H + pad + pad_end;
  if (Wp < kw || Hp < kh)
    return sdcl_ops_shape_error (error, "conv2d", "the padded input is smaller than the kernel", x, w);
  const gint64 Wo = (Wp - kw) / stride + 1, Ho = (Hp - kh) / stride + 1;
  if (add && !conv_add_fits (add, into != NULL, Wo, Ho, Cout, N, error))
    return NULL;

  if (kh == 3 && stride == 1 && algorithm != SDCL_CONV_DIRECT)
    {
      const gchar *env = g_getenv ("SDCL_CONV");
      const gint64 tiles = (Wo + 3) / 4 * ((Ho + 3) / 4) * N;
      if (algorithm == SDCL_CONV_WINOGRAD
          || (winograd_pays (x->engine, Cin, Cout, tiles) && g_strcmp0 (env, "direct") != 0))
        return conv_winograd (x, w, ldw, bias, pad, Wo, Ho, add, into, error);
    }

  const gint64 M = Wo * Ho * N;
  const gboolean by_gemm = conv_by_gemm (x->engine, Cin, M, kh * kw * Cin, kh, stride);
  /* the direct kernel's blocks of at most CONV_BLOCK_K rows of K (channels
     x taps), summed in y */
  const gint64 blocks = (Cin * kh * kw + CONV_BLOCK_K - 1) / CONV_BLOCK_K;
  if (into && blocks > 1 && !by_gemm)
    {
      /* the first block would overwrite the residual that the last adds */
      g_autoptr (SdclTensor) yc = conv2d_full (x, w, bias, stride, pad, pad_end, algorithm, NULL,
                                               NULL, error);
      if (!yc || !sdcl_binary_into (into, yc, SDCL_BINARY_ADD, error))
        return NULL;
      return sdcl_tensor_view (into, into->ne, into->nb, 0, error);
    }

  /* The kernel reads a zero-padded copy with channels innermost (see
   * cl/conv.cl), so its inner loop is the GEMM's, without bounds checks. */
  g_autoptr (SdclTensor) xp = sdcl_tensor_new_4d (x->engine, SDCL_DTYPE_F32, Cin, Wp, Hp, N,
                                                  error);
  if (!xp)
    return NULL;
  {
    /* 8x8 pixel-channel blocks (see cl/conv.cl), a whole padded row of
     * blocks by 4 rows per group: PoCL's cost per group is about a
     * microsecond, more than a block's copy */
    const gsize blocks = (Wp + 7) / 8;
    const gsize local[3] = { blocks <= 32 ? blocks : 8, 4, 1 };
    const gsize global[3] = { sdcl_round_up (blocks, local[0]), sdcl_round_up (Hp, 4),
                              (Cin + 7) / 8 * N };
    if (!SDCL_LAUNCH (x->engine, x->dtype == SDCL_DTYPE_F16 ? "conv_pack_f16" : "conv_pack_f32",
                      3, global, local, error,
                      SDCL_ARG_MEM (x->mem), SDCL_ARG_ULONG (sdcl_elem_off (x)),
                      SDCL_ARG_LONG (elem_stride (x, 0)), SDCL_ARG_LONG (elem_stride (x, 1)),
                      SDCL_ARG_LONG (elem_stride (x, 2)), SDCL_ARG_LONG (elem_stride (x, 3)),
                      SDCL_ARG_INT (W), SDCL_ARG_INT (H), SDCL_ARG_INT (Cin),
                      SDCL_ARG_INT (pad), SDCL_ARG_MEM (xp->mem), SDCL_ARG_INT (Wp),
                      SDCL_ARG_INT (Hp)))
      return NULL;
  }
  g_autoptr (SdclTensor) br = bias ? bias_of (bias, Cout, "conv2d", error) : NULL;
  if (bias && !br)
    return NULL;
  if (by_gemm)
    {
      /* the product's output is transposed into place: add afterwards */
      g_autoptr (SdclTensor) yg = conv_gemm (xp, w, ldw, br, kh, stride, Wp, Hp, Wo, Ho, error);
      if (!yg || (add && !sdcl_binary_into (into ? into : yg, into ? yg : add, SDCL_BINARY_ADD,
                                            error)))
        return NULL;
      return into ? sdcl_tensor_view (into, into->ne, into->nb, 0, error) : g_steal_pointer (&yg);
    }

  /* the last block adds add after its sum (into itself: each element is
     read, then written, by one work-item) */
  const gint add_mode = conv_add_mode (add);
  g_autoptr (SdclTensor) y = into ? sdcl_tensor_view (into, into->ne, into->nb, 0, error)
                             : sdcl_tensor_new_4d (x->engine, SDCL_DTYPE_F32, Wo, Ho, Cout, N,
                                                   error);
  if (!y)
    return NULL;
  /* the product kernels' tile width (cl/conv.cl: CONV_TN), and column
     tiles per group so that a group spans CONV_WG_N tiles of two vectors */
  const gint64 tile_n = product_tile_n (x->engine);
  const gint wg_n = MAX (1, CONV_WG_N * 2 * (gint) sdcl_engine_gemm_width (x->engine)
                            / (gint) tile_n);
  const gint64 per_block = (Cin + blocks - 1) / blocks;
  /* f16 weights times a moderate number of rows on CPUs: each group widens
     its columns of the block into local memory (conv*_f16_local) instead
     of reading a widened copy of the whole weight made per call */
  const gint lwn = wg_n * tile_n;
  const gsize lw_bytes = (gsize) kh * kw * per_block * lwn * sizeof (gfloat);
  const gboolean local_w = M <= LOCAL_MAX_ROWS
                           && widen_in_local (x->engine, w, M, lw_bytes, "SDCL_CONV_LOCAL");
  g_autoptr (SdclTensor) wk = local_w ? sdcl_tensor_view (w, w->ne, w->nb, 0, error)
                                      : weight_for_rows (w, Cin * kh * kw, ldw, M, error);
  if (!wk)
    return NULL;
  /* the local kernels: a group over all row tiles up to LOCAL_WG_M,
     so each weight column is widened once per column group, not once
     per 8 row tiles */
  const gint64 row_tiles = (M + GEMM_TM - 1) / GEMM_TM;
  const gint wg_m = local_w ? (gint) MIN (row_tiles, LOCAL_WG_M) : CONV_WG_M;
  const gsize local[3] = { wg_n, wg_m, 1 };
  const gsize global[3] = {
    sdcl_round_up ((Cout + tile_n - 1) / tile_n, local[0]),
    sdcl_round_up (row_tiles, local[1]),
    1,
  };
  const gboolean f16 = wk->dtype == SDCL_DTYPE_F16;
  const gchar *name = local_w ? (kh == 3 ? "conv3x3_f16_local" : "conv1x1_f16_local")
                      : kh == 3 ? (f16 ? "conv3x3_f16" : "conv3x3_f32")
                                : (f16 ? "conv1x1_f16" : "conv1x1_f32");
  for (gint64 c_lo = 0; c_lo < Cin; c_lo += per_block)
    {
      const gint64 c_hi = MIN (Cin, c_lo + per_block);
      const SdclArg args[] = {
        SDCL_ARG_MEM (xp->mem), SDCL_ARG_ULONG (0),
        SDCL_ARG_INT (Wp), SDCL_ARG_INT (Hp),
        SDCL_ARG_INT (Cin), SDCL_ARG_INT (stride),
        SDCL_ARG_INT (Wo), SDCL_ARG_INT (Wo * Ho), SDCL_ARG_INT (M),
        SDCL_ARG_MEM (wk->mem), SDCL_ARG_ULONG (sdcl_elem_off (wk)),
        SDCL_ARG_LONG (ldw), SDCL_ARG_INT (Cout),
        SDCL_ARG_MEM (br ? br->mem : y->mem),
        SDCL_ARG_ULONG (br ? sdcl_elem_off (br) : 0),
        SDCL_ARG_INT (br != NULL && c_lo == 0),
        SDCL_ARG_MEM (y->mem), SDCL_ARG_ULONG (sdcl_elem_off (y)),
        SDCL_ARG_INT (c_lo), SDCL_ARG_INT (c_hi), SDCL_ARG_INT (c_lo > 0),
        SDCL_ARG_MEM (add ? add->mem : y->mem), SDCL_ARG_ULONG (add ? sdcl_elem_off (add) : 0),
        SDCL_ARG_INT (c_hi == Cin ? add_mode : 0),
        SDCL_ARG_LOCAL (lw_bytes), SDCL_ARG_INT (lwn),     /* the _local kernels only */
      };
      if (!sdcl_launch (x->engine, name, 3, global, local, args,
                        G_N_ELEMENTS (args) - (local_w ? 0 : 2), error))
        return NULL;
    }
  return g_steal_pointer (&y);
}

SdclTensor *
sdcl_conv2d_with (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                  gint stride, gint pad, gint pad_end, SdclConvAlgorithm algorithm,
                  GError **error)
{
  return conv2d_full (x, w, bias, stride, pad, pad_end, algorithm, NULL, NULL, error);
}

SdclTensor *
sdcl_conv2d_add (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias, gint stride,
                 gint pad, SdclConvAlgorithm algorithm, const SdclTensor *add, GError **error)
{
  return conv2d_full (x, w, bias, stride, pad, pad, algorithm, add, NULL, error);
}

gboolean
sdcl_conv2d_add_into (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                      gint stride, gint pad, SdclConvAlgorithm algorithm, SdclTensor *y,
                      GError **error)
{
  g_autoptr (SdclTensor) r = conv2d_full (x, w, bias, stride, pad, pad, algorithm, y, y, error);
  return r != NULL;
}

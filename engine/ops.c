/* ops.c — host side of the elementwise, normalisation and attention ops:
 * shape checks, output allocation and launch geometry. The kernels are in
 * cl/elementwise.cl, cl/norm.cl and cl/attention.cl.
 */
#include "ops-internal.h"

#include <math.h>
#include <string.h>

#define NORM_WG 256      /* must match cl/norm.cl */
#define ATT_MAX_D 160    /* must match cl/attention.cl */

G_DEFINE_QUARK (sdcl-ops-error-quark, sdcl_ops_error)

/* ---- helpers ----------------------------------------------------------------- */

static inline glong
elem_stride (const SdclTensor *t, int i)
{
  return t->ne[i] == 1 ? 0 : (glong) (t->nb[i] / sdcl_dtype_size (t->dtype));
}

static gboolean
require_f32 (const SdclTensor *t, const gchar *op, GError **error)
{
  if (t->dtype == SDCL_DTYPE_F32)
    return TRUE;
  g_autofree gchar *d = sdcl_tensor_describe (t);
  g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_DTYPE, "%s takes f32 tensors, got %s", op, d);
  return FALSE;
}

gpointer
sdcl_ops_shape_error (GError **error, const gchar *op, const gchar *what, const SdclTensor *a,
                      const SdclTensor *b)
{
  g_autofree gchar *da = sdcl_tensor_describe (a);
  g_autofree gchar *db = b ? sdcl_tensor_describe (b) : NULL;
  g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE, "%s: %s (%s%s%s)", op, what, da,
               db ? " and " : "", db ? db : "");
  return NULL;
}

/* x itself (a new reference) when it is contiguous f32, else a copy. */
static SdclTensor *
dense (const SdclTensor *x, GError **error)
{
  if (x->dtype == SDCL_DTYPE_F32 && sdcl_tensor_is_contiguous (x))
    return sdcl_tensor_view (x, x->ne, x->nb, 0, error);
  return sdcl_contiguous (x, error);
}

/* Launches a kernel over a (n0, n1, n2) grid of work-items that check
 * their own bounds; the grid is rounded up to whole work-groups. */
static gboolean
launch_grid (SdclEngine *engine, const gchar *name, gsize n0, gsize n1, gsize n2,
             const SdclArg *args, guint n_args, GError **error)
{
  gsize local[3] = { 1, 1, 1 };
  local[0] = n0 >= 64 ? 64 : n0 >= 16 ? 16 : n0 >= 4 ? 4 : 1;
  if (local[0] < 16 && n1 >= 16)
    local[1] = 16 / local[0];
  const gsize global[3] = { sdcl_round_up (n0, local[0]), sdcl_round_up (n1, local[1]), n2 };
  return sdcl_launch (engine, name, 3, global, local, args, n_args, error);
}

#define LAUNCH_GRID(engine, name, n0, n1, n2, error, ...)                       \
  launch_grid ((engine), (name), (n0), (n1), (n2), (const SdclArg[]) { __VA_ARGS__ }, \
               sizeof ((const SdclArg[]) { __VA_ARGS__ }) / sizeof (SdclArg), (error))

static gboolean
launch_linear (SdclEngine *engine, const gchar *name, gsize n, const SdclArg *args,
               guint n_args, GError **error)
{
  const gsize local = 256, global = sdcl_round_up (n, local);
  return sdcl_launch (engine, name, 1, &global, &local, args, n_args, error);
}

#define LAUNCH_LINEAR(engine, name, n, error, ...)                              \
  launch_linear ((engine), (name), (n), (const SdclArg[]) { __VA_ARGS__ },     \
                 sizeof ((const SdclArg[]) { __VA_ARGS__ }) / sizeof (SdclArg), (error))

/* Whether dimensions 0 .. last of t are laid out one after the other
 * (each dimension's stride the extent of those before it). */
static gboolean
dims_dense (const SdclTensor *t, int last)
{
  gsize nb = sdcl_dtype_size (t->dtype);
  for (int i = 0; i <= last; i++)
    {
      if (t->ne[i] > 1 && t->nb[i] != nb)
        return FALSE;
      nb *= (gsize) t->ne[i];
    }
  return TRUE;
}

/* Whether src -> dst (f32, same shape, dst contiguous) runs as the blocked
 * transpose: src's dimension 1 contiguous, both of the first two at least
 * 16, on CPUs (GPUs keep copy_f32, whose neighbouring work-items already
 * write neighbouring elements). SDCL_TRANSPOSE=0 turns it off
 * (comparisons). */
static gboolean
transposes (const SdclTensor *src, const SdclTensor *dst)
{
  return !sdcl_engine_device (src->engine)->is_gpu && src->dtype == SDCL_DTYPE_F32
         && elem_stride (src, 1) == 1 && src->ne[0] >= 16 && src->ne[1] >= 16
         && sdcl_tensor_is_contiguous (dst) && g_strcmp0 (g_getenv ("SDCL_TRANSPOSE"), "0") != 0;
}

/* dst = src (+ add): the blocked transpose (see transposes(); add NULL or
 * contiguous f32 of dst's shape). */
static gboolean
transpose_into (const SdclTensor *src, const SdclTensor *add, SdclTensor *dst, GError **error)
{
  const gsize local[3] = { 4, 1, 1 };
  const gsize global[3] = { sdcl_round_up ((src->ne[1] + 15) / 16, 4), (src->ne[0] + 15) / 16,
                            src->ne[2] * src->ne[3] };
  const SdclArg args[] = {
    SDCL_ARG_MEM (src->mem), SDCL_ARG_ULONG (sdcl_elem_off (src)),
    SDCL_ARG_LONG (elem_stride (src, 0)), SDCL_ARG_LONG (elem_stride (src, 2)),
    SDCL_ARG_LONG (elem_stride (src, 3)), SDCL_ARG_MEM (dst->mem),
    SDCL_ARG_ULONG (sdcl_elem_off (dst)), SDCL_ARG_INT (src->ne[0]),
    SDCL_ARG_INT (src->ne[1]), SDCL_ARG_INT (src->ne[2]),
    SDCL_ARG_MEM (add ? add->mem : dst->mem), SDCL_ARG_ULONG (add ? sdcl_elem_off (add) : 0),
  };
  return sdcl_launch (src->engine, add ? "transpose_add_f32" : "transpose_f32", 3, global, local,
                      args, G_N_ELEMENTS (args) - (add ? 0 : 2), error);
}

/* Copies any view of src into dst (f32, any strides, same shape): runs of
 * whole planes (or images) where both sides lay dimensions 0 and 1 (and
 * 2) out densely, as the parts of a concatenation, by copy_runs_f32; the
 * blocked transpose where transposes(); else element by element. */
static gboolean
copy_into (const SdclTensor *src, SdclTensor *dst, GError **error)
{
  if (transposes (src, dst))
    return transpose_into (src, NULL, dst, error);
  if (src->dtype == SDCL_DTYPE_F32 && dims_dense (src, 1) && dims_dense (dst, 1)
      && g_strcmp0 (g_getenv ("SDCL_COPY_RUNS"), "0") != 0)
    {
      /* one run per image where dimension 2 follows on both sides */
      const gboolean images = dims_dense (src, 2) && dims_dense (dst, 2);
      const gint64 run = src->ne[0] * src->ne[1] * (images ? src->ne[2] : 1);
      const gsize local[3] = { MIN (64, (gsize) (run + 15) / 16), 1, 1 };
      const gsize global[3] = { sdcl_round_up ((run + 15) / 16, local[0]),
                                images ? 1 : src->ne[2], src->ne[3] };
      return SDCL_LAUNCH (src->engine, "copy_runs_f32", 3, global, local, error,
                          SDCL_ARG_MEM (src->mem), SDCL_ARG_ULONG (sdcl_elem_off (src)),
                          SDCL_ARG_LONG (elem_stride (src, 2)), SDCL_ARG_LONG (elem_stride (src, 3)),
                          SDCL_ARG_MEM (dst->mem), SDCL_ARG_ULONG (sdcl_elem_off (dst)),
                          SDCL_ARG_LONG (elem_stride (dst, 2)), SDCL_ARG_LONG (elem_stride (dst, 3)),
                          SDCL_ARG_INT (run));
    }
  return LAUNCH_GRID (src->engine, src->dtype == SDCL_DTYPE_F16 ? "copy_f16" : "copy_f32",
                      src->ne[0], src->ne[1], src->ne[2] * src->ne[3], error,
                      SDCL_ARG_MEM (src->mem), SDCL_ARG_ULONG (sdcl_elem_off (src)),
                      SDCL_ARG_LONG (elem_stride (src, 0)), SDCL_ARG_LONG (elem_stride (src, 1)),
                      SDCL_ARG_LONG (elem_stride (src, 2)), SDCL_ARG_LONG (elem_stride (src, 3)),
                      SDCL_ARG_MEM (dst->mem), SDCL_ARG_ULONG (sdcl_elem_off (dst)),
                      SDCL_ARG_LONG (elem_stride (dst, 0)), SDCL_ARG_LONG (elem_stride (dst, 1)),
                      SDCL_ARG_LONG (elem_stride (dst, 2)), SDCL_ARG_LONG (elem_stride (dst, 3)),
                      SDCL_ARG_INT (src->ne[0]), SDCL_ARG_INT (src->ne[1]),
                      SDCL_ARG_INT (src->ne[2]));
}

/* A new f32 tensor of the given shape. */
static SdclTensor *
new_f32 (SdclEngine *engine, const gint64 ne[4], GError **error)
{
  return sdcl_tensor_new (engine, SDCL_DTYPE_F32, 4, ne, error);
}

/* ---- layout ------------------------------------------------------------------ */

SdclTensor *
sdcl_contiguous (const SdclTensor *x, GError **error)
{
  g_autoptr (SdclTensor) y = new_f32 (x->engine, x->ne, error);
  if (!y || !copy_into (x, y, error))
    return NULL;
  return g_steal_pointer (&y);
}

gboolean
sdcl_copy (const SdclTensor *src, SdclTensor *dst, GError **error)
{
  if (!sdcl_tensor_same_shape (src, dst))
    {
      sdcl_ops_shape_error (error, "copy", "source and destination differ in shape", src, dst);
      return FALSE;
    }
  if (!require_f32 (dst, "copy", error))
    return FALSE;
  return copy_into (src, dst, error);
}

SdclTensor *
sdcl_embedding (const SdclTensor *table, const gint32 *ids, gint n, GError **error)
{
  const gint64 W = table->ne[0], V = table->ne[1];
  if (table->ne[2] != 1 || table->ne[3] != 1 || !sdcl_tensor_is_contiguous (table) || n < 1)
    return sdcl_ops_shape_error (error, "embedding", "the table must be a contiguous [W, V] matrix "
                                 "and at least one id given", table, NULL);
  /* ids travel as floats: exact for any vocabulary below 2^24 */
  g_autofree gfloat *fids = g_new (gfloat, n);
  for (gint i = 0; i < n; i++)
    {
      if (ids[i] < 0 || ids[i] >= V || ids[i] >= (1 << 24))
        {
          g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                       "embedding: id %d at position %d is outside the table's %" G_GINT64_FORMAT
                       " rows", ids[i], i, V);
          return NULL;
        }
      fids[i] = (gfloat) ids[i];
    }
  g_autoptr (SdclTensor) t = sdcl_tensor_new_4d (table->engine, SDCL_DTYPE_F32, n, 1, 1, 1, error);
  if (!t || !sdcl_tensor_write_f32 (t, fids, error))
    return NULL;
  const gint64 ne[4] = { W, n, 1, 1 };
  g_autoptr (SdclTensor) y = new_f32 (table->engine, ne, error);
  if (!y || !LAUNCH_GRID (table->engine, table->dtype == SDCL_DTYPE_F16 ? "embedding_f16"
                                                                        : "embedding_f32",
                          W, n, 1, error,
                          SDCL_ARG_MEM (table->mem), SDCL_ARG_ULONG (sdcl_elem_off (table)),
                          SDCL_ARG_MEM (t->mem), SDCL_ARG_MEM (y->mem),
                          SDCL_ARG_INT (W), SDCL_ARG_INT (n)))
    return NULL;
  return g_steal_pointer (&y);
}

SdclTensor *
sdcl_permute (const SdclTensor *x, const gint perm[4], GError **error)
{
  gint64 ne[4];
  gsize nb[4];
  guint seen = 0;
  for (int i = 0; i < 4; i++)
    {
      if (perm[i] < 0 || perm[i] > 3 || (seen & (1u << perm[i])))
        {
          g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                       "permute: {%d, %d, %d, %d} is not a permutation of 0..3",
                       perm[0], perm[1], perm[2], perm[3]);
          return NULL;
        }
      seen |= 1u << perm[i];
      ne[i] = x->ne[perm[i]];
      nb[i] = x->nb[perm[i]];
    }
  return sdcl_tensor_view (x, ne, nb, 0, error);
}

/* The parts one after the other along dim into a new tensor (their
 * shapes checked by the callers). */
static SdclTensor *
join (const SdclTensor *const *parts, gint n, gint dim, GError **error)
{
  gint64 ne[4];
  memcpy (ne, parts[0]->ne, sizeof ne);
  for (gint i = 1; i < n; i++)
    ne[dim] += parts[i]->ne[dim];
  g_autoptr (SdclTensor) y = new_f32 (parts[0]->engine, ne, error);
  if (!y)
    return NULL;
  gsize off = 0;
  for (gint i = 0; i < n; i++)
    {
      g_autoptr (SdclTensor) part = sdcl_tensor_view (y, parts[i]->ne, y->nb, off, error);
      if (!part || !copy_into (parts[i], part, error))
        return NULL;
      off += parts[i]->ne[dim] * y->nb[dim];
    }
  return g_steal_pointer (&y);
}

static gboolean
check_dim (gint dim, const gchar *op, GError **error)
{
  if (dim >= 0 && dim <= 3)
    return TRUE;
  g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
               "%s: dimension %d is not 0..3", op, dim);
  return FALSE;
}

SdclTensor *
sdcl_concat (const SdclTensor *a, const SdclTensor *b, gint dim, GError **error)
{
  if (!check_dim (dim, "concat", error))
    return NULL;
  for (int i = 0; i < 4; i++)
    if (i != dim && a->ne[i] != b->ne[i])
      return sdcl_ops_shape_error (error, "concat", "shapes differ outside the joined dimension", a, b);
  const SdclTensor *parts[2] = { a, b };
  return join (parts, 2, dim, error);
}

SdclTensor *
sdcl_repeat (const SdclTensor *x, gint dim, gint64 copies, GError **error)
{
  if (!check_dim (dim, "repeat", error))
    return NULL;
  if (copies < 1 || copies > 64)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "repeat: %" G_GINT64_FORMAT " copies, not 1..64", copies);
      return NULL;
    }
  const SdclTensor *parts[64];
  for (gint64 i = 0; i < copies; i++)
    parts[i] = x;
  return join (parts, (gint) copies, dim, error);
}

/* ---- elementwise ----------------------------------------------------------------- */

SdclTensor *
sdcl_unary (const SdclTensor *x, SdclUnary op, GError **error)
{
  static const gchar *kernels[] = { "silu_f32", "gelu_f32", "quick_gelu_f32" };
  g_autoptr (SdclTensor) xd = dense (x, error);
  g_autoptr (SdclTensor) y = xd ? new_f32 (x->engine, x->ne, error) : NULL;
  gint64 n = sdcl_tensor_numel (x);
  if (!y || !LAUNCH_LINEAR (x->engine, kernels[op], n, error,
                            SDCL_ARG_MEM (xd->mem), SDCL_ARG_ULONG (sdcl_elem_off (xd)),
                            SDCL_ARG_MEM (y->mem), SDCL_ARG_ULONG (0), SDCL_ARG_LONG (n)))
    return NULL;
  return g_steal_pointer (&y);
}

SdclTensor *
sdcl_geglu (const SdclTensor *x, GError **error)
{
  if (x->ne[0] % 2 != 0)
    return sdcl_ops_shape_error (error, "geglu", "the feature dimension must be even", x, NULL);
  g_autoptr (SdclTensor) xd = dense (x, error);
  if (!xd)
    return NULL;
  const gint64 F = x->ne[0] / 2, rows = x->ne[1] * x->ne[2] * x->ne[3];
  const gint64 ne[4] = { F, x->ne[1], x->ne[2], x->ne[3] };
  g_autoptr (SdclTensor) y = new_f32 (x->engine, ne, error);
  if (!y || !LAUNCH_GRID (x->engine, "geglu_f32", (F + 7) / 8, rows, 1, error,
                          SDCL_ARG_MEM (xd->mem), SDCL_ARG_ULONG (sdcl_elem_off (xd)),
                          SDCL_ARG_MEM (y->mem), SDCL_ARG_ULONG (0),
                          SDCL_ARG_INT (F), SDCL_ARG_INT (rows)))
    return NULL;
  return g_steal_pointer (&y);
}

static gboolean
launch_binary (const SdclTensor *a, const SdclTensor *b, SdclBinary op, SdclTensor *y,
               GError **error)
{
  for (int i = 0; i < 4; i++)
    if (b->ne[i] != 1 && b->ne[i] != a->ne[i])
      {
        sdcl_ops_shape_error (error, op == SDCL_BINARY_ADD ? "add" : "mul",
                              "the second operand does not broadcast to the first", a, b);
        return FALSE;
      }
  if (!require_f32 (b, "add/mul", error))
    return FALSE;
  /* a dense sum with a transposed view of the same shape (tokens added to
     an image): the blocked transpose, adding a on the way */
  if (op == SDCL_BINARY_ADD && sdcl_tensor_same_shape (a, b) && transposes (b, y))
    return transpose_into (b, a, y, error);
  return LAUNCH_GRID (a->engine, op == SDCL_BINARY_ADD ? "add_f32" : "mul_f32",
                      a->ne[0], a->ne[1], a->ne[2] * a->ne[3], error,
                      SDCL_ARG_MEM (a->mem), SDCL_ARG_ULONG (sdcl_elem_off (a)),
                      SDCL_ARG_MEM (b->mem), SDCL_ARG_ULONG (sdcl_elem_off (b)),
                      SDCL_ARG_LONG (elem_stride (b, 0)), SDCL_ARG_LONG (elem_stride (b, 1)),
                      SDCL_ARG_LONG (elem_stride (b, 2)), SDCL_ARG_LONG (elem_stride (b, 3)),
                      SDCL_ARG_MEM (y->mem), SDCL_ARG_ULONG (sdcl_elem_off (y)),
                      SDCL_ARG_INT (a->ne[0]), SDCL_ARG_INT (a->ne[1]), SDCL_ARG_INT (a->ne[2]));
}

SdclTensor *
sdcl_binary (const SdclTensor *a, const SdclTensor *b, SdclBinary op, GError **error)
{
  g_autoptr (SdclTensor) ad = dense (a, error);
  g_autoptr (SdclTensor) y = ad ? new_f32 (a->engine, a->ne, error) : NULL;
  if (!y || !launch_binary (ad, b, op, y, error))
    return NULL;
  return g_steal_pointer (&y);
}

gboolean
sdcl_binary_into (SdclTensor *a, const SdclTensor *b, SdclBinary op, GError **error)
{
  if (a->dtype != SDCL_DTYPE_F32 || !sdcl_tensor_is_contiguous (a))
    {
      sdcl_ops_shape_error (error, op == SDCL_BINARY_ADD ? "add" : "mul",
                            "an in-place operand must be contiguous f32", a, NULL);
      return FALSE;
    }
  return launch_binary (a, b, op, a, error);
}

SdclTensor *
sdcl_scale (const SdclTensor *x, gfloat s, gfloat t, GError **error)
{
  g_autoptr (SdclTensor) xd = dense (x, error);
  g_autoptr (SdclTensor) y = xd ? new_f32 (x->engine, x->ne, error) : NULL;
  gint64 n = sdcl_tensor_numel (x);
  if (!y || !LAUNCH_LINEAR (x->engine, "scale_f32", n, error,
                            SDCL_ARG_MEM (xd->mem), SDCL_ARG_ULONG (sdcl_elem_off (xd)),
                            SDCL_ARG_MEM (y->mem), SDCL_ARG_ULONG (0), SDCL_ARG_LONG (n),
                            SDCL_ARG_FLOAT (s), SDCL_ARG_FLOAT (t)))
    return NULL;
  return g_steal_pointer (&y);
}

SdclTensor *
sdcl_upsample_nearest (const SdclTensor *x, gint64 width, gint64 height, GError **error)
{
  if (width < x->ne[0] || height < x->ne[1] || width > 2 * x->ne[0] || height > 2 * x->ne[1])
    {
      g_autofree gchar *d = sdcl_tensor_describe (x);
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "upsample %s to %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                   ": only between 1x and 2x", d, width, height);
      return NULL;
    }
  g_autoptr (SdclTensor) xd = dense (x, error);
  if (!xd)
    return NULL;
  const gint64 ne[4] = { width, height, x->ne[2], x->ne[3] };
  g_autoptr (SdclTensor) y = new_f32 (x->engine, ne, error);
  if (!y || !LAUNCH_GRID (x->engine, "upsample_nearest_f32", ne[0], ne[1], x->ne[2] * x->ne[3],
                          error, SDCL_ARG_MEM (xd->mem), SDCL_ARG_ULONG (sdcl_elem_off (xd)),
                          SDCL_ARG_MEM (y->mem), SDCL_ARG_ULONG (0),
                          SDCL_ARG_INT (x->ne[0]), SDCL_ARG_INT (x->ne[1]),
                          SDCL_ARG_INT (width), SDCL_ARG_INT (height)))
    return NULL;
  return g_steal_pointer (&y);
}

SdclTensor *
sdcl_upsample_nearest2x (const SdclTensor *x, GError **error)
{
  return sdcl_upsample_nearest (x, 2 * x->ne[0], 2 * x->ne[1], error);
}

SdclTensor *
sdcl_timestep_embedding (SdclEngine *engine, const gfloat *t, gint n, gint dim,
                         gboolean flip_sin_to_cos, gfloat downscale_freq_shift, GError **error)
{
  if (n < 1 || dim < 2)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "timestep embedding: need at least one timestep and dim >= 2 (got %d, %d)",
                   n, dim);
      return NULL;
    }
  const gint64 tn[4] = { n, 1, 1, 1 }, ne[4] = { dim, n, 1, 1 };
  g_autoptr (SdclTensor) tt = new_f32 (engine, tn, error);
  g_autoptr (SdclTensor) y = tt ? new_f32 (engine, ne, error) : NULL;
  if (!y || !sdcl_tensor_write (tt, t, error)
      || !LAUNCH_GRID (engine, "timestep_embedding_f32", dim, n, 1, error,
                       SDCL_ARG_MEM (tt->mem), SDCL_ARG_MEM (y->mem), SDCL_ARG_INT (dim),
                       SDCL_ARG_INT (flip_sin_to_cos), SDCL_ARG_FLOAT (downscale_freq_shift)))
    return NULL;
  return g_steal_pointer (&y);
}

/* ---- normalisation --------------------------------------------------------------- */

static gboolean
check_affine (const SdclTensor *x, const SdclTensor *gamma, const SdclTensor *beta, gint64 n,
              const gchar *op, GError **error)
{
  if ((gamma == NULL) != (beta == NULL))
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "%s: give both gamma and beta, or neither", op);
      return FALSE;
    }
  if (gamma && (sdcl_tensor_numel (gamma) != n || sdcl_tensor_numel (beta) != n
                || !sdcl_tensor_is_contiguous (gamma) || !sdcl_tensor_is_contiguous (beta)))
    {
      sdcl_ops_shape_error (error, op, "gamma and beta must be contiguous with one value per "
                            "channel", x, gamma);
      return FALSE;
    }
  return (!gamma || require_f32 (gamma, op, error)) && (!beta || require_f32 (beta, op, error));
}

SdclTensor *
sdcl_group_norm (const SdclTensor *x, const SdclTensor *gamma, const SdclTensor *beta,
                 gint groups, gfloat eps, gboolean fuse_silu, GError **error)
{
  const gint64 HW = x->ne[0] * x->ne[1], C = x->ne[2], N = x->ne[3];
  if (groups < 1 || C % groups != 0)
    return sdcl_ops_shape_error (error, "group norm", "the channel count is not a multiple of the groups",
                        x, NULL);
  if (!check_affine (x, gamma, beta, C, "group norm", error))
    return NULL;
  g_autoptr (SdclTensor) xd = dense (x, error);
  if (!xd)
    return NULL;
  const gint64 sn[4] = { 2 * groups * N, 1, 1, 1 };
  g_autoptr (SdclTensor) stats = new_f32 (x->engine, sn, error);
  g_autoptr (SdclTensor) y = stats ? new_f32 (x->engine, x->ne, error) : NULL;
  if (!y)
    return NULL;
  const gboolean gpu = sdcl_engine_device (x->engine)->is_gpu;
  const gsize local[2] = { gpu ? NORM_WG : 1, 1 };
  const gsize global[2] = { gpu ? NORM_WG : groups * N, gpu ? groups * N : 1 };
  if (!SDCL_LAUNCH (x->engine, gpu ? "block_stats_f32" : "block_stats_rows_f32", 2, global,
                    local, error,
                    SDCL_ARG_MEM (xd->mem), SDCL_ARG_ULONG (sdcl_elem_off (xd)),
                    SDCL_ARG_LONG (HW * (C / groups)), SDCL_ARG_FLOAT (eps),
                    SDCL_ARG_MEM (stats->mem), SDCL_ARG_INT (groups * N)))
    return NULL;
  if (!LAUNCH_GRID (x->engine, "group_norm_apply_f32", (HW + 7) / 8, C, N, error,
                    SDCL_ARG_MEM (xd->mem), SDCL_ARG_ULONG (sdcl_elem_off (xd)),
                    SDCL_ARG_MEM (stats->mem),
                    SDCL_ARG_MEM (gamma ? gamma->mem : xd->mem),
                    SDCL_ARG_ULONG (gamma ? sdcl_elem_off (gamma) : 0),
                    SDCL_ARG_MEM (beta ? beta->mem : xd->mem),
                    SDCL_ARG_ULONG (beta ? sdcl_elem_off (beta) : 0),
                    SDCL_ARG_INT (gamma != NULL), SDCL_ARG_INT (fuse_silu),
                    SDCL_ARG_MEM (y->mem), SDCL_ARG_ULONG (0),
                    SDCL_ARG_INT (HW), SDCL_ARG_INT (C), SDCL_ARG_INT (groups)))
    return NULL;
  return g_steal_pointer (&y);
}

SdclTensor *
sdcl_layer_norm (const SdclTensor *x, const SdclTensor *gamma, const SdclTensor *beta,
                 gfloat eps, GError **error)
{
  if (!check_affine (x, gamma, beta, x->ne[0], "layer norm", error))
    return NULL;
  g_autoptr (SdclTensor) xd = dense (x, error);
  g_autoptr (SdclTensor) y = xd ? new_f32 (x->engine, x->ne, error) : NULL;
  if (!y)
    return NULL;
  const gsize rows = x->ne[1] * x->ne[2] * x->ne[3];
  const gboolean gpu = sdcl_engine_device (x->engine)->is_gpu;
  const gsize local[2] = { gpu ? NORM_WG : 4, 1 };
  const gsize global[2] = { gpu ? NORM_WG : sdcl_round_up (rows, local[0]), gpu ? rows : 1 };
  if (!SDCL_LAUNCH (x->engine, gpu ? "layer_norm_f32" : "layer_norm_rows_f32", 2, global, local,
                    error,
                    SDCL_ARG_MEM (xd->mem), SDCL_ARG_ULONG (sdcl_elem_off (xd)),
                    SDCL_ARG_INT (x->ne[0]), SDCL_ARG_FLOAT (eps),
                    SDCL_ARG_MEM (gamma ? gamma->mem : xd->mem),
                    SDCL_ARG_ULONG (gamma ? sdcl_elem_off (gamma) : 0),
                    SDCL_ARG_MEM (beta ? beta->mem : xd->mem),
                    SDCL_ARG_ULONG (beta ? sdcl_elem_off (beta) : 0),
                    SDCL_ARG_INT (gamma != NULL),
                    SDCL_ARG_MEM (y->mem), SDCL_ARG_ULONG (0), SDCL_ARG_INT (rows)))
    return NULL;
  return g_steal_pointer (&y);
}

/* softmax of scale·x over rows into y (dense, x's shape; y may be x) */
static gboolean
softmax_rows (const SdclTensor *x, gfloat scale, SdclTensor *y, GError **error)
{
  if (!(scale > 0.0f))
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "softmax: scale %g is not positive", scale);
      return FALSE;
    }
  const gsize rows = x->ne[1] * x->ne[2] * x->ne[3];
  if (sdcl_engine_device (x->engine)->is_gpu)
    {
      const gsize local[2] = { NORM_WG, 1 }, global[2] = { NORM_WG, rows };
      return SDCL_LAUNCH (x->engine, "softmax_f32", 2, global, local, error,
                          SDCL_ARG_MEM (x->mem), SDCL_ARG_ULONG (sdcl_elem_off (x)),
                          SDCL_ARG_INT (x->ne[0]), SDCL_ARG_MEM (y->mem),
                          SDCL_ARG_ULONG (sdcl_elem_off (y)), SDCL_ARG_FLOAT (scale));
    }
  const gsize local = 4, global = sdcl_round_up (rows, local);
  const gboolean wide = sdcl_engine_gemm_width (x->engine) == 16 && x->ne[0] >= 256;
  return SDCL_LAUNCH (x->engine, wide ? "softmax_rows16_f32" : "softmax_rows_f32", 1, &global,
                      &local, error,
                      SDCL_ARG_MEM (x->mem), SDCL_ARG_ULONG (sdcl_elem_off (x)),
                      SDCL_ARG_INT (x->ne[0]), SDCL_ARG_MEM (y->mem),
                      SDCL_ARG_ULONG (sdcl_elem_off (y)), SDCL_ARG_FLOAT (scale),
                      SDCL_ARG_INT (rows));
}

SdclTensor *
sdcl_softmax_scaled (const SdclTensor *x, gfloat scale, GError **error)
{
  g_autoptr (SdclTensor) xd = dense (x, error);
  g_autoptr (SdclTensor) y = xd ? new_f32 (x->engine, x->ne, error) : NULL;
  if (!y || !softmax_rows (xd, scale, y, error))
    return NULL;
  return g_steal_pointer (&y);
}

SdclTensor *
sdcl_softmax (const SdclTensor *x, GError **error)
{
  return sdcl_softmax_scaled (x, 1.0f, error);
}

/* ---- attention -------------------------------------------------------------------- */

/* Which attention path runs: on GPUs a single kernel (no score matrix
 * in memory): attention_tiled_d<D/4> for the head widths it is compiled
 * for, else blocks of queries through the tiled GEMM and a row softmax
 * (heads of 160 at SD 1.x's 16x16 level, where attention_f32 keeps its
 * query and sum in spilled registers); on CPUs those blocks, which PoCL
 * runs 3-6 times faster than attention_f32 (bench-ops: 4096 tokens,
 * 8 heads x 40: 5.2 s -> 0.85 s), or, where the vectors are 16 wide and
 * heads at most 48 dimensions (SD 1.x's 64x64 level), attention_flash16.
 * SDCL_ATTENTION=kernel (attention_f32), =tiled, =blocks or =flash forces
 * one (tests use it to check each; tiled falls back to attention_f32 and
 * flash to blocks where they do not apply). */
static gboolean use_attention_tiled (SdclEngine *engine, gint64 D, gboolean causal);

static gboolean
use_attention_kernel (SdclEngine *engine, gint64 D)
{
  const gchar *force = g_getenv ("SDCL_ATTENTION");
  if (force && (g_str_equal (force, "kernel") || g_str_equal (force, "tiled")))
    return TRUE;
  if (force && g_str_equal (force, "blocks"))
    return FALSE;
  return use_attention_tiled (engine, D, FALSE);
}

/* Whether the kernel path runs attention_tiled_d<D/4> (cl/attention.cl:
 * keys and values through local memory, for head widths it is compiled
 * for): GPUs, unless SDCL_ATTENTION=kernel asks for attention_f32;
 * SDCL_ATTENTION=tiled forces it on any device (tests). H200, NVIDIA
 * OpenCL, 4096 tokens, 8 heads of 40: attention_f32 12.2 ms. */
static gboolean
use_attention_tiled (SdclEngine *engine, gint64 D, gboolean causal)
{
  const SdclDeviceInfo *dev = sdcl_engine_device (engine);
  if (causal || (D != 32 && D != 40 && D != 64 && D != 80) || dev->max_work_group_size < 64)
    return FALSE;
  const gchar *force = g_getenv ("SDCL_ATTENTION");
  if (force && *force)
    return g_str_equal (force, "tiled");
  return dev->is_gpu;
}

/* attention_flash16 (cl/attention.cl): query rows per work-item, and the
 * widest head it holds in registers */
#define FLASH_TQ    6
#define FLASH_MAX_D 48
/* work-items per group, which walk the keys in step (a barrier per block
 * of keys) and so share them in cache; bench-ops, 4096 tokens, 8 heads x
 * 40, tenth percentile of 128 launches per head: groups of 8 without the
 * barrier 16.1 ms, with it 14.8 ms, groups of 16 14.6 ms */
#define FLASH_GROUP 16

static gboolean
use_flash (SdclEngine *engine, gint64 D)
{
  const gchar *force = g_getenv ("SDCL_ATTENTION");
  if (force && g_str_equal (force, "blocks"))
    return FALSE;
  return !sdcl_engine_device (engine)->is_gpu && sdcl_engine_gemm_width (engine) == 16
         && D <= FLASH_MAX_D;
}

/* Attention through matmul (used for CPUs, and for head dimensions the
 * kernel does not hold in registers): per head and per block of queries,
 * scores = q·kᵀ, softmax of scale·scores, ·v. Blocks are sized so a score
 * block stays within 16 MiB. */
static SdclTensor *
attention_by_matmul (const SdclTensor *q, const SdclTensor *k, const SdclTensor *v, gint heads,
                     GError **error)
{
  const gint64 HD = q->ne[0], Sq = q->ne[1], Skv = k->ne[1], B = q->ne[2], D = HD / heads;
  if (k->ne[0] != HD || v->ne[0] != HD || v->ne[1] != Skv || k->ne[2] != B || v->ne[2] != B
      || q->ne[3] != 1 || k->ne[3] != 1 || v->ne[3] != 1)
    return sdcl_ops_shape_error (error, "attention", "q, k and v do not fit together", q, k);
  const gint64 ne[4] = { HD, Sq, B, 1 };
  g_autoptr (SdclTensor) o = new_f32 (q->engine, ne, error);
  if (!o)
    return NULL;
  const gint64 block = MAX (1, MIN (Sq, (16 << 20) / (gint64) (sizeof (gfloat) * Skv * B)));
  const gfloat scale = 1.0 / sqrt ((double) D);
  /* the fused kernel reads q's rows as f32 with contiguous features */
  const gboolean flash = use_flash (q->engine, D) && q->dtype == SDCL_DTYPE_F32
                         && q->nb[0] == sizeof (gfloat);
  for (gint h = 0; h < heads; h++)
    {
      /* each head's keys (transposed) and values packed once for all blocks */
      const gsize feat = h * D * sizeof (gfloat);
      const gint64 kv_ne[4] = { D, Skv, B, 1 };
      g_autoptr (SdclTensor) kh = sdcl_tensor_view (k, kv_ne, k->nb, feat, error);
      g_autoptr (SdclTensor) vh = kh ? sdcl_tensor_view (v, kv_ne, v->nb, feat, error) : NULL;
      g_autoptr (SdclTensor) kp = vh ? sdcl_matmul_pack (kh, TRUE, error) : NULL;
      g_autoptr (SdclTensor) vp = kp ? sdcl_matmul_pack (vh, FALSE, error) : NULL;
      if (!vp)
        return NULL;
      if (flash)
        {
          const gsize local[3] = { FLASH_GROUP, 1, 1 };
          const gsize global[3] = { sdcl_round_up ((Sq + FLASH_TQ - 1) / FLASH_TQ, local[0]), 1, B };
          if (!SDCL_LAUNCH (q->engine, "attention_flash16", 3, global, local, error,
                            SDCL_ARG_MEM (q->mem), SDCL_ARG_ULONG (sdcl_elem_off (q) + h * D),
                            SDCL_ARG_LONG (q->nb[1] / 4), SDCL_ARG_LONG (q->nb[2] / 4),
                            SDCL_ARG_MEM (kp->mem), SDCL_ARG_ULONG (sdcl_elem_off (kp)),
                            SDCL_ARG_LONG (kp->nb[3] / 4),
                            SDCL_ARG_MEM (vp->mem), SDCL_ARG_ULONG (sdcl_elem_off (vp)),
                            SDCL_ARG_LONG (vp->nb[3] / 4),
                            SDCL_ARG_MEM (o->mem), SDCL_ARG_ULONG (sdcl_elem_off (o) + h * D),
                            SDCL_ARG_LONG (o->nb[1] / 4), SDCL_ARG_LONG (o->nb[2] / 4),
                            SDCL_ARG_INT (Sq), SDCL_ARG_INT (Skv), SDCL_ARG_INT (D),
                            SDCL_ARG_FLOAT (scale * M_LOG2E)))
            return NULL;
          continue;
        }
      for (gint64 r = 0; r < Sq; r += block)
        {
          const gint64 n = MIN (block, Sq - r), q_ne[4] = { D, n, B, 1 }, s_ne[4] = { Skv, n, B, 1 };
          g_autoptr (SdclTensor) qb = sdcl_tensor_view (q, q_ne, q->nb, feat + r * q->nb[1], error);
          g_autoptr (SdclTensor) s = qb ? new_f32 (q->engine, s_ne, error) : NULL;
          if (!s || !sdcl_matmul_packed_into (qb, kp, Skv, s, error))
            return NULL;
          /* the probabilities replace the scores, in cache */
          if (!softmax_rows (s, scale, s, error))
            return NULL;
          g_autoptr (SdclTensor) dst = sdcl_tensor_view (o, q_ne, o->nb, feat + r * o->nb[1],
                                                         error);
          if (!dst || !sdcl_matmul_packed_into (s, vp, D, dst, error))
            return NULL;
        }
    }
  return g_steal_pointer (&o);
}

SdclTensor *
sdcl_attention (const SdclTensor *q, const SdclTensor *k, const SdclTensor *v, gint heads,
                gboolean causal, GError **error)
{
  const gint64 HD = q->ne[0], Sq = q->ne[1], Skv = k->ne[1], B = q->ne[2];
  if (heads < 1 || HD % heads != 0)
    return sdcl_ops_shape_error (error, "attention", "the feature dimension is not a multiple of the heads",
                        q, NULL);
  const gint64 D = HD / heads;
  if (D % 4 != 0 || (causal && D > ATT_MAX_D))
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "attention: head dimension %" G_GINT64_FORMAT " is not supported "
                   "(a multiple of 4, at most %d with a causal mask)", D, ATT_MAX_D);
      return NULL;
    }
  if (!causal && (D > ATT_MAX_D || !use_attention_kernel (q->engine, D)))
    return attention_by_matmul (q, k, v, heads, error);
  if (k->ne[0] != HD || v->ne[0] != HD || v->ne[1] != Skv || k->ne[2] != B || v->ne[2] != B
      || q->ne[3] != 1 || k->ne[3] != 1 || v->ne[3] != 1)
    return sdcl_ops_shape_error (error, "attention", "q, k and v do not fit together", q, k);
  if (causal && Sq != Skv)
    return sdcl_ops_shape_error (error, "attention", "a causal mask needs as many queries as keys", q, k);
  if (!require_f32 (q, "attention", error) || !require_f32 (k, "attention", error)
      || !require_f32 (v, "attention", error))
    return NULL;
  /* the kernel reads rows contiguously; views whose rows are strided
   * (a fused qkv projection) are fine, strided features are not */
  const SdclTensor *in[3] = { q, k, v };
  for (int i = 0; i < 3; i++)
    if (in[i]->nb[0] != sizeof (gfloat))
      return sdcl_ops_shape_error (error, "attention", "features must be contiguous", in[i], NULL);

  const gint64 ne[4] = { HD, Sq, B, 1 };
  g_autoptr (SdclTensor) o = new_f32 (q->engine, ne, error);
  if (!o)
    return NULL;
#define ROWS(t) SDCL_ARG_MEM ((t)->mem), SDCL_ARG_ULONG (sdcl_elem_off (t)), \
                SDCL_ARG_LONG ((t)->nb[1] / 4), SDCL_ARG_LONG ((t)->nb[2] / 4)
  if (use_attention_tiled (q->engine, D, causal))
    {
      g_autofree gchar *name = g_strdup_printf ("attention_tiled_d%d", (gint) (D / 4));
      const gsize t_local[3] = { 64, 1, 1 };
      const gsize t_global[3] = { sdcl_round_up (Sq, 64), heads, B };
      if (!SDCL_LAUNCH (q->engine, name, 3, t_global, t_local, error,
                        ROWS (q), ROWS (k), ROWS (v), ROWS (o),
                        SDCL_ARG_INT (Sq), SDCL_ARG_INT (Skv),
                        SDCL_ARG_FLOAT (1.0 / sqrt ((double) D))))
        return NULL;
      return g_steal_pointer (&o);
    }
  const gsize local[3] = { 16, 1, 1 };
  const gsize global[3] = { sdcl_round_up (Sq, 16), heads, B };
  if (!SDCL_LAUNCH (q->engine, "attention_f32", 3, global, local, error,
                    ROWS (q), ROWS (k), ROWS (v), ROWS (o),
                    SDCL_ARG_INT (Sq), SDCL_ARG_INT (Skv), SDCL_ARG_INT (D),
                    SDCL_ARG_FLOAT (1.0 / sqrt ((double) D)), SDCL_ARG_INT (causal)))
    return NULL;
#undef ROWS
  return g_steal_pointer (&o);
}

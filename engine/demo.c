/* demo.c — `sdcl demo`: a picture made entirely by the engine's kernels,
 * so a newcomer can see the device work before any model is involved.
 * Sinusoidal position embeddings are multiplied into interference fields,
 * mixed by convolutions, group norm + SiLU and pixel self-attention, then
 * upsampled and smoothed to the requested size.
 */
#include <math.h>

#include "ops.h"

/* Deterministic weights in [-scale, scale]. */
static gfloat *
hashed_weights (guint32 seed, gsize n, gfloat scale)
{
  gfloat *w = g_new (gfloat, n);
  for (gsize i = 0; i < n; i++)
    {
      guint32 x = (guint32) i * 0x9e3779b9u + seed * 0x85ebca6bu;
      x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
      w[i] = scale * ((x >> 8) / 8388608.0f - 1.0f);
    }
  return w;
}

/* One 64×64 channel: position embeddings of rows (scaled by fy) against
 * those of columns (scaled by fx). */
static SdclTensor *
field (SdclEngine *engine, gfloat fx, gfloat fy, GError **error)
{
  gfloat tx[64], ty[64];
  for (int i = 0; i < 64; i++)
    {
      tx[i] = i * fx;
      ty[i] = (63 - i) * fy;
    }
  g_autoptr (SdclTensor) ex = sdcl_timestep_embedding (engine, tx, 64, 32, TRUE, 1.0f, error);
  g_autoptr (SdclTensor) ey = ex ? sdcl_timestep_embedding (engine, ty, 64, 32, FALSE, 0.0f, error)
                                 : NULL;
  /* [32, 64] · [32, 64]ᵀ -> [64 (x), 64 (y)] */
  g_autoptr (SdclTensor) f = ey ? sdcl_matmul (ey, ex, TRUE, error) : NULL;
  return f ? sdcl_tensor_reshape (f, 64, 64, 1, 1, error) : NULL;
}

static SdclTensor *
conv (const SdclTensor *x, gint c_out, gint k, guint32 seed, gboolean blur, GError **error)
{
  const gint c_in = x->ne[2];
  g_autofree gfloat *w = hashed_weights (seed, (gsize) c_out * c_in * k * k,
                                         1.5f / sqrtf (c_in * k * k));
  if (blur)   /* a per-channel [1 2 1]ᵀ[1 2 1] / 16 smoothing */
    for (gint o = 0; o < c_out; o++)
      for (gint i = 0; i < c_in; i++)
        for (gint j = 0; j < 9; j++)
          w[((o * c_in + i) * 9) + j] = o == i ? (gfloat) ((j / 3 == 1 ? 2 : 1) * (j % 3 == 1 ? 2 : 1)) / 16.0f : 0.0f;
  g_autoptr (SdclTensor) wt = sdcl_conv2d_weight_new (x->engine, SDCL_DTYPE_F16, w, c_out, c_in, k,
                                                      k, error);
  return wt ? sdcl_conv2d (x, wt, NULL, 1, k / 2, error) : NULL;
}

guint8 *
sdcl_demo_render (SdclEngine *engine, guint size, GError **error)
{
  if (size < 64 || (size & (size - 1)) != 0 || size > 4096)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "demo size must be a power of two from 64 to 4096, not %u", size);
      return NULL;
    }
  g_autoptr (SdclTensor) r = field (engine, 1.0f, 1.3f, error);
  g_autoptr (SdclTensor) g = r ? field (engine, 1.7f, 0.6f, error) : NULL;
  g_autoptr (SdclTensor) b = g ? field (engine, 0.45f, 2.1f, error) : NULL;
  g_autoptr (SdclTensor) rg = b ? sdcl_concat (r, g, 2, error) : NULL;
  g_autoptr (SdclTensor) rgb = rg ? sdcl_concat (rg, b, 2, error) : NULL;   /* [64, 64, 3] */
  g_autoptr (SdclTensor) h = rgb ? conv (rgb, 8, 3, 1, FALSE, error) : NULL;
  g_autoptr (SdclTensor) hn = h ? sdcl_group_norm (h, NULL, NULL, 4, 1e-5f, TRUE, error) : NULL;

  /* pixel self-attention: 4096 tokens of 8 features, 2 heads */
  const gint perm[4] = { 2, 0, 1, 3 };
  g_autoptr (SdclTensor) tv = hn ? sdcl_permute (hn, perm, error) : NULL;        /* [8, 64, 64] */
  g_autoptr (SdclTensor) tc = tv ? sdcl_contiguous (tv, error) : NULL;
  g_autoptr (SdclTensor) tokens = tc ? sdcl_tensor_reshape (tc, 8, 4096, 1, 1, error) : NULL;
  g_autoptr (SdclTensor) att = tokens ? sdcl_attention (tokens, tokens, tokens, 2, FALSE, error)
                                      : NULL;
  g_autoptr (SdclTensor) att3 = att ? sdcl_tensor_reshape (att, 8, 64, 64, 1, error) : NULL;
  const gint back[4] = { 1, 2, 0, 3 };
  g_autoptr (SdclTensor) img_v = att3 ? sdcl_permute (att3, back, error) : NULL;  /* [64, 64, 8] */
  g_autoptr (SdclTensor) mixed = img_v ? sdcl_binary (img_v, hn, SDCL_BINARY_ADD, error) : NULL;
  SdclTensor *x = mixed ? conv (mixed, 3, 1, 2, FALSE, error) : NULL;

  for (guint s = 64; x && s < size; s *= 2)
    {
      g_autoptr (SdclTensor) up = sdcl_upsample_nearest2x (x, error);
      sdcl_tensor_free (x);
      x = up ? conv (up, 3, 3, 0, TRUE, error) : NULL;
    }
  g_autoptr (SdclTensor) out = x;
  g_autoptr (SdclTensor) norm = out ? sdcl_group_norm (out, NULL, NULL, 3, 1e-5f, FALSE, error)
                                    : NULL;
  g_autoptr (SdclTensor) shaded = norm ? sdcl_scale (norm, 0.22f, 0.5f, error) : NULL;
  g_autofree gfloat *planes = shaded ? sdcl_tensor_read_f32 (shaded, error) : NULL;
  if (!planes)
    return NULL;

  const gsize n = (gsize) size * size;
  guint8 *pixels = g_malloc (n * 3);
  for (gsize i = 0; i < n; i++)
    for (int c = 0; c < 3; c++)
      pixels[3 * i + c] = (guint8) lrintf (CLAMP (planes[c * n + i], 0.0f, 1.0f) * 255.0f);
  return pixels;
}

/* ops.h — tensor operations on the device (internal). Models are written in
 * terms of these, never of raw clEnqueue* calls. Each op returns a new
 * contiguous f32 tensor from the engine's pool (or NULL with *error set);
 * inputs may be views unless an op says otherwise.
 *
 * Shapes use tensor.h's order, innermost first: an NCHW image is
 * [W, H, C, N]; a token sequence is [features, tokens, batch].
 */
#pragma once

#include "tensor.h"

/* ---- matrix products and convolution (ops-gemm.c, cl/gemm.cl, cl/conv.cl) */

/* Uploads a linear layer's weight given as PyTorch stores it, [out][in]
 * row-major floats, in the layout the GEMM kernel reads, with storage dtype
 * f16 or f32. The result is only meant for sdcl_linear(). */
SdclTensor *sdcl_linear_weight_new (SdclEngine *engine, SdclDtype storage, const gfloat *w,
                                    gint64 out_features, gint64 in_features, GError **error);

/* A weight's elements as a model file holds them: `rows` rows of
 * [in][taps] elements of `type`, little-endian, aligned to the element
 * size. A weight may come in parts (q, k and v fused into one product),
 * stacked in the order given. */
typedef enum
{
  SDCL_WEIGHT_F32,
  SDCL_WEIGHT_F16,
  SDCL_WEIGHT_BF16,
} SdclWeightType;

typedef struct
{
  gconstpointer  data;
  SdclWeightType type;
  gint64         rows;
} SdclWeightPart;

/* sdcl_linear_weight_new and sdcl_conv2d_weight_new (taps kh·kw) straight
 * from a file's elements, converted and packed in one pass by up to four
 * threads into the device buffer, without host copies of the weight. */
SdclTensor *sdcl_linear_weight_new_parts (SdclEngine *engine, SdclDtype storage,
                                          const SdclWeightPart *parts, guint n_parts,
                                          gint64 in_features, GError **error);
SdclTensor *sdcl_conv2d_weight_new_parts (SdclEngine *engine, SdclDtype storage,
                                          const SdclWeightPart *part, gint64 out_channels,
                                          gint64 in_channels, gint64 kh, gint64 kw,
                                          GError **error);

/* y = x · Wᵀ + bias: x [in, rows...] f32, w from sdcl_linear_weight_new,
 * bias [out] f32 or NULL; y [out, rows...]. */
SdclTensor *sdcl_linear (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                         GError **error);

/* y += x · Wᵀ + bias in the product's epilogue (a residual stream updated
 * in place, without a separate add): y contiguous f32 of sdcl_linear's
 * output shape. */
gboolean    sdcl_linear_accumulate (const SdclTensor *x, const SdclTensor *w,
                                    const SdclTensor *bias, SdclTensor *y, GError **error);

/* Batched product of activations: a [K, M, B], b [N, K, B] (or [K, N, B]
 * when transpose_b), both f32; b's batch may be 1 (shared). Result [N, M, B]. */
SdclTensor *sdcl_matmul (const SdclTensor *a, const SdclTensor *b, gboolean transpose_b,
                         GError **error);

/* Uploads a conv2d weight given as PyTorch stores it, [out][in][kh][kw]. */
SdclTensor *sdcl_conv2d_weight_new (SdclEngine *engine, SdclDtype storage, const gfloat *w,
                                    gint64 out_channels, gint64 in_channels, gint64 kh,
                                    gint64 kw, GError **error);

/* x [W, H, Cin, N] f32, w from sdcl_conv2d_weight_new (1×1 or 3×3),
 * bias [Cout] or NULL; zero padding `pad`, stride 1 or 2. */
SdclTensor *sdcl_conv2d (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                         gint stride, gint pad, GError **error);
/* The same with `pad` zeros before (left, top) and `pad_end` after (right,
 * bottom): the VAE encoder's downsampler pads (0, 1, 0, 1). */
SdclTensor *sdcl_conv2d_padded (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                                gint stride, gint pad, gint pad_end, GError **error);

/* How sdcl_conv2d computes: AUTO picks Winograd F(4x4, 3x3) for stride-1
 * 3x3 layers where it pays (see ops-gemm.c) and the direct implicit GEMM
 * elsewhere; the environment variable SDCL_CONV=direct turns Winograd off.
 * WINOGRAD on a layer it cannot do (1x1, stride 2) computes directly. */
typedef enum
{
  SDCL_CONV_AUTO,
  SDCL_CONV_DIRECT,
  SDCL_CONV_WINOGRAD,
} SdclConvAlgorithm;

SdclTensor *sdcl_conv2d_with (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                              gint stride, gint pad, gint pad_end, SdclConvAlgorithm algorithm,
                              GError **error);
/* conv(x) + bias + add, the sum formed where the output is written: add is
 * contiguous f32, either [Wo, Ho, Cout, N] (a residual) or [1, 1, Cout, N]
 * (a value per channel and image: a resnet's time embedding). */
SdclTensor *sdcl_conv2d_add (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                             gint stride, gint pad, SdclConvAlgorithm algorithm,
                             const SdclTensor *add, GError **error);
/* y += conv(x) + bias in place: y contiguous f32 [Wo, Ho, Cout, N], a
 * tensor its caller owns (a resnet's shortcut, which becomes its output). */
gboolean sdcl_conv2d_add_into (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                               gint stride, gint pad, SdclConvAlgorithm algorithm, SdclTensor *y,
                               GError **error);

/* ---- normalisation (ops.c, cl/norm.cl) -------------------------------------- */

/* x [W, H, C, N]; `groups` divides C; gamma, beta [C] or NULL. */
SdclTensor *sdcl_group_norm (const SdclTensor *x, const SdclTensor *gamma, const SdclTensor *beta,
                             gint groups, gfloat eps, gboolean fuse_silu, GError **error);
/* Normalises over ne[0]; gamma, beta [ne0] or NULL. */
SdclTensor *sdcl_layer_norm (const SdclTensor *x, const SdclTensor *gamma, const SdclTensor *beta,
                             gfloat eps, GError **error);
/* Softmax over ne[0]; a row of all -inf gives zeros. */
SdclTensor *sdcl_softmax (const SdclTensor *x, GError **error);
/* Softmax of scale·x (scale > 0), the scale folded into the exponent. */
SdclTensor *sdcl_softmax_scaled (const SdclTensor *x, gfloat scale, GError **error);

/* ---- attention (ops.c, cl/attention.cl) -------------------------------------- */

/* Multi-head scaled dot-product attention. q [H·D, Sq, B], k and v
 * [H·D, Skv, B]; head h uses features h·D .. h·D+D-1; scale 1/√D. Causal:
 * query i sees keys 0..i. Never stores the score matrix for head
 * dimensions up to 160; wider heads (the VAE's single 512-wide head) go
 * through matmul and softmax over blocks of queries. */
SdclTensor *sdcl_attention (const SdclTensor *q, const SdclTensor *k, const SdclTensor *v,
                            gint heads, gboolean causal, GError **error);

/* ---- elementwise (ops.c, cl/elementwise.cl) ---------------------------------- */

typedef enum
{
  SDCL_UNARY_SILU,
  SDCL_UNARY_GELU,         /* exact, with erf */
  SDCL_UNARY_QUICK_GELU,   /* x·σ(1.702x), CLIP's */
} SdclUnary;

SdclTensor *sdcl_unary (const SdclTensor *x, SdclUnary op, GError **error);
/* x [2F, ...] -> hidden·gelu(gate) [F, ...], hidden the first half of ne0. */
SdclTensor *sdcl_geglu (const SdclTensor *x, GError **error);
/* sdcl_geglu (sdcl_linear (x, w, bias)), formed where the product writes
 * its output when the device's kernels can (the hidden and gate halves of
 * w's output features in the same tile), so the 2F-wide product is never
 * stored. */
SdclTensor *sdcl_linear_geglu (const SdclTensor *x, const SdclTensor *w, const SdclTensor *bias,
                               GError **error);

typedef enum
{
  SDCL_BINARY_ADD,
  SDCL_BINARY_MUL,
} SdclBinary;

/* a op b, where each dimension of b is 1 or equal to a's (broadcast). */
SdclTensor *sdcl_binary (const SdclTensor *a, const SdclTensor *b, SdclBinary op, GError **error);
/* a op= b in place (each element reads and writes only itself): a must be
 * contiguous f32, a tensor its caller owns and no longer needs as it was
 * (the residual sums of a resnet block, which would otherwise hold a third
 * full-size tensor at the block's end). */
gboolean sdcl_binary_into (SdclTensor *a, const SdclTensor *b, SdclBinary op, GError **error);
/* x · s + t */
SdclTensor *sdcl_scale (const SdclTensor *x, gfloat s, gfloat t, GError **error);
/* Nearest-neighbour 2× upsampling of [W, H, ...]. */
SdclTensor *sdcl_upsample_nearest2x (const SdclTensor *x, GError **error);
/* Nearest resize to width x height (1x to 2x each way), picking sources as
 * torch's interpolate(size=..., mode="nearest") does. */
SdclTensor *sdcl_upsample_nearest (const SdclTensor *x, gint64 width, gint64 height,
                                   GError **error);
/* Concatenation along dimension `dim` (0..3); other dimensions equal. */
SdclTensor *sdcl_concat (const SdclTensor *a, const SdclTensor *b, gint dim, GError **error);
/* x repeated `copies` times along dimension dim (one copy after the
 * other: a batch [x0, x1] twice is [x0, x1, x0, x1]). */
SdclTensor *sdcl_repeat (const SdclTensor *x, gint dim, gint64 copies, GError **error);
/* A contiguous copy of any view (also converts f16 to f32). */
SdclTensor *sdcl_contiguous (const SdclTensor *x, GError **error);
/* Copies src (any view, f32 or f16) into dst (an f32 view of the same shape). */
gboolean sdcl_copy (const SdclTensor *src, SdclTensor *dst, GError **error);
/* Rows of an embedding table: table [W, V] (f32 or f16), ids [n] host
 * values in 0..V-1 -> [W, n]. Out-of-range ids are an ARGUMENT error. */
SdclTensor *sdcl_embedding (const SdclTensor *table, const gint32 *ids, gint n, GError **error);
/* A view with dimensions reordered: result dim i is x's dim perm[i]. */
SdclTensor *sdcl_permute (const SdclTensor *x, const gint perm[4], GError **error);

/* Sinusoidal timestep embedding as diffusers' get_timestep_embedding():
 * t [n] host values -> [dim, n]. */
SdclTensor *sdcl_timestep_embedding (SdclEngine *engine, const gfloat *t, gint n, gint dim,
                                     gboolean flip_sin_to_cos, gfloat downscale_freq_shift,
                                     GError **error);

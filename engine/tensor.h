/* tensor.h — device tensors (internal): a small descriptor over a device
 * buffer, views that cost nothing, and the activation pool that reuses
 * buffers so peak memory is weights plus the largest live set.
 *
 * Dimension order follows ggml: ne[0] is the innermost, contiguous one.
 * An NCHW image is ne = { W, H, C, N }; a row-major [M, K] matrix is
 * ne = { K, M, 1, 1 }. Unused outer dimensions are 1.
 */
#pragma once

#include "runtime.h"

typedef enum
{
  SDCL_DTYPE_F32,
  SDCL_DTYPE_F16,
} SdclDtype;

typedef struct _SdclStorage SdclStorage;   /* refcounted device buffer */

typedef struct
{
  SdclDtype    dtype;
  gint64       ne[4];      /* elements per dimension, ne[0] innermost */
  gsize        nb[4];      /* byte strides */
  cl_mem       mem;
  gsize        offset;     /* byte offset of element 0 in mem */
  SdclStorage *storage;
  SdclEngine  *engine;
  gchar        name[48];
} SdclTensor;

gsize sdcl_dtype_size (SdclDtype dtype);
const gchar *sdcl_dtype_name (SdclDtype dtype);

/* A new contiguous tensor from the engine's pool; contents undefined.
 * Dimensions after the last given one are 1. Sizes are overflow-checked. */
SdclTensor *sdcl_tensor_new (SdclEngine *engine, SdclDtype dtype, guint n_dims,
                             const gint64 *ne, GError **error);
SdclTensor *sdcl_tensor_new_4d (SdclEngine *engine, SdclDtype dtype, gint64 ne0,
                                gint64 ne1, gint64 ne2, gint64 ne3, GError **error);
/* Same shape and dtype as `like`, contiguous. */
SdclTensor *sdcl_tensor_new_like (const SdclTensor *like, GError **error);

/* A view sharing t's storage: shape ne, strides nb (NULL: contiguous for
 * ne), starting `offset` bytes after t's element 0. Bounds are checked. */
SdclTensor *sdcl_tensor_view (const SdclTensor *t, const gint64 ne[4], const gsize *nb,
                              gsize offset, GError **error);
/* Same data, another shape with the same element count (contiguous only). */
SdclTensor *sdcl_tensor_reshape (const SdclTensor *t, gint64 ne0, gint64 ne1,
                                 gint64 ne2, gint64 ne3, GError **error);

void sdcl_tensor_free (SdclTensor *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclTensor, sdcl_tensor_free)

void sdcl_tensor_set_name (SdclTensor *t, const gchar *fmt, ...) G_GNUC_PRINTF (2, 3);

gint64   sdcl_tensor_numel (const SdclTensor *t);
gsize    sdcl_tensor_bytes (const SdclTensor *t);    /* numel * dtype size */
gboolean sdcl_tensor_is_contiguous (const SdclTensor *t);
gboolean sdcl_tensor_same_shape (const SdclTensor *a, const SdclTensor *b);
/* "[W x H x C x N] f32" for messages; the string is owned by the caller. */
gchar   *sdcl_tensor_describe (const SdclTensor *t);

/* Host <-> device for contiguous tensors. `data` holds numel elements of
 * the tensor's dtype (f16 as raw uint16). */
gboolean sdcl_tensor_write (SdclTensor *t, gconstpointer data, GError **error);
gboolean sdcl_tensor_read (const SdclTensor *t, gpointer data, GError **error);
/* The contiguous tensor's bytes mapped for writing (their old contents
 * discarded), or NULL with an error; sdcl_tensor_unmap hands them back to
 * the device. On a CPU device the map is the buffer itself, no copy. */
gpointer sdcl_tensor_map_write (SdclTensor *t, GError **error);
gboolean sdcl_tensor_unmap (SdclTensor *t, gpointer mapped, GError **error);
/* Float convenience: converts to/from f16 as needed. */
gboolean sdcl_tensor_write_f32 (SdclTensor *t, const gfloat *data, GError **error);
gfloat  *sdcl_tensor_read_f32 (const SdclTensor *t, GError **error);

/* Host conversions; f32 -> f16 rounds to nearest even, like numpy and torch. */
guint16 sdcl_f32_to_f16 (gfloat f);
gfloat  sdcl_f16_to_f32 (guint16 h);
gfloat  sdcl_bf16_to_f32 (guint16 b);
/* The same over arrays, vectorised where the CPU can (same results). */
void    sdcl_f32_to_f16_n (const gfloat *f, guint16 *h, gsize n);
void    sdcl_f16_to_f32_n (const guint16 *h, gfloat *f, gsize n);

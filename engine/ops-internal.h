/* ops-internal.h — helpers shared by the host side of the ops (ops.c,
 * ops-gemm.c): element offsets and the shape error message.
 */
#pragma once

#include "ops.h"

/* A tensor's byte offset in elements, as kernels take it. */
static inline gulong
sdcl_elem_off (const SdclTensor *t)
{
  return t->offset / sdcl_dtype_size (t->dtype);
}

/* Sets an SDCL_OPS_ERROR_SHAPE "op: what (a and b)" and returns NULL. */
gpointer sdcl_ops_shape_error (GError **error, const gchar *op, const gchar *what,
                               const SdclTensor *a, const SdclTensor *b);

/* sdcl_matmul in two halves, for a b used by several products (attention
 * packs each head's keys and values once for all its query blocks):
 * sdcl_matmul_pack copies b (as in sdcl_matmul, f32 or f16) into f32
 * panels of 16 columns, ne { 16, K, ceil(N/16), batches }, zero-padded;
 * sdcl_matmul_packed_into writes a · b into c, an f32 view [N, M, B] with
 * unit-stride rows (a strided part of a larger tensor is fine). */
SdclTensor *sdcl_matmul_pack (const SdclTensor *b, gboolean transpose_b, GError **error);
gboolean sdcl_matmul_packed_into (const SdclTensor *a, const SdclTensor *packed, gint64 N,
                                  SdclTensor *c, GError **error);

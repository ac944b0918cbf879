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

/* runtime.h — the engine's OpenCL layer (internal): context and queue,
 * programs compiled once and cached on disk, and the one launch helper
 * through which every kernel passes (with optional profiling).
 */
#pragma once

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "sdcl.h"

/* Turns a cl_int into its symbolic name ("CL_OUT_OF_RESOURCES"). */
const gchar *sdcl_cl_error_name (cl_int code);

/* Sets *error to "<call> failed: <name> (<code>)" and returns FALSE when
 * `code` is not CL_SUCCESS; memory errors get SDCL_RUNTIME_ERROR_OUT_OF_MEMORY. */
gboolean sdcl_cl_check (cl_int code, const gchar *call, GError **error);

/* One kernel argument: a pointer to the value and its size, or a local
 * memory size with value NULL. Build them with the SDCL_ARG_* macros. */
typedef struct
{
  gsize         size;
  gconstpointer value;
} SdclArg;

#define SDCL_ARG_MEM(m)   { sizeof (cl_mem),   &(cl_mem)   { (m) } }
#define SDCL_ARG_INT(v)   { sizeof (cl_int),   &(cl_int)   { (cl_int) (v) } }
#define SDCL_ARG_UINT(v)  { sizeof (cl_uint),  &(cl_uint)  { (cl_uint) (v) } }
#define SDCL_ARG_LONG(v)  { sizeof (cl_long),  &(cl_long)  { (cl_long) (v) } }
#define SDCL_ARG_ULONG(v) { sizeof (cl_ulong), &(cl_ulong) { (cl_ulong) (v) } }
#define SDCL_ARG_FLOAT(v) { sizeof (cl_float), &(cl_float) { (cl_float) (v) } }
#define SDCL_ARG_LOCAL(n) { (n), NULL }

/* Launches kernel `name` (looked up in the cl/ file that defines it,
 * building that program on first use). `local` may be NULL. Global sizes
 * are rounded up to a multiple of `local` by the caller, not here. */
gboolean sdcl_launch (SdclEngine    *engine,
                      const gchar   *name,
                      guint          dims,
                      const gsize   *global,
                      const gsize   *local,
                      const SdclArg *args,
                      guint          n_args,
                      GError       **error);

#define SDCL_LAUNCH(engine, name, dims, global, local, error, ...)          \
  sdcl_launch ((engine), (name), (dims), (global), (local),                 \
               (const SdclArg[]) { __VA_ARGS__ },                           \
               sizeof ((const SdclArg[]) { __VA_ARGS__ }) / sizeof (SdclArg), \
               (error))

cl_context       sdcl_engine_context (SdclEngine *engine);
/* The vector width cl/gemm.cl was built for (8 or 16): a GEMM work-item
 * covers twice as many columns. */
guint            sdcl_engine_gemm_width (SdclEngine *engine);
cl_command_queue sdcl_engine_queue (SdclEngine *engine);

/* Device buffers counted against the engine's memory figures. Sizes above
 * the device's max single allocation are refused with a clear error. */
cl_mem sdcl_engine_alloc (SdclEngine *engine, gsize bytes, GError **error);
void   sdcl_engine_release (SdclEngine *engine, cl_mem mem, gsize bytes);

/* The activation pool: take returns a pooled buffer of at least `bytes`
 * (its real size in *got) or a new one; give puts a buffer back for reuse,
 * keeping at most SDCL_POOL_MB MiB idle (environment, default below).
 * When the device is out of memory, pooled buffers are released and the
 * allocation is tried once more. */
#define SDCL_POOL_MB 384
cl_mem sdcl_engine_pool_take (SdclEngine *engine, gsize bytes, gsize *got, GError **error);
void   sdcl_engine_pool_give (SdclEngine *engine, cl_mem mem, gsize bytes);

/* Rounds `n` up to a multiple of `m`. */
static inline gsize
sdcl_round_up (gsize n, gsize m)
{
  return (n + m - 1) / m * m;
}

/* Embedded kernel sources (generated at build time from the cl/ folder). */
typedef struct
{
  const gchar *name;     /* file name without ".cl" */
  const gchar *source;
} SdclClSource;

extern const SdclClSource sdcl_cl_sources[];
extern const guint        sdcl_cl_n_sources;

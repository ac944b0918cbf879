/* runtime.c — OpenCL devices, the engine object, program compilation with an
 * on-disk binary cache, the kernel launch helper and its profiler.
 *
 * Programs are built lazily, one per cl/ file, the first time one of its
 * kernels is launched. Build options carry what the device probe found
 * (-D defines), so kernels pick fast paths without runtime checks.
 */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>

G_DEFINE_QUARK (sdcl-runtime-error-quark, sdcl_runtime_error)

/* ---- error names ---------------------------------------------------------- */

const gchar *
sdcl_cl_error_name (cl_int code)
{
  switch (code)
    {
#define E(x) case x: return #x;
      E (CL_SUCCESS) E (CL_DEVICE_NOT_FOUND) E (CL_DEVICE_NOT_AVAILABLE)
      E (CL_COMPILER_NOT_AVAILABLE) E (CL_MEM_OBJECT_ALLOCATION_FAILURE)
      E (CL_OUT_OF_RESOURCES) E (CL_OUT_OF_HOST_MEMORY)
      E (CL_PROFILING_INFO_NOT_AVAILABLE) E (CL_MEM_COPY_OVERLAP)
      E (CL_IMAGE_FORMAT_MISMATCH) E (CL_IMAGE_FORMAT_NOT_SUPPORTED)
      E (CL_BUILD_PROGRAM_FAILURE) E (CL_MAP_FAILURE)
      E (CL_MISALIGNED_SUB_BUFFER_OFFSET)
      E (CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
      E (CL_COMPILE_PROGRAM_FAILURE) E (CL_LINKER_NOT_AVAILABLE)
      E (CL_LINK_PROGRAM_FAILURE) E (CL_DEVICE_PARTITION_FAILED)
      E (CL_KERNEL_ARG_INFO_NOT_AVAILABLE) E (CL_INVALID_VALUE)
      E (CL_INVALID_DEVICE_TYPE) E (CL_INVALID_PLATFORM) E (CL_INVALID_DEVICE)
      E (CL_INVALID_CONTEXT) E (CL_INVALID_QUEUE_PROPERTIES)
      E (CL_INVALID_COMMAND_QUEUE) E (CL_INVALID_HOST_PTR)
      E (CL_INVALID_MEM_OBJECT) E (CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
      E (CL_INVALID_IMAGE_SIZE) E (CL_INVALID_SAMPLER) E (CL_INVALID_BINARY)
      E (CL_INVALID_BUILD_OPTIONS) E (CL_INVALID_PROGRAM)
      E (CL_INVALID_PROGRAM_EXECUTABLE) E (CL_INVALID_KERNEL_NAME)
      E (CL_INVALID_KERNEL_DEFINITION) E (CL_INVALID_KERNEL)
      E (CL_INVALID_ARG_INDEX) E (CL_INVALID_ARG_VALUE) E (CL_INVALID_ARG_SIZE)
      E (CL_INVALID_KERNEL_ARGS) E (CL_INVALID_WORK_DIMENSION)
      E (CL_INVALID_WORK_GROUP_SIZE) E (CL_INVALID_WORK_ITEM_SIZE)
      E (CL_INVALID_GLOBAL_OFFSET) E (CL_INVALID_EVENT_WAIT_LIST)
      E (CL_INVALID_EVENT) E (CL_INVALID_OPERATION) E (CL_INVALID_GL_OBJECT)
      E (CL_INVALID_BUFFER_SIZE) E (CL_INVALID_MIP_LEVEL)
      E (CL_INVALID_GLOBAL_WORK_SIZE) E (CL_INVALID_PROPERTY)
      E (CL_INVALID_IMAGE_DESCRIPTOR) E (CL_INVALID_COMPILER_OPTIONS)
      E (CL_INVALID_LINKER_OPTIONS) E (CL_INVALID_DEVICE_PARTITION_COUNT)
#undef E
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "unknown OpenCL error";
    }
}

gboolean
sdcl_cl_check (cl_int code, const gchar *call, GError **error)
{
  if (code == CL_SUCCESS)
    return TRUE;
  gboolean oom = code == CL_MEM_OBJECT_ALLOCATION_FAILURE
              || code == CL_OUT_OF_RESOURCES || code == CL_OUT_OF_HOST_MEMORY
              || code == CL_INVALID_BUFFER_SIZE;
  g_set_error (error, SDCL_RUNTIME_ERROR,
               oom ? SDCL_RUNTIME_ERROR_OUT_OF_MEMORY : SDCL_RUNTIME_ERROR_OPENCL,
               "%s failed: %s (%d)%s", call, sdcl_cl_error_name (code), code,
               oom ? "; the device is out of memory for this work" : "");
  return FALSE;
}

/* ---- devices --------------------------------------------------------------- */

void
sdcl_device_info_free (SdclDeviceInfo *info)
{
  if (!info)
    return;
  g_free (info->platform_name);
  g_free (info->name);
  g_free (info->vendor);
  g_free (info->driver_version);
  g_free (info->opencl_c_version);
  g_free (info);
}

static gchar *
platform_string (cl_platform_id p, cl_platform_info what)
{
  gsize n = 0;
  if (clGetPlatformInfo (p, what, 0, NULL, &n) != CL_SUCCESS || n == 0)
    return g_strdup ("");
  gchar *s = g_malloc0 (n + 1);
  clGetPlatformInfo (p, what, n, s, NULL);
  return g_strstrip (s);
}

static gchar *
device_string (cl_device_id d, cl_device_info what)
{
  gsize n = 0;
  if (clGetDeviceInfo (d, what, 0, NULL, &n) != CL_SUCCESS || n == 0)
    return g_strdup ("");
  gchar *s = g_malloc0 (n + 1);
  clGetDeviceInfo (d, what, n, s, NULL);
  return g_strstrip (s);
}

typedef struct
{
  cl_platform_id platform;
  cl_device_id   device;
  SdclDeviceInfo *info;
} DeviceEntry;

static SdclDeviceInfo *
probe_device (cl_platform_id platform, cl_device_id device,
              guint platform_index, guint device_index)
{
  SdclDeviceInfo *info = g_new0 (SdclDeviceInfo, 1);
  cl_device_type type = 0;
  cl_ulong u64 = 0;
  cl_uint u32 = 0;
  size_t sz = 0;

  info->platform_index = platform_index;
  info->device_index = device_index;
  info->platform_name = platform_string (platform, CL_PLATFORM_NAME);
  info->name = device_string (device, CL_DEVICE_NAME);
  info->vendor = device_string (device, CL_DEVICE_VENDOR);
  info->driver_version = device_string (device, CL_DRIVER_VERSION);
  info->opencl_c_version = device_string (device, CL_DEVICE_OPENCL_C_VERSION);
  if (clGetDeviceInfo (device, CL_DEVICE_TYPE, sizeof type, &type, NULL) == CL_SUCCESS)
    info->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
  if (clGetDeviceInfo (device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof u64, &u64, NULL) == CL_SUCCESS)
    info->global_mem_bytes = u64;
  if (clGetDeviceInfo (device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof u64, &u64, NULL) == CL_SUCCESS)
    info->max_alloc_bytes = u64;
  if (clGetDeviceInfo (device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof u64, &u64, NULL) == CL_SUCCESS)
    info->local_mem_bytes = u64;
  if (clGetDeviceInfo (device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof u32, &u32, NULL) == CL_SUCCESS)
    info->compute_units = u32;
  if (clGetDeviceInfo (device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof sz, &sz, NULL) == CL_SUCCESS)
    info->max_work_group_size = sz;
  if (clGetDeviceInfo (device, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof u32, &u32, NULL)
      == CL_SUCCESS)
    info->float_vector_width = u32;

  g_autofree gchar *ext = device_string (device, CL_DEVICE_EXTENSIONS);
  gchar **words = g_strsplit (ext, " ", -1);
  info->has_fp16 = g_strv_contains ((const gchar * const *) words, "cl_khr_fp16");
  info->has_subgroups = g_strv_contains ((const gchar * const *) words, "cl_khr_subgroups")
                     || g_strv_contains ((const gchar * const *) words, "cl_intel_subgroups");
  g_strfreev (words);
  return info;
}

static void
device_entry_clear (gpointer p)
{
  DeviceEntry *e = p;
  sdcl_device_info_free (e->info);
}

/* All devices of all platforms. A missing ICD loader configuration shows
 * as CL_PLATFORM_NOT_FOUND_KHR, which we report as "no device", not as
 * a failure. */
static GArray *
enumerate_devices (GError **error)
{
  GArray *out = g_array_new (FALSE, TRUE, sizeof (DeviceEntry));
  g_array_set_clear_func (out, device_entry_clear);
  cl_uint n_platforms = 0;
  cl_int err = clGetPlatformIDs (0, NULL, &n_platforms);
  if (err == -1001 || n_platforms == 0)
    return out;
  if (!sdcl_cl_check (err, "clGetPlatformIDs", error))
    {
      g_array_unref (out);
      return NULL;
    }
  g_autofree cl_platform_id *platforms = g_new0 (cl_platform_id, n_platforms);
  clGetPlatformIDs (n_platforms, platforms, NULL);
  for (cl_uint p = 0; p < n_platforms; p++)
    {
      cl_uint n_devices = 0;
      if (clGetDeviceIDs (platforms[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n_devices) != CL_SUCCESS
          || n_devices == 0)
        continue;
      g_autofree cl_device_id *devices = g_new0 (cl_device_id, n_devices);
      clGetDeviceIDs (platforms[p], CL_DEVICE_TYPE_ALL, n_devices, devices, NULL);
      for (cl_uint d = 0; d < n_devices; d++)
        {
          DeviceEntry e = { platforms[p], devices[d], NULL };
          e.info = probe_device (platforms[p], devices[d], p, out->len);
          g_array_append_val (out, e);
        }
    }
  return out;
}

GPtrArray *
sdcl_list_devices (GError **error)
{
  g_autoptr (GArray) all = enumerate_devices (error);
  if (!all)
    return NULL;
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) sdcl_device_info_free);
  for (guint i = 0; i < all->len; i++)
    {
      DeviceEntry *e = &g_array_index (all, DeviceEntry, i);
      g_ptr_array_add (list, e->info);
      e->info = NULL;
    }
  return list;
}

/* ---- the engine --------------------------------------------------------------- */

typedef struct
{
  cl_mem mem;
  gsize  bytes;
} PooledBuffer;

typedef struct
{
  gchar      *name;       /* kernel name */
  gchar      *global;     /* "gx,gy,gz" */
  gchar      *local;
  cl_event    event;
} ProfileRecord;

struct _SdclEngine
{
  SdclDeviceInfo  *info;
  cl_platform_id   platform;
  cl_device_id     device;
  cl_context       context;
  cl_command_queue queue;
  gchar           *build_options;
  gchar           *cache_dir;      /* NULL: binary cache off */
  guint            gemm_width;     /* SDCL_GEMM_VW of cl/gemm.cl: 8 or 16 */

  GHashTable      *kernel_file;    /* kernel name -> cl file name, for built programs */
  GHashTable      *programs;       /* cl file name -> cl_program */
  GHashTable      *kernels;        /* kernel name -> cl_kernel */

  guint64          mem_in_use;
  guint64          mem_peak;
  GArray          *pool;           /* PooledBuffer, unused buffers for reuse, oldest first */
  guint64          pool_bytes;     /* their total */
  guint64          pool_limit;     /* most bytes kept idle (SDCL_POOL_MB) */

  FILE            *profile;        /* SDCL_PROFILE */
  GArray          *pending;        /* ProfileRecord */
};

cl_context       sdcl_engine_context (SdclEngine *e) { return e->context; }
cl_command_queue sdcl_engine_queue (SdclEngine *e)   { return e->queue; }
const SdclDeviceInfo *sdcl_engine_device (SdclEngine *e) { return e->info; }
guint   sdcl_engine_gemm_width (SdclEngine *e)    { return e->gemm_width; }
guint64 sdcl_engine_memory_in_use (SdclEngine *e) { return e->mem_in_use; }
guint64 sdcl_engine_memory_peak (SdclEngine *e)   { return e->mem_peak; }
void    sdcl_engine_reset_peak (SdclEngine *e)    { e->mem_peak = e->mem_in_use; }

static void release_program (gpointer p) { clReleaseProgram (p); }
static void release_kernel (gpointer p)  { clReleaseKernel (p); }

/* Picks the device a spec names; see sdcl_engine_new(). */
static gint
choose_device (GArray *all, const gchar *spec, GError **error)
{
  if (all->len == 0)
    {
      g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_NO_DEVICE,
                   "no OpenCL device found: install an OpenCL driver for your GPU, "
                   "or PoCL (package pocl-opencl-icd) to run on the CPU");
      return -1;
    }
  if (spec == NULL || *spec == '\0')
    {
      for (guint i = 0; i < all->len; i++)
        if (g_array_index (all, DeviceEntry, i).info->is_gpu)
          return i;
      return 0;
    }
  guint64 index;
  if (g_ascii_string_to_unsigned (spec, 10, 0, G_MAXUINT, &index, NULL))
    {
      if (index < all->len)
        return index;
      g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_NO_DEVICE,
                   "no OpenCL device with index %s: there %s %u (see 'sdcl devices')",
                   spec, all->len == 1 ? "is" : "are", all->len);
      return -1;
    }
  g_autofree gchar *needle = g_utf8_casefold (spec, -1);
  for (guint i = 0; i < all->len; i++)
    {
      SdclDeviceInfo *info = g_array_index (all, DeviceEntry, i).info;
      g_autofree gchar *hay = g_strdup_printf ("%s %s", info->name, info->platform_name);
      g_autofree gchar *folded = g_utf8_casefold (hay, -1);
      if (strstr (folded, needle))
        return i;
    }
  g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_NO_DEVICE,
               "no OpenCL device matches '%s' (see 'sdcl devices')", spec);
  return -1;
}

SdclEngine *
sdcl_engine_new (const gchar *spec, GError **error)
{
#ifdef M_MMAP_THRESHOLD
  /* A CPU device's buffers are this process's heap. glibc serves blocks
   * below a threshold it raises up to 32 MiB from the heap, whose freed
   * space it keeps: a 512x512 run's activations then stayed resident after
   * use (0.6 GB above the device's own peak). Fixed at 1 MiB, large blocks
   * are mapped and returned to the system when freed. */
  mallopt (M_MMAP_THRESHOLD, 1 << 20);
#endif
  const gchar *env = g_getenv ("SDCL_DEVICE");
  if (env && *env)
    spec = env;

  g_autoptr (GArray) all = enumerate_devices (error);
  if (!all)
    return NULL;
  gint index = choose_device (all, spec, error);
  if (index < 0)
    return NULL;

  DeviceEntry *chosen = &g_array_index (all, DeviceEntry, index);
  SdclEngine *engine = g_new0 (SdclEngine, 1);
  engine->info = chosen->info;
  chosen->info = NULL;
  engine->platform = chosen->platform;
  engine->device = chosen->device;
  engine->kernel_file = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  engine->programs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, release_program);
  engine->kernels = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, release_kernel);
  engine->pending = g_array_new (FALSE, TRUE, sizeof (ProfileRecord));
  engine->pool = g_array_new (FALSE, TRUE, sizeof (PooledBuffer));
  const gchar *pool_mb = g_getenv ("SDCL_POOL_MB");
  engine->pool_limit = (pool_mb && *pool_mb ? g_ascii_strtoull (pool_mb, NULL, 10)
                                            : SDCL_POOL_MB) << 20;

  cl_int err;
  cl_context_properties props[] = { CL_CONTEXT_PLATFORM, (cl_context_properties) engine->platform, 0 };
  engine->context = clCreateContext (props, 1, &engine->device, NULL, NULL, &err);
  if (!sdcl_cl_check (err, "clCreateContext", error))
    goto fail;

  const gchar *profile = g_getenv ("SDCL_PROFILE");
  if (profile && *profile)
    {
      engine->profile = fopen (profile, "a");
      if (!engine->profile)
        {
          g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_OPENCL,
                       "SDCL_PROFILE: cannot open '%s' for writing: %s",
                       profile, g_strerror (errno));
          goto fail;
        }
      if (ftell (engine->profile) == 0)
        fputs ("kernel,global,local,time_us\n", engine->profile);
    }
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  engine->queue = clCreateCommandQueue (engine->context, engine->device,
                                        engine->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
  G_GNUC_END_IGNORE_DEPRECATIONS
  if (!sdcl_cl_check (err, "clCreateCommandQueue", error))
    goto fail;

  /* float16 GEMM tiles where the CPU's vectors are 16 floats wide (AVX-512);
   * SDCL_GEMM_WIDTH=8 or 16 overrides (the tests run both) */
  const gchar *gw = g_getenv ("SDCL_GEMM_WIDTH");
  if (gw && (g_strcmp0 (gw, "8") == 0 || g_strcmp0 (gw, "16") == 0))
    engine->gemm_width = atoi (gw);
  else
    engine->gemm_width = !engine->info->is_gpu && engine->info->float_vector_width >= 16 ? 16 : 8;
  engine->build_options = g_strdup_printf (
    "-cl-std=CL1.2 -cl-mad-enable -DSDCL_HAS_FP16=%d -DSDCL_IS_GPU=%d -DSDCL_MAX_WG=%" G_GSIZE_FORMAT
    " -DSDCL_GEMM_VW=%u",
    engine->info->has_fp16, engine->info->is_gpu, engine->info->max_work_group_size,
    engine->gemm_width);

  const gchar *cache = g_getenv ("SDCL_KERNEL_CACHE");
  if (cache && g_strcmp0 (cache, "off") == 0)
    engine->cache_dir = NULL;
  else if (cache && *cache)
    engine->cache_dir = g_strdup (cache);
  else
    engine->cache_dir = g_build_filename (g_get_user_cache_dir (), "sdcl", "kernels", NULL);

  return engine;

fail:
  sdcl_engine_free (engine);
  return NULL;
}

static void flush_profile (SdclEngine *engine);

void
sdcl_engine_free (SdclEngine *engine)
{
  if (!engine)
    return;
  if (engine->queue)
    {
      clFinish (engine->queue);
      flush_profile (engine);
    }
  sdcl_engine_trim (engine);
  g_array_unref (engine->pool);
  g_clear_pointer (&engine->kernels, g_hash_table_unref);
  g_clear_pointer (&engine->programs, g_hash_table_unref);
  g_clear_pointer (&engine->kernel_file, g_hash_table_unref);
  if (engine->queue)
    clReleaseCommandQueue (engine->queue);
  if (engine->context)
    clReleaseContext (engine->context);
  if (engine->profile)
    fclose (engine->profile);
  g_array_unref (engine->pending);
  g_free (engine->build_options);
  g_free (engine->cache_dir);
  sdcl_device_info_free (engine->info);
  g_free (engine);
}

gboolean
sdcl_engine_finish (SdclEngine *engine, GError **error)
{
  if (!sdcl_cl_check (clFinish (engine->queue), "clFinish", error))
    return FALSE;
  flush_profile (engine);
  return TRUE;
}

/* ---- memory ------------------------------------------------------------------ */

cl_mem
sdcl_engine_alloc (SdclEngine *engine, gsize bytes, GError **error)
{
  if (bytes == 0)
    bytes = 4;
  if (bytes > engine->info->max_alloc_bytes)
    {
      g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_OUT_OF_MEMORY,
                   "a buffer of %" G_GSIZE_FORMAT " MiB exceeds the largest single "
                   "allocation %s allows (%" G_GUINT64_FORMAT " MiB)",
                   bytes >> 20, engine->info->name, engine->info->max_alloc_bytes >> 20);
      return NULL;
    }
  cl_int err;
  cl_mem mem = clCreateBuffer (engine->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
  if (!sdcl_cl_check (err, "clCreateBuffer", error))
    return NULL;
  engine->mem_in_use += bytes;
  engine->mem_peak = MAX (engine->mem_peak, engine->mem_in_use);
  return mem;
}

void
sdcl_engine_release (SdclEngine *engine, cl_mem mem, gsize bytes)
{
  if (!mem)
    return;
  clReleaseMemObject (mem);
  engine->mem_in_use -= MAX (bytes, 4);
}

/* Best fit among pooled buffers, accepting up to 1/4 waste so a small
 * tensor does not pin a huge buffer. */
cl_mem
sdcl_engine_pool_take (SdclEngine *engine, gsize bytes, gsize *got, GError **error)
{
  gint best = -1;
  for (guint i = 0; i < engine->pool->len; i++)
    {
      PooledBuffer *b = &g_array_index (engine->pool, PooledBuffer, i);
      if (b->bytes >= bytes && b->bytes - bytes <= bytes / 4 + 4096
          && (best < 0 || b->bytes < g_array_index (engine->pool, PooledBuffer, best).bytes))
        best = i;
    }
  if (best >= 0)
    {
      PooledBuffer b = g_array_index (engine->pool, PooledBuffer, best);
      g_array_remove_index (engine->pool, best);
      engine->pool_bytes -= b.bytes;
      *got = b.bytes;
      return b.mem;
    }
  GError *local = NULL;
  cl_mem mem = sdcl_engine_alloc (engine, bytes, &local);
  if (!mem && engine->pool->len > 0
      && g_error_matches (local, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_OUT_OF_MEMORY))
    {
      g_clear_error (&local);
      sdcl_engine_trim (engine);
      mem = sdcl_engine_alloc (engine, bytes, &local);
    }
  if (!mem)
    {
      g_propagate_error (error, local);
      return NULL;
    }
  *got = MAX (bytes, 4);
  return mem;
}

/* Keeps the buffer for reuse, then releases the oldest idle buffers while
 * more than pool_limit bytes are idle: a step of the UNet reuses its
 * activations' sizes over and over, while the large one-off buffers
 * (Winograd's transformed weights, widened weights) of every layer shape
 * would otherwise stay for the life of the engine (2 GB at 512x512). */
void
sdcl_engine_pool_give (SdclEngine *engine, cl_mem mem, gsize bytes)
{
  PooledBuffer b = { mem, bytes };
  g_array_append_val (engine->pool, b);
  engine->pool_bytes += bytes;
  while (engine->pool_bytes > engine->pool_limit && engine->pool->len > 0)
    {
      PooledBuffer old = g_array_index (engine->pool, PooledBuffer, 0);
      g_array_remove_index (engine->pool, 0);
      engine->pool_bytes -= old.bytes;
      sdcl_engine_release (engine, old.mem, old.bytes);
    }
}

void
sdcl_engine_trim (SdclEngine *engine)
{
  for (guint i = 0; i < engine->pool->len; i++)
    {
      PooledBuffer *b = &g_array_index (engine->pool, PooledBuffer, i);
      sdcl_engine_release (engine, b->mem, b->bytes);
    }
  g_array_set_size (engine->pool, 0);
  engine->pool_bytes = 0;
}

/* ---- programs and the binary cache -------------------------------------------- */

#define CACHE_MAGIC   "SDCLKBIN"
#define CACHE_VERSION 1u

/* Cache file: magic[8] version[u32] key[64 hex] payload_len[u64]
 * payload_sha256[32] payload. */
typedef struct
{
  gchar   magic[8];
  guint32 version;
  gchar   key[64];
  guint64 length;
  guint8  digest[32];
} __attribute__ ((packed)) CacheHeader;

static gchar *
load_source (const gchar *file, GError **error)
{
  const gchar *dir = g_getenv ("SDCL_CL_DIR");
  if (dir && *dir)
    {
      g_autofree gchar *path = g_strdup_printf ("%s/%s.cl", dir, file);
      gchar *text = NULL;
      if (!g_file_get_contents (path, &text, NULL, error))
        {
          g_prefix_error (error, "SDCL_CL_DIR: ");
          return NULL;
        }
      return text;
    }
  for (guint i = 0; i < sdcl_cl_n_sources; i++)
    if (strcmp (sdcl_cl_sources[i].name, file) == 0)
      return g_strdup (sdcl_cl_sources[i].source);
  g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_BUILD,
               "no kernel source named '%s'", file);
  return NULL;
}

static gchar *
cache_key (SdclEngine *engine, const gchar *source)
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree gchar *pversion = platform_string (engine->platform, CL_PLATFORM_VERSION);
  const gchar *parts[] = {
    "sdcl-kernel-cache-v1", source, engine->build_options, engine->info->name,
    engine->info->driver_version, engine->info->platform_name, pversion,
  };
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    g_checksum_update (sum, (const guchar *) parts[i], strlen (parts[i]) + 1);
  return g_strdup (g_checksum_get_string (sum));
}

static void
digest_of (const guint8 *data, gsize length, guint8 out[32])
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  gsize n = 32;
  g_checksum_update (sum, data, length);
  g_checksum_get_digest (sum, out, &n);
}

/* Returns a built program from the cache, or NULL (silently) when the entry
 * is absent, corrupt, foreign or rejected by the driver. */
static cl_program
cache_load (SdclEngine *engine, const gchar *key)
{
  if (!engine->cache_dir)
    return NULL;
  g_autofree gchar *path = g_build_filename (engine->cache_dir, key, NULL);
  g_autofree gchar *data = NULL;
  gsize length = 0;
  if (!g_file_get_contents (path, &data, &length, NULL) || length < sizeof (CacheHeader))
    return NULL;
  CacheHeader header;
  memcpy (&header, data, sizeof header);
  guint8 digest[32];
  if (memcmp (header.magic, CACHE_MAGIC, 8) != 0 || header.version != CACHE_VERSION
      || memcmp (header.key, key, 64) != 0
      || header.length != length - sizeof header || header.length == 0)
    return NULL;
  const guint8 *payload = (const guint8 *) data + sizeof header;
  digest_of (payload, header.length, digest);
  if (memcmp (digest, header.digest, 32) != 0)
    return NULL;

  gsize size = header.length;
  cl_int status, err;
  cl_program program = clCreateProgramWithBinary (engine->context, 1, &engine->device, &size,
                                                  &payload, &status, &err);
  if (err != CL_SUCCESS || status != CL_SUCCESS)
    {
      if (program)
        clReleaseProgram (program);
      return NULL;
    }
  if (clBuildProgram (program, 1, &engine->device, engine->build_options, NULL, NULL) != CL_SUCCESS)
    {
      clReleaseProgram (program);
      return NULL;
    }
  return program;
}

/* Best effort: a cache that cannot be written costs time, not correctness. */
static void
cache_store (SdclEngine *engine, const gchar *key, cl_program program)
{
  if (!engine->cache_dir)
    return;
  gsize size = 0;
  if (clGetProgramInfo (program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS
      || size == 0)
    return;
  g_autofree guint8 *data = g_malloc (sizeof (CacheHeader) + size);
  guint8 *payload = data + sizeof (CacheHeader);
  if (clGetProgramInfo (program, CL_PROGRAM_BINARIES, sizeof payload, &payload, NULL) != CL_SUCCESS)
    return;
  CacheHeader header;
  memcpy (header.magic, CACHE_MAGIC, 8);
  header.version = CACHE_VERSION;
  memcpy (header.key, key, 64);
  header.length = size;
  digest_of (payload, size, header.digest);
  memcpy (data, &header, sizeof header);
  if (g_mkdir_with_parents (engine->cache_dir, 0700) != 0)
    return;
  g_autofree gchar *path = g_build_filename (engine->cache_dir, key, NULL);
  g_file_set_contents (path, (const gchar *) data, sizeof header + size, NULL);
}

static cl_program
get_program (SdclEngine *engine, const gchar *file, GError **error)
{
  cl_program program = g_hash_table_lookup (engine->programs, file);
  if (program)
    return program;

  g_autofree gchar *source = load_source (file, error);
  if (!source)
    return NULL;
  g_autofree gchar *key = cache_key (engine, source);
  program = cache_load (engine, key);
  if (!program)
    {
      cl_int err;
      const gchar *src = source;
      program = clCreateProgramWithSource (engine->context, 1, &src, NULL, &err);
      if (!sdcl_cl_check (err, "clCreateProgramWithSource", error))
        return NULL;
      err = clBuildProgram (program, 1, &engine->device, engine->build_options, NULL, NULL);
      if (err != CL_SUCCESS)
        {
          gsize n = 0;
          clGetProgramBuildInfo (program, engine->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
          g_autofree gchar *log = g_malloc0 (n + 1);
          clGetProgramBuildInfo (program, engine->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
          if (strlen (log) > 4000)
            log[4000] = '\0';
          g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_BUILD,
                       "building kernels of %s.cl for %s failed: %s (%d)\n%s",
                       file, engine->info->name, sdcl_cl_error_name (err), err, log);
          clReleaseProgram (program);
          return NULL;
        }
      cache_store (engine, key, program);
    }
  g_hash_table_insert (engine->programs, (gpointer) file, program);

  /* remember which kernels this file defines */
  gsize n = 0;
  if (clGetProgramInfo (program, CL_PROGRAM_KERNEL_NAMES, 0, NULL, &n) == CL_SUCCESS && n > 0)
    {
      g_autofree gchar *names = g_malloc0 (n + 1);
      clGetProgramInfo (program, CL_PROGRAM_KERNEL_NAMES, n, names, NULL);
      g_auto (GStrv) list = g_strsplit (names, ";", -1);
      for (guint i = 0; list[i]; i++)
        if (*g_strstrip (list[i]))
          g_hash_table_insert (engine->kernel_file, g_strdup (list[i]), (gpointer) file);
    }
  return program;
}

gboolean
sdcl_engine_build_all (SdclEngine *engine, GError **error)
{
  for (guint i = 0; i < sdcl_cl_n_sources; i++)
    if (!get_program (engine, sdcl_cl_sources[i].name, error))
      return FALSE;
  return TRUE;
}

static cl_kernel
get_kernel (SdclEngine *engine, const gchar *name, GError **error)
{
  cl_kernel kernel = g_hash_table_lookup (engine->kernels, name);
  if (kernel)
    return kernel;
  /* kernels are found by building the programs in turn until one
   * defines the name (each program is built once per engine) */
  const gchar *file = g_hash_table_lookup (engine->kernel_file, name);
  for (guint i = 0; !file && i < sdcl_cl_n_sources; i++)
    if (!g_hash_table_contains (engine->programs, sdcl_cl_sources[i].name))
      {
        if (!get_program (engine, sdcl_cl_sources[i].name, error))
          return NULL;
        file = g_hash_table_lookup (engine->kernel_file, name);
      }
  if (!file)
    {
      g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_BUILD,
                   "no cl/ file defines a kernel named '%s'", name);
      return NULL;
    }
  cl_program program = get_program (engine, file, error);
  if (!program)
    return NULL;
  cl_int err;
  kernel = clCreateKernel (program, name, &err);
  if (!sdcl_cl_check (err, "clCreateKernel", error))
    {
      g_prefix_error (error, "%s: ", name);
      return NULL;
    }
  g_hash_table_insert (engine->kernels, g_strdup (name), kernel);
  return kernel;
}

/* ---- launching and profiling ---------------------------------------------------- */

static gchar *
dims_string (guint dims, const gsize *v)
{
  if (!v)
    return g_strdup ("auto");
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < dims; i++)
    g_string_append_printf (s, "%s%" G_GSIZE_FORMAT, i ? "x" : "", v[i]);
  return g_string_free (s, FALSE);
}

static void
flush_profile (SdclEngine *engine)
{
  if (!engine->profile || engine->pending->len == 0)
    return;
  clFinish (engine->queue);
  for (guint i = 0; i < engine->pending->len; i++)
    {
      ProfileRecord *r = &g_array_index (engine->pending, ProfileRecord, i);
      cl_ulong start = 0, end = 0;
      clGetEventProfilingInfo (r->event, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL);
      clGetEventProfilingInfo (r->event, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL);
      fprintf (engine->profile, "%s,%s,%s,%.1f\n", r->name, r->global, r->local,
               end > start ? (end - start) / 1000.0 : 0.0);
      clReleaseEvent (r->event);
      g_free (r->name);
      g_free (r->global);
      g_free (r->local);
    }
  g_array_set_size (engine->pending, 0);
  fflush (engine->profile);
}

gboolean
sdcl_launch (SdclEngine *engine, const gchar *name, guint dims, const gsize *global,
             const gsize *local, const SdclArg *args, guint n_args, GError **error)
{
  cl_kernel kernel = get_kernel (engine, name, error);
  if (!kernel)
    return FALSE;
  for (guint i = 0; i < dims; i++)
    if (global[i] == 0)
      return TRUE;   /* nothing to do */
  for (guint i = 0; i < n_args; i++)
    {
      cl_int err = clSetKernelArg (kernel, i, args[i].size, args[i].value);
      if (err != CL_SUCCESS)
        {
          g_set_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_OPENCL,
                       "clSetKernelArg (%s, argument %u) failed: %s (%d)",
                       name, i, sdcl_cl_error_name (err), err);
          return FALSE;
        }
    }
  cl_event event = NULL;
  cl_int err = clEnqueueNDRangeKernel (engine->queue, kernel, dims, NULL, global, local, 0, NULL,
                                       engine->profile ? &event : NULL);
  if (err != CL_SUCCESS)
    {
      sdcl_cl_check (err, "clEnqueueNDRangeKernel", error);
      g_prefix_error (error, "%s: ", name);
      return FALSE;
    }
  if (engine->profile)
    {
      ProfileRecord r = { g_strdup (name), dims_string (dims, global),
                          dims_string (dims, local), event };
      g_array_append_val (engine->pending, r);
      if (engine->pending->len >= 4096)
        flush_profile (engine);
    }
  return TRUE;
}

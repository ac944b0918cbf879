/* safetensors.h — reading and writing .safetensors weight files (internal).
 * A file is memory-mapped and every header field is checked against the
 * file before anything is returned, so callers may trust offsets and sizes.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * { "name": { "dtype", "shape", "data_offsets": [begin, end] }, ...,
 *   "__metadata__": { "key": "value" } }, then the data section; offsets
 * count from the start of the data section. Shapes are outermost first
 * (PyTorch order), the reverse of the engine's ne[].
 */
#pragma once

#include "sdcl.h"

G_BEGIN_DECLS

/* The reference implementation refuses larger headers; so do we, so a
 * hostile length cannot make us parse or allocate gigabytes. */
#define SDCL_SAFETENSORS_MAX_HEADER  100000000
#define SDCL_SAFETENSORS_MAX_DIMS    8

typedef enum
{
  SDCL_ST_F64,
  SDCL_ST_F32,
  SDCL_ST_F16,
  SDCL_ST_BF16,
  SDCL_ST_I64,
  SDCL_ST_I32,
  SDCL_ST_I16,
  SDCL_ST_I8,
  SDCL_ST_U64,
  SDCL_ST_U32,
  SDCL_ST_U16,
  SDCL_ST_U8,
  SDCL_ST_BOOL,
} SdclSafetensorsDtype;

/* "F16", "BF16", ... as written in the header; element size in bytes. */
const gchar *sdcl_safetensors_dtype_name (SdclSafetensorsDtype dtype);
gsize        sdcl_safetensors_dtype_size (SdclSafetensorsDtype dtype);

typedef struct
{
  const gchar         *name;
  SdclSafetensorsDtype dtype;
  guint                n_dims;                              /* 0 for a scalar */
  gint64               shape[SDCL_SAFETENSORS_MAX_DIMS];    /* [n_dims], outermost first; rest 0 */
  gint64               numel;                               /* product of shape, 1 for a scalar */
  gsize                n_bytes;                             /* numel * dtype size */
  gsize                offset;                              /* from the start of the data section */
  /* Inside the map, valid while the file is open. Aligned to the element
   * size when the writer aligned it (the reference writer and ours do);
   * read through memcpy or sdcl_safetensors_read_* if unsure. */
  gconstpointer        data;
} SdclSafetensorsEntry;

/* "[320, 4, 3, 3] F16" for messages (g_free). */
gchar *sdcl_safetensors_entry_describe (const SdclSafetensorsEntry *entry);

/* ---- reading ------------------------------------------------------------- */

typedef struct _SdclSafetensors SdclSafetensors;

/* Maps `path` and validates it (sdcl_safetensors_open_bytes). Errors are in
 * SDCL_SAFETENSORS_ERROR and name the file's basename. */
SdclSafetensors *sdcl_safetensors_open (const gchar *path, GError **error);

/* The same over bytes already in memory; `name` (may be NULL) is used in
 * messages. Keeps a reference to `bytes`; entries point into them. */
SdclSafetensors *sdcl_safetensors_open_bytes (GBytes *bytes, const gchar *name,
                                              GError **error);

/* Tells the kernel that a mapped file's pages inside tensor `name` are not
 * needed any more (they are read again from the file if touched), so a
 * model's file does not stay in the process's resident memory beside the
 * device copy it was converted into. Does nothing for bytes in memory. */
void sdcl_safetensors_drop_pages (const SdclSafetensors *st, const gchar *name);

void sdcl_safetensors_free (SdclSafetensors *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclSafetensors, sdcl_safetensors_free)

/* Basename given at open, for callers' own messages. */
const gchar *sdcl_safetensors_name (const SdclSafetensors *st);

guint sdcl_safetensors_n_tensors (const SdclSafetensors *st);
/* i-th tensor in file order (by data offset), or in name order (strcmp). */
const SdclSafetensorsEntry *sdcl_safetensors_nth (const SdclSafetensors *st, guint i);
const SdclSafetensorsEntry *sdcl_safetensors_nth_by_name (const SdclSafetensors *st, guint i);
/* NULL when absent (not an error: model detection probes names). */
const SdclSafetensorsEntry *sdcl_safetensors_get (const SdclSafetensors *st, const gchar *name);

/* A `__metadata__` value, or NULL. The table maps key -> value (both
 * strings, owned by st) for callers that want every pair. */
const gchar *sdcl_safetensors_metadata (const SdclSafetensors *st, const gchar *key);
GHashTable  *sdcl_safetensors_metadata_table (const SdclSafetensors *st);

/* Tensor `name` as numel floats (g_free; never NULL on success, even when
 * numel is 0). F32/F16/BF16 convert exactly; F64 rounds to nearest. Integer
 * and BOOL tensors convert only when every value is exact in a float
 * (indices, shapes); otherwise UNSUPPORTED. NOT_FOUND when absent. */
gfloat  *sdcl_safetensors_read_f32 (const SdclSafetensors *st, const gchar *name,
                                    gint64 *numel_out, GError **error);
/* The same as raw IEEE half values: F16 copied, others converted through
 * float with round-to-nearest-even (values beyond ±65504 become ±inf). */
guint16 *sdcl_safetensors_read_f16 (const SdclSafetensors *st, const gchar *name,
                                    gint64 *numel_out, GError **error);

/* ---- writing ------------------------------------------------------------- */

/* Collects tensors and metadata, then writes a file the reference reader
 * accepts: header padded with spaces to a multiple of 8, tensors sorted by
 * element size (largest first) then name, packed without gaps, so every
 * tensor is aligned to its element size. */
typedef struct _SdclSafetensorsWriter SdclSafetensorsWriter;

SdclSafetensorsWriter *sdcl_safetensors_writer_new (void);
void sdcl_safetensors_writer_free (SdclSafetensorsWriter *writer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclSafetensorsWriter, sdcl_safetensors_writer_free)

/* Adds a tensor; `data` (n_bytes, little-endian elements) is copied.
 * Refuses (CORRUPT) an empty, reserved or repeated name, more than
 * SDCL_SAFETENSORS_MAX_DIMS dims, a negative dim, or n_bytes that does not
 * match the shape. */
gboolean sdcl_safetensors_writer_add (SdclSafetensorsWriter *writer, const gchar *name,
                                      SdclSafetensorsDtype dtype, guint n_dims,
                                      const gint64 *shape, gconstpointer data,
                                      gsize n_bytes, GError **error);
/* The same without a copy: keeps a reference to `data`. */
gboolean sdcl_safetensors_writer_add_bytes (SdclSafetensorsWriter *writer, const gchar *name,
                                            SdclSafetensorsDtype dtype, guint n_dims,
                                            const gint64 *shape, GBytes *data,
                                            GError **error);
/* Sets a __metadata__ pair, replacing an earlier value for the key. */
void sdcl_safetensors_writer_set_metadata (SdclSafetensorsWriter *writer, const gchar *key,
                                           const gchar *value);

/* The whole file in memory. */
GBytes  *sdcl_safetensors_writer_to_bytes (SdclSafetensorsWriter *writer, GError **error);
/* Streams the file to `path`, replacing it atomically (IO on failure). */
gboolean sdcl_safetensors_writer_save (SdclSafetensorsWriter *writer, const gchar *path,
                                       GError **error);

G_END_DECLS

/* safetensors.c — memory-mapped .safetensors reader that checks every
 * header field against the file before use, plus the writer that tests and
 * tools use. Everything in a file is untrusted: sizes are overflow-checked
 * and no pointer is formed past the end of the data, whatever the header says.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "tensor.h"

#ifndef O_BINARY
#define O_BINARY 0   /* only Windows distinguishes text from binary files */
#endif

G_DEFINE_QUARK (sdcl-safetensors-error-quark, sdcl_safetensors_error)

/* ---- dtypes ---------------------------------------------------------------- */

typedef struct
{
  const gchar *name;
  gsize        size;
} DtypeInfo;

/* Indexed by SdclSafetensorsDtype. */
static const DtypeInfo dtypes[] = {
  [SDCL_ST_F64]  = { "F64", 8 },
  [SDCL_ST_F32]  = { "F32", 4 },
  [SDCL_ST_F16]  = { "F16", 2 },
  [SDCL_ST_BF16] = { "BF16", 2 },
  [SDCL_ST_I64]  = { "I64", 8 },
  [SDCL_ST_I32]  = { "I32", 4 },
  [SDCL_ST_I16]  = { "I16", 2 },
  [SDCL_ST_I8]   = { "I8", 1 },
  [SDCL_ST_U64]  = { "U64", 8 },
  [SDCL_ST_U32]  = { "U32", 4 },
  [SDCL_ST_U16]  = { "U16", 2 },
  [SDCL_ST_U8]   = { "U8", 1 },
  [SDCL_ST_BOOL] = { "BOOL", 1 },
};

/* dtypes the format defines but sdcl cannot compute with; named apart from
 * truly unknown strings so the message can say what to do. */
static const gchar *const unsupported_dtypes[] = {
  "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64",
};

const gchar *
sdcl_safetensors_dtype_name (SdclSafetensorsDtype dtype)
{
  g_return_val_if_fail ((guint) dtype < G_N_ELEMENTS (dtypes), "?");
  return dtypes[dtype].name;
}

gsize
sdcl_safetensors_dtype_size (SdclSafetensorsDtype dtype)
{
  g_return_val_if_fail ((guint) dtype < G_N_ELEMENTS (dtypes), 0);
  return dtypes[dtype].size;
}

static gboolean
dtype_from_name (const gchar *name, SdclSafetensorsDtype *dtype)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
    if (strcmp (dtypes[i].name, name) == 0)
      {
        *dtype = (SdclSafetensorsDtype) i;
        return TRUE;
      }
  return FALSE;
}

/* ---- messages -------------------------------------------------------------- */

static void set_error (GError **error, gint code, const gchar *file, const gchar *fmt, ...)
  G_GNUC_PRINTF (4, 5);

/* Every message starts with the file's name, so a user with several model
 * files knows which one is bad. */
static void
set_error (GError **error, gint code, const gchar *file, const gchar *fmt, ...)
{
  va_list args;
  va_start (args, fmt);
  g_autofree gchar *msg = g_strdup_vprintf (fmt, args);
  va_end (args);
  g_set_error (error, SDCL_SAFETENSORS_ERROR, code, "%s: %s", file, msg);
}

/* 9123 -> "9,123": byte offsets in messages are easier to compare grouped. */
static const gchar *
group_digits (gchar buf[32], guint64 v)
{
  gchar digits[24];
  gint n = g_snprintf (digits, sizeof digits, "%" G_GUINT64_FORMAT, v);
  gint o = 0;
  for (gint i = 0; i < n; i++)
    {
      if (i > 0 && (n - i) % 3 == 0)
        buf[o++] = ',';
      buf[o++] = digits[i];
    }
  buf[o] = '\0';
  return buf;
}

static gchar *
describe_shape (guint n_dims, const gint64 *shape)
{
  GString *s = g_string_new ("[");
  for (guint i = 0; i < n_dims; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

gchar *
sdcl_safetensors_entry_describe (const SdclSafetensorsEntry *entry)
{
  g_return_val_if_fail (entry != NULL, NULL);
  g_autofree gchar *shape = describe_shape (entry->n_dims, entry->shape);
  return g_strdup_printf ("%s %s", shape, sdcl_safetensors_dtype_name (entry->dtype));
}

/* ---- the reader ------------------------------------------------------------ */

struct _SdclSafetensors
{
  gchar                 *name;        /* basename, for messages */
  GBytes                *bytes;       /* the whole file; keeps the map alive */
  gboolean               mapped;      /* bytes are a read-only file map */
  SdclSafetensorsEntry  *entries;     /* [n_entries], by data offset */
  guint                  n_entries;
  SdclSafetensorsEntry **sorted;      /* [n_entries], by name */
  GHashTable            *by_name;     /* name -> entry */
  GHashTable            *metadata;    /* key -> value */
};

void
sdcl_safetensors_free (SdclSafetensors *st)
{
  if (!st)
    return;
  for (guint i = 0; i < st->n_entries; i++)
    g_free ((gchar *) st->entries[i].name);
  g_free (st->entries);
  g_free (st->sorted);
  g_clear_pointer (&st->by_name, g_hash_table_unref);
  g_clear_pointer (&st->metadata, g_hash_table_unref);
  g_clear_pointer (&st->bytes, g_bytes_unref);
  g_free (st->name);
  g_free (st);
}

static guint64
read_le64 (const guint8 *p)
{
  guint64 v;
  memcpy (&v, p, 8);
  return GUINT64_FROM_LE (v);
}

/* True when the first bytes could be a safetensors header: a plausible
 * length followed by '{'. Checked before the foreign-format guess, since a
 * real header length of 640 bytes also starts with the pickle bytes 80 02. */
static gboolean
plausible_safetensors (const guint8 *p, gsize size)
{
  if (size < 9)
    return FALSE;
  guint64 n = read_le64 (p);
  return n > 0 && n <= SDCL_SAFETENSORS_MAX_HEADER && n <= size - 8 && p[8] == '{';
}

/* How to turn a checkpoint you trust into safetensors, with PyTorch's
 * restricted unpickler (weights_only) so even that step runs no code. */
#define CONVERT_HINT                                                              \
  "Convert it once, if you trust its source, with: python3 -c \"import torch, "   \
  "safetensors.torch as st; sd = torch.load('model.ckpt', map_location='cpu', "   \
  "weights_only=True); sd = sd.get('state_dict', sd); st.save_file({k: v.contiguous() " \
  "for k, v in sd.items() if hasattr(v, 'contiguous')}, 'model.safetensors')\""

/* A file of another kind given by mistake: say what it is and what to do,
 * rather than "header length 86 GB exceeds the file". */
static gboolean
refuse_foreign_format (const guint8 *p, gsize size, const gchar *file, GError **error)
{
  if (plausible_safetensors (p, size))
    return FALSE;
  if (size >= 4 && memcmp (p, "PK\x03\x04", 4) == 0)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, file,
                 "this is a zip archive, as PyTorch .ckpt/.pt checkpoints are, not a "
                 "safetensors file; sdcl does not load pickle checkpoints because loading "
                 "them can run arbitrary code. " CONVERT_HINT);
      return TRUE;
    }
  if (size >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, file,
                 "this is a Python pickle (a legacy PyTorch .ckpt checkpoint), not a "
                 "safetensors file; sdcl does not load pickle checkpoints because loading "
                 "them can run arbitrary code. " CONVERT_HINT);
      return TRUE;
    }
  if (size >= 4 && memcmp (p, "GGUF", 4) == 0)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, file,
                 "this is a GGUF file, not a safetensors file; sdcl loads .safetensors only");
      return TRUE;
    }
  return FALSE;
}

/* json-glib keeps the last of two members with the same name and says
 * nothing, which would let a file name a tensor twice with different data.
 * Its parser emits object-member after each member is stored, so a member
 * that does not grow the object is a repeat. Objects nest, so counts live
 * on a stack pushed by object-start and popped by object-end. */
typedef struct
{
  GArray     *counts;         /* members seen per open object, innermost last */
  gchar      *name;           /* first repeated member name, or NULL */
  guint       depth;          /* its object's depth, 1 = the header itself */
  JsonObject *object;         /* its object (compared, never dereferenced later) */
} DuplicateScan;

static void
on_object_start (JsonParser *parser, gpointer user_data)
{
  DuplicateScan *scan = user_data;
  guint zero = 0;
  g_array_append_val (scan->counts, zero);
}

static void
on_object_member (JsonParser *parser, JsonObject *object, const gchar *name, gpointer user_data)
{
  DuplicateScan *scan = user_data;
  if (scan->counts->len == 0)
    return;
  guint *count = &g_array_index (scan->counts, guint, scan->counts->len - 1);
  *count += 1;
  if (!scan->name && json_object_get_size (object) < *count)
    {
      scan->name = g_strdup (name);
      scan->depth = scan->counts->len;
      scan->object = object;
      *count -= 1;
    }
}

static void
on_object_end (JsonParser *parser, JsonObject *object, gpointer user_data)
{
  DuplicateScan *scan = user_data;
  if (scan->counts->len > 0)
    g_array_set_size (scan->counts, scan->counts->len - 1);
}

static gboolean
report_duplicate (const DuplicateScan *scan, JsonObject *root, const gchar *file, GError **error)
{
  if (!scan->name)
    return FALSE;
  if (scan->depth == 1 && strcmp (scan->name, "__metadata__") == 0)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "__metadata__ appears twice in the header");
      return TRUE;
    }
  if (scan->depth == 1)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "duplicate tensor name '%s' in the header", scan->name);
      return TRUE;
    }
  /* Name the tensor (or __metadata__) whose object repeats a key. */
  const gchar *owner = NULL;
  g_autoptr (GList) members = json_object_get_members (root);
  for (GList *l = members; l && scan->depth == 2; l = l->next)
    {
      JsonNode *node = json_object_get_member (root, l->data);
      if (JSON_NODE_HOLDS_OBJECT (node) && json_node_get_object (node) == scan->object)
        owner = l->data;
    }
  if (owner && strcmp (owner, "__metadata__") == 0)
    set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
               "duplicate key '%s' in __metadata__", scan->name);
  else if (owner)
    set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
               "duplicate key '%s' in the entry of tensor '%s'", scan->name, owner);
  else
    set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
               "duplicate key '%s' in a nested object of the header", scan->name);
  return TRUE;
}

/* A JSON integer >= 0; json-glib keeps integers apart from doubles, so
 * 3.0 is refused like the reference (serde, usize) refuses it. */
static gboolean
node_to_count (JsonNode *node, guint64 *out)
{
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  gint64 v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *out = (guint64) v;
  return TRUE;
}

static gboolean
parse_dtype (JsonObject *obj, const gchar *tensor, const gchar *file,
             SdclSafetensorsDtype *dtype, GError **error)
{
  JsonNode *node = json_object_get_member (obj, "dtype");
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s': \"dtype\" is not a string", tensor);
      return FALSE;
    }
  const gchar *name = json_node_get_string (node);
  if (dtype_from_name (name, dtype))
    return TRUE;
  for (guint i = 0; i < G_N_ELEMENTS (unsupported_dtypes); i++)
    if (strcmp (name, unsupported_dtypes[i]) == 0)
      {
        set_error (error, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, file,
                   "tensor '%s' has dtype %s, which sdcl does not support; convert the "
                   "file to F16, BF16 or F32", tensor, name);
        return FALSE;
      }
  /* A dtype from a newer format version would land here too, so this is
   * "unsupported" rather than "corrupt". */
  set_error (error, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, file,
             "tensor '%s' has unknown dtype '%s' (sdcl reads F64, F32, F16, BF16, I64, I32, "
             "I16, I8, U64, U32, U16, U8 and BOOL)", tensor, name);
  return FALSE;
}

static gboolean
parse_shape (JsonObject *obj, const gchar *tensor, const gchar *file,
             SdclSafetensorsEntry *e, GError **error)
{
  JsonNode *node = json_object_get_member (obj, "shape");
  if (!JSON_NODE_HOLDS_ARRAY (node))
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s': \"shape\" is not an array", tensor);
      return FALSE;
    }
  JsonArray *arr = json_node_get_array (node);
  guint n = json_array_get_length (arr);
  if (n > SDCL_SAFETENSORS_MAX_DIMS)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, file,
                 "tensor '%s' has %u dimensions; sdcl handles at most %d", tensor, n,
                 SDCL_SAFETENSORS_MAX_DIMS);
      return FALSE;
    }
  gboolean has_zero = FALSE;
  for (guint i = 0; i < n; i++)
    {
      guint64 d;
      if (!node_to_count (json_array_get_element (arr, i), &d) || d > G_MAXINT64)
        {
          set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                     "tensor '%s': shape element %u is not a non-negative integer", tensor, i);
          return FALSE;
        }
      e->shape[i] = (gint64) d;
      has_zero |= d == 0;
    }
  e->n_dims = n;

  /* An empty dimension makes the tensor empty however large the others
   * are; otherwise the product and the byte count must not overflow. */
  gsize numel = 1, bytes = 0;
  gboolean ok = TRUE;
  if (has_zero)
    numel = 0;
  else
    for (guint i = 0; i < n && ok; i++)
      ok = (guint64) e->shape[i] <= G_MAXSIZE
           && g_size_checked_mul (&numel, numel, (gsize) e->shape[i]);
  ok = ok && numel <= G_MAXINT64
       && g_size_checked_mul (&bytes, numel, sdcl_safetensors_dtype_size (e->dtype));
  if (!ok)
    {
      g_autofree gchar *shape = describe_shape (n, e->shape);
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s': shape %s of %s is too large (its byte size overflows)",
                 tensor, shape, sdcl_safetensors_dtype_name (e->dtype));
      return FALSE;
    }
  e->numel = (gint64) numel;
  e->n_bytes = bytes;
  return TRUE;
}

static gboolean
parse_offsets (JsonObject *obj, const gchar *tensor, const gchar *file, gsize data_size,
               SdclSafetensorsEntry *e, GError **error)
{
  JsonNode *node = json_object_get_member (obj, "data_offsets");
  guint64 begin = 0, end = 0;
  JsonArray *arr = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
  if (!arr || json_array_get_length (arr) != 2
      || !node_to_count (json_array_get_element (arr, 0), &begin)
      || !node_to_count (json_array_get_element (arr, 1), &end))
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s': \"data_offsets\" is not two non-negative integers", tensor);
      return FALSE;
    }
  gchar a[32], b[32], c[32];
  if (begin > end)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s': data_offsets begin at byte %s but end at byte %s, before "
                 "they begin", tensor, group_digits (a, begin), group_digits (b, end));
      return FALSE;
    }
  if (end - begin != e->n_bytes)
    {
      g_autofree gchar *shape = describe_shape (e->n_dims, e->shape);
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s': data_offsets span %s bytes, but shape %s of %s needs %s bytes",
                 tensor, group_digits (a, end - begin), shape,
                 sdcl_safetensors_dtype_name (e->dtype), group_digits (b, e->n_bytes));
      return FALSE;
    }
  if (end > data_size)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s' ends at byte %s of the data section, but the file has only "
                 "%s bytes of data after the header (truncated file?)", tensor,
                 group_digits (a, end), group_digits (c, data_size));
      return FALSE;
    }
  e->offset = (gsize) begin;
  return TRUE;
}

static gboolean
parse_entry (JsonNode *node, const gchar *tensor, const gchar *file, gsize data_size,
             SdclSafetensorsEntry *e, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "the header entry of tensor '%s' is not a JSON object", tensor);
      return FALSE;
    }
  JsonObject *obj = json_node_get_object (node);
  static const gchar *const required[] = { "dtype", "shape", "data_offsets" };
  for (guint i = 0; i < G_N_ELEMENTS (required); i++)
    if (!json_object_has_member (obj, required[i]))
      {
        set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                   "the header entry of tensor '%s' has no \"%s\"", tensor, required[i]);
        return FALSE;
      }
  return parse_dtype (obj, tensor, file, &e->dtype, error)
         && parse_shape (obj, tensor, file, e, error)
         && parse_offsets (obj, tensor, file, data_size, e, error);
}

static gboolean
parse_metadata (JsonNode *node, const gchar *file, GHashTable *metadata, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "__metadata__ is not a JSON object of strings");
      return FALSE;
    }
  JsonObject *obj = json_node_get_object (node);
  g_autoptr (GList) keys = json_object_get_members (obj);
  for (GList *l = keys; l; l = l->next)
    {
      JsonNode *value = json_object_get_member (obj, l->data);
      if (!JSON_NODE_HOLDS_VALUE (value) || json_node_get_value_type (value) != G_TYPE_STRING)
        {
          set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                     "__metadata__ value of '%s' is not a string", (const gchar *) l->data);
          return FALSE;
        }
      g_hash_table_insert (metadata, g_strdup (l->data), g_strdup (json_node_get_string (value)));
    }
  return TRUE;
}

static gint
compare_by_offset (gconstpointer a, gconstpointer b)
{
  const SdclSafetensorsEntry *x = a, *y = b;
  if (x->offset != y->offset)
    return x->offset < y->offset ? -1 : 1;
  if (x->n_bytes != y->n_bytes)
    return x->n_bytes < y->n_bytes ? -1 : 1;
  return strcmp (x->name, y->name);
}

static gint
compare_by_name (gconstpointer a, gconstpointer b)
{
  const SdclSafetensorsEntry *const *x = a, *const *y = b;
  return strcmp ((*x)->name, (*y)->name);
}

/* Parses the header text into a JSON object, refusing repeated keys. */
static JsonNode *
parse_header (const guint8 *header, gsize length, const gchar *file, GError **error)
{
  if (header[0] != '{')
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "the header is not a JSON object (it starts with byte 0x%02x, not '{')",
                 header[0]);
      return NULL;
    }
  g_autoptr (JsonParser) parser = json_parser_new ();
#if JSON_CHECK_VERSION (1, 10, 0)
  /* No comments, single quotes or second top-level value: the header is
   * JSON, as the reference (serde_json) reads it. */
  json_parser_set_strict (parser, TRUE);
#endif
  DuplicateScan scan = { .counts = g_array_new (FALSE, FALSE, sizeof (guint)) };
  g_signal_connect (parser, "object-start", G_CALLBACK (on_object_start), &scan);
  g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member), &scan);
  g_signal_connect (parser, "object-end", G_CALLBACK (on_object_end), &scan);

  JsonNode *root = NULL;
  g_autoptr (GError) json_error = NULL;
  if (!json_parser_load_from_data (parser, (const gchar *) header, (gssize) length, &json_error))
    set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
               "the header is not valid JSON: %s", json_error->message);
  else if (!json_parser_get_root (parser)
           || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file, "the header is not a JSON object");
  else if (!report_duplicate (&scan, json_node_get_object (json_parser_get_root (parser)),
                              file, error))
    root = json_node_ref (json_parser_get_root (parser));

  g_array_unref (scan.counts);
  g_free (scan.name);
  return root;
}

SdclSafetensors *
sdcl_safetensors_open_bytes (GBytes *bytes, const gchar *name, GError **error)
{
  g_return_val_if_fail (bytes != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  const gchar *file = name ? name : "(memory)";
  gsize size = 0;
  const guint8 *p = g_bytes_get_data (bytes, &size);
  gchar a[32], b[32];

  if (refuse_foreign_format (p, size, file, error))
    return NULL;
  if (size == 0)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "the file is empty (0 bytes), not a safetensors file");
      return NULL;
    }
  if (size < 8)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "the file has only %" G_GSIZE_FORMAT " bytes, too short for the 8-byte "
                 "header length of a safetensors file", size);
      return NULL;
    }
  guint64 header_len = read_le64 (p);
  if (header_len == 0)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "the header length is 0; a safetensors header is at least \"{}\"");
      return NULL;
    }
  if (header_len > SDCL_SAFETENSORS_MAX_HEADER)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "the header length %s bytes exceeds the 100 MB limit (not a safetensors "
                 "file, or a damaged one)", group_digits (a, header_len));
      return NULL;
    }
  if (header_len > size - 8)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "the header length %s bytes exceeds the %s bytes that follow it "
                 "(truncated file?)", group_digits (a, header_len), group_digits (b, size - 8));
      return NULL;
    }

  g_autoptr (JsonNode) root_node = parse_header (p + 8, header_len, file, error);
  if (!root_node)
    return NULL;
  JsonObject *root = json_node_get_object (root_node);

  g_autoptr (SdclSafetensors) st = g_new0 (SdclSafetensors, 1);
  st->name = g_strdup (file);
  st->bytes = g_bytes_ref (bytes);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);

  const guint8 *data = p + 8 + header_len;
  gsize data_size = size - 8 - header_len;
  guint n_members = json_object_get_size (root);
  st->entries = g_new0 (SdclSafetensorsEntry, MAX (n_members, 1));

  g_autoptr (GList) members = json_object_get_members (root);
  for (GList *l = members; l; l = l->next)
    {
      const gchar *member = l->data;
      JsonNode *node = json_object_get_member (root, member);
      if (strcmp (member, "__metadata__") == 0)
        {
          if (!parse_metadata (node, file, st->metadata, error))
            return NULL;
          continue;
        }
      /* Filled in place and counted only on success, so free() sees
       * exactly the names it owns. */
      SdclSafetensorsEntry *e = &st->entries[st->n_entries];
      if (!parse_entry (node, member, file, data_size, e, error))
        return NULL;
      e->name = g_strdup (member);
      st->n_entries++;
    }

  /* File order, then overlaps: two tensors sharing bytes would alias
   * weights that the model treats as independent. Empty tensors hold no
   * bytes and may sit anywhere. */
  qsort (st->entries, st->n_entries, sizeof (SdclSafetensorsEntry), compare_by_offset);
  const SdclSafetensorsEntry *prev = NULL;
  for (guint i = 0; i < st->n_entries; i++)
    {
      SdclSafetensorsEntry *e = &st->entries[i];
      e->data = data + e->offset;
      if (e->n_bytes == 0)
        continue;
      if (prev && e->offset < prev->offset + prev->n_bytes)
        {
          gchar c[32], d[32];
          set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                     "tensors '%s' (bytes %s to %s) and '%s' (bytes %s to %s) overlap",
                     prev->name, group_digits (a, prev->offset),
                     group_digits (b, prev->offset + prev->n_bytes), e->name,
                     group_digits (c, e->offset), group_digits (d, e->offset + e->n_bytes));
          return NULL;
        }
      prev = e;
    }

  st->sorted = g_new (SdclSafetensorsEntry *, MAX (st->n_entries, 1));
  for (guint i = 0; i < st->n_entries; i++)
    {
      st->sorted[i] = &st->entries[i];
      g_hash_table_insert (st->by_name, (gpointer) st->entries[i].name, &st->entries[i]);
    }
  qsort (st->sorted, st->n_entries, sizeof (SdclSafetensorsEntry *), compare_by_name);
  return g_steal_pointer (&st);
}

SdclSafetensors *
sdcl_safetensors_open (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_autofree gchar *base = g_path_get_basename (path);
  g_autoptr (GError) local = NULL;
  /* A map, not a read: a model is gigabytes and most callers copy each
   * tensor to the device once. */
  g_autoptr (GMappedFile) map = g_mapped_file_new (path, FALSE, &local);
  if (!map)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_IO, base, "cannot open: %s", local->message);
      return NULL;
    }
  g_autoptr (GBytes) bytes = g_mapped_file_get_bytes (map);
  SdclSafetensors *st = sdcl_safetensors_open_bytes (bytes, base, error);
  if (st)
    st->mapped = TRUE;
  return st;
}

void
sdcl_safetensors_drop_pages (const SdclSafetensors *st, const gchar *name)
{
  g_return_if_fail (st != NULL && name != NULL);
  const SdclSafetensorsEntry *e = g_hash_table_lookup (st->by_name, name);
  if (!st->mapped || !e || e->n_bytes == 0)
    return;
  const guintptr page = (guintptr) sysconf (_SC_PAGESIZE);
  const guintptr start = ((guintptr) e->data + page - 1) / page * page;
  const guintptr end = ((guintptr) e->data + e->n_bytes) / page * page;
  if (end > start)
    madvise ((gpointer) start, end - start, MADV_DONTNEED);
}

const gchar *
sdcl_safetensors_name (const SdclSafetensors *st)
{
  g_return_val_if_fail (st != NULL, NULL);
  return st->name;
}

guint
sdcl_safetensors_n_tensors (const SdclSafetensors *st)
{
  g_return_val_if_fail (st != NULL, 0);
  return st->n_entries;
}

const SdclSafetensorsEntry *
sdcl_safetensors_nth (const SdclSafetensors *st, guint i)
{
  g_return_val_if_fail (st != NULL && i < st->n_entries, NULL);
  return &st->entries[i];
}

const SdclSafetensorsEntry *
sdcl_safetensors_nth_by_name (const SdclSafetensors *st, guint i)
{
  g_return_val_if_fail (st != NULL && i < st->n_entries, NULL);
  return st->sorted[i];
}

const SdclSafetensorsEntry *
sdcl_safetensors_get (const SdclSafetensors *st, const gchar *name)
{
  g_return_val_if_fail (st != NULL && name != NULL, NULL);
  return g_hash_table_lookup (st->by_name, name);
}

const gchar *
sdcl_safetensors_metadata (const SdclSafetensors *st, const gchar *key)
{
  g_return_val_if_fail (st != NULL && key != NULL, NULL);
  return g_hash_table_lookup (st->metadata, key);
}

GHashTable *
sdcl_safetensors_metadata_table (const SdclSafetensors *st)
{
  g_return_val_if_fail (st != NULL, NULL);
  return st->metadata;
}

/* ---- conversion ------------------------------------------------------------ */

/* Elements are read with memcpy: a file from another writer may leave
 * tensors unaligned, and the format is little-endian whatever the host. */
static guint16
load16 (const guint8 *p, gsize i)
{
  guint16 v;
  memcpy (&v, p + 2 * i, 2);
  return GUINT16_FROM_LE (v);
}

static guint32
load32 (const guint8 *p, gsize i)
{
  guint32 v;
  memcpy (&v, p + 4 * i, 4);
  return GUINT32_FROM_LE (v);
}

static guint64
load64 (const guint8 *p, gsize i)
{
  guint64 v;
  memcpy (&v, p + 8 * i, 8);
  return GUINT64_FROM_LE (v);
}

static gboolean
int_to_float_exact (gint64 v, gfloat *out)
{
  gfloat f = (gfloat) v;
  /* 2^63 itself is out of range, so checking it first keeps the cast back
   * defined. */
  if (f >= 0x1p63f || (gint64) f != v)
    return FALSE;
  *out = f;
  return TRUE;
}

static gboolean
uint_to_float_exact (guint64 v, gfloat *out)
{
  gfloat f = (gfloat) v;
  if (f >= 0x1p64f || (guint64) f != v)
    return FALSE;
  *out = f;
  return TRUE;
}

static const SdclSafetensorsEntry *
lookup (const SdclSafetensors *st, const gchar *name, GError **error)
{
  const SdclSafetensorsEntry *e = g_hash_table_lookup (st->by_name, name);
  if (!e)
    set_error (error, SDCL_SAFETENSORS_ERROR_NOT_FOUND, st->name, "no tensor named '%s'", name);
  return e;
}

gfloat *
sdcl_safetensors_read_f32 (const SdclSafetensors *st, const gchar *name, gint64 *numel_out,
                           GError **error)
{
  g_return_val_if_fail (st != NULL && name != NULL, NULL);
  const SdclSafetensorsEntry *e = lookup (st, name, error);
  if (!e)
    return NULL;
  /* numel * dtype size was checked against the file, so this cannot
   * overflow for dtypes of 4 bytes or more; smaller ones grow at most 4x. */
  gsize n = (gsize) e->numel;
  gsize out_bytes;
  if (!g_size_checked_mul (&out_bytes, MAX (n, 1), sizeof (gfloat)))
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, st->name,
                 "tensor '%s' is too large to convert to float", name);
      return NULL;
    }
  g_autofree gfloat *out = g_malloc (out_bytes);
  const guint8 *src = e->data;
  gsize bad = G_MAXSIZE;

  switch (e->dtype)
    {
    case SDCL_ST_F32:
      for (gsize i = 0; i < n; i++)
        {
          guint32 u = load32 (src, i);
          memcpy (&out[i], &u, 4);
        }
      break;
    case SDCL_ST_F16:
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
      if ((guintptr) src % sizeof (guint16) == 0)
        {
          sdcl_f16_to_f32_n ((const guint16 *) src, out, n);
          break;
        }
#endif
      for (gsize i = 0; i < n; i++)
        out[i] = sdcl_f16_to_f32 (load16 (src, i));
      break;
    case SDCL_ST_BF16:
      for (gsize i = 0; i < n; i++)
        out[i] = sdcl_bf16_to_f32 (load16 (src, i));
      break;
    case SDCL_ST_F64:
      for (gsize i = 0; i < n; i++)
        {
          guint64 u = load64 (src, i);
          gdouble d;
          memcpy (&d, &u, 8);
          /* Narrowing a finite double beyond FLT_MAX is undefined in C;
           * IEEE would give inf, so say so explicitly. */
          if (isfinite (d) && fabs (d) > G_MAXFLOAT)
            out[i] = d > 0 ? INFINITY : -INFINITY;
          else
            out[i] = (gfloat) d;
        }
      break;
    case SDCL_ST_I64:
      for (gsize i = 0; i < n && bad == G_MAXSIZE; i++)
        if (!int_to_float_exact ((gint64) load64 (src, i), &out[i]))
          bad = i;
      break;
    case SDCL_ST_U64:
      for (gsize i = 0; i < n && bad == G_MAXSIZE; i++)
        if (!uint_to_float_exact (load64 (src, i), &out[i]))
          bad = i;
      break;
    case SDCL_ST_I32:
      for (gsize i = 0; i < n && bad == G_MAXSIZE; i++)
        if (!int_to_float_exact ((gint32) load32 (src, i), &out[i]))
          bad = i;
      break;
    case SDCL_ST_U32:
      for (gsize i = 0; i < n && bad == G_MAXSIZE; i++)
        if (!uint_to_float_exact (load32 (src, i), &out[i]))
          bad = i;
      break;
    case SDCL_ST_I16:
      for (gsize i = 0; i < n; i++)
        out[i] = (gint16) load16 (src, i);
      break;
    case SDCL_ST_U16:
      for (gsize i = 0; i < n; i++)
        out[i] = load16 (src, i);
      break;
    case SDCL_ST_I8:
      for (gsize i = 0; i < n; i++)
        out[i] = (gint8) src[i];
      break;
    case SDCL_ST_U8:
      for (gsize i = 0; i < n; i++)
        out[i] = src[i];
      break;
    case SDCL_ST_BOOL:
      for (gsize i = 0; i < n; i++)
        out[i] = src[i] ? 1.0f : 0.0f;
      break;
    }

  if (bad != G_MAXSIZE)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, st->name,
                 "tensor '%s' (%s) holds a value at index %" G_GSIZE_FORMAT " that a float "
                 "cannot represent exactly, so it cannot be read as floats", name,
                 sdcl_safetensors_dtype_name (e->dtype), bad);
      return NULL;
    }
  if (numel_out)
    *numel_out = e->numel;
  return g_steal_pointer (&out);
}

guint16 *
sdcl_safetensors_read_f16 (const SdclSafetensors *st, const gchar *name, gint64 *numel_out,
                           GError **error)
{
  g_return_val_if_fail (st != NULL && name != NULL, NULL);
  const SdclSafetensorsEntry *e = lookup (st, name, error);
  if (!e)
    return NULL;
  gsize n = (gsize) e->numel;
  g_autofree guint16 *out = g_new (guint16, MAX (n, 1));
  if (e->dtype == SDCL_ST_F16)
    {
      for (gsize i = 0; i < n; i++)
        out[i] = load16 (e->data, i);
    }
  else
    {
      g_autofree gfloat *f = sdcl_safetensors_read_f32 (st, name, NULL, error);
      if (!f)
        return NULL;
      for (gsize i = 0; i < n; i++)
        out[i] = sdcl_f32_to_f16 (f[i]);
    }
  if (numel_out)
    *numel_out = e->numel;
  return g_steal_pointer (&out);
}

/* ---- the writer ------------------------------------------------------------ */

typedef struct
{
  gchar               *name;
  SdclSafetensorsDtype dtype;
  guint                n_dims;
  gint64               shape[SDCL_SAFETENSORS_MAX_DIMS];
  GBytes              *data;
} PendingTensor;

struct _SdclSafetensorsWriter
{
  GPtrArray  *tensors;    /* PendingTensor, in the order added */
  GHashTable *names;      /* set of tensor names */
  GHashTable *metadata;   /* key -> value */
};

static void
pending_tensor_free (PendingTensor *t)
{
  g_free (t->name);
  g_bytes_unref (t->data);
  g_free (t);
}

SdclSafetensorsWriter *
sdcl_safetensors_writer_new (void)
{
  SdclSafetensorsWriter *w = g_new0 (SdclSafetensorsWriter, 1);
  w->tensors = g_ptr_array_new_with_free_func ((GDestroyNotify) pending_tensor_free);
  w->names = g_hash_table_new (g_str_hash, g_str_equal);
  w->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return w;
}

void
sdcl_safetensors_writer_free (SdclSafetensorsWriter *w)
{
  if (!w)
    return;
  g_hash_table_unref (w->names);
  g_ptr_array_unref (w->tensors);
  g_hash_table_unref (w->metadata);
  g_free (w);
}

gboolean
sdcl_safetensors_writer_add_bytes (SdclSafetensorsWriter *w, const gchar *name,
                                   SdclSafetensorsDtype dtype, guint n_dims, const gint64 *shape,
                                   GBytes *data, GError **error)
{
  g_return_val_if_fail (w != NULL && name != NULL && data != NULL, FALSE);
  g_return_val_if_fail ((guint) dtype < G_N_ELEMENTS (dtypes), FALSE);
  g_return_val_if_fail (n_dims == 0 || shape != NULL, FALSE);
  const gchar *file = "(writer)";

  if (!*name || strcmp (name, "__metadata__") == 0 || !g_utf8_validate (name, -1, NULL))
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "'%s' cannot name a tensor (empty, reserved or not UTF-8)", name);
      return FALSE;
    }
  if (g_hash_table_contains (w->names, name))
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s' was added twice", name);
      return FALSE;
    }
  if (n_dims > SDCL_SAFETENSORS_MAX_DIMS)
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s' has %u dimensions; at most %d are allowed", name, n_dims,
                 SDCL_SAFETENSORS_MAX_DIMS);
      return FALSE;
    }
  gsize bytes = sdcl_safetensors_dtype_size (dtype);
  gboolean ok = TRUE;
  for (guint i = 0; i < n_dims; i++)
    ok = ok && shape[i] >= 0 && (guint64) shape[i] <= G_MAXSIZE
         && g_size_checked_mul (&bytes, bytes, (gsize) shape[i]);
  if (!ok || bytes != g_bytes_get_size (data))
    {
      g_autofree gchar *s = describe_shape (n_dims, shape);
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, file,
                 "tensor '%s': %" G_GSIZE_FORMAT " bytes of data do not fit shape %s of %s",
                 name, g_bytes_get_size (data), s, sdcl_safetensors_dtype_name (dtype));
      return FALSE;
    }

  PendingTensor *t = g_new0 (PendingTensor, 1);
  t->name = g_strdup (name);
  t->dtype = dtype;
  t->n_dims = n_dims;
  if (n_dims)
    memcpy (t->shape, shape, n_dims * sizeof (gint64));
  t->data = g_bytes_ref (data);
  g_ptr_array_add (w->tensors, t);
  g_hash_table_add (w->names, t->name);
  return TRUE;
}

gboolean
sdcl_safetensors_writer_add (SdclSafetensorsWriter *w, const gchar *name,
                             SdclSafetensorsDtype dtype, guint n_dims, const gint64 *shape,
                             gconstpointer data, gsize n_bytes, GError **error)
{
  g_return_val_if_fail (data != NULL || n_bytes == 0, FALSE);
  g_autoptr (GBytes) bytes = g_bytes_new (data, n_bytes);
  return sdcl_safetensors_writer_add_bytes (w, name, dtype, n_dims, shape, bytes, error);
}

void
sdcl_safetensors_writer_set_metadata (SdclSafetensorsWriter *w, const gchar *key,
                                      const gchar *value)
{
  g_return_if_fail (w != NULL && key != NULL && value != NULL);
  g_hash_table_replace (w->metadata, g_strdup (key), g_strdup (value));
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar *const *) a, *(const gchar *const *) b);
}

/* Largest elements first, then by name, as the reference writer orders
 * them: packed back to back, every tensor stays aligned to its element. */
static gint
compare_for_layout (gconstpointer a, gconstpointer b)
{
  const PendingTensor *x = *(PendingTensor *const *) a, *y = *(PendingTensor *const *) b;
  gsize sx = sdcl_safetensors_dtype_size (x->dtype), sy = sdcl_safetensors_dtype_size (y->dtype);
  if (sx != sy)
    return sx > sy ? -1 : 1;
  return strcmp (x->name, y->name);
}

/* Sorts the tensors into layout order and returns the 8-byte length plus
 * the padded header; *total gets the size of the whole file. */
static GBytes *
build_header (SdclSafetensorsWriter *w, gsize *total, GError **error)
{
  g_ptr_array_sort (w->tensors, compare_for_layout);

  g_autoptr (JsonBuilder) builder = json_builder_new ();
  json_builder_begin_object (builder);
  if (g_hash_table_size (w->metadata) > 0)
    {
      /* Sorted keys make the output depend on content only. */
      g_autofree const gchar **keys =
        (const gchar **) g_hash_table_get_keys_as_array (w->metadata, NULL);
      guint n_keys = g_hash_table_size (w->metadata);
      qsort (keys, n_keys, sizeof (gchar *), compare_strings);
      json_builder_set_member_name (builder, "__metadata__");
      json_builder_begin_object (builder);
      for (guint i = 0; i < n_keys; i++)
        {
          json_builder_set_member_name (builder, keys[i]);
          json_builder_add_string_value (builder, g_hash_table_lookup (w->metadata, keys[i]));
        }
      json_builder_end_object (builder);
    }
  gsize offset = 0;
  for (guint i = 0; i < w->tensors->len; i++)
    {
      const PendingTensor *t = w->tensors->pdata[i];
      gsize end;
      if (!g_size_checked_add (&end, offset, g_bytes_get_size (t->data)))
        {
          set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, "(writer)",
                     "the tensors add up to more bytes than a file can hold");
          return NULL;
        }
      json_builder_set_member_name (builder, t->name);
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "dtype");
      json_builder_add_string_value (builder, sdcl_safetensors_dtype_name (t->dtype));
      json_builder_set_member_name (builder, "shape");
      json_builder_begin_array (builder);
      for (guint d = 0; d < t->n_dims; d++)
        json_builder_add_int_value (builder, t->shape[d]);
      json_builder_end_array (builder);
      json_builder_set_member_name (builder, "data_offsets");
      json_builder_begin_array (builder);
      json_builder_add_int_value (builder, (gint64) offset);
      json_builder_add_int_value (builder, (gint64) end);
      json_builder_end_array (builder);
      json_builder_end_object (builder);
      offset = end;
    }
  json_builder_end_object (builder);

  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  gsize json_len = 0;
  g_autofree gchar *json = json_generator_to_data (gen, &json_len);

  /* Spaces up to a multiple of 8, as the reference pads, so the data
   * section starts 8-aligned in the file and in a map of it. */
  gsize header_len = json_len + (8 - json_len % 8) % 8;
  if (header_len > SDCL_SAFETENSORS_MAX_HEADER
      || !g_size_checked_add (total, 8 + header_len, offset))
    {
      set_error (error, SDCL_SAFETENSORS_ERROR_CORRUPT, "(writer)",
                 "the header would be %" G_GSIZE_FORMAT " bytes, over the 100 MB limit",
                 header_len);
      return NULL;
    }
  guint8 *out = g_malloc (8 + header_len);
  guint64 le = GUINT64_TO_LE ((guint64) header_len);
  memcpy (out, &le, 8);
  memcpy (out + 8, json, json_len);
  memset (out + 8 + json_len, ' ', header_len - json_len);
  return g_bytes_new_take (out, 8 + header_len);
}

GBytes *
sdcl_safetensors_writer_to_bytes (SdclSafetensorsWriter *w, GError **error)
{
  g_return_val_if_fail (w != NULL, NULL);
  gsize total = 0;
  g_autoptr (GBytes) header = build_header (w, &total, error);
  if (!header)
    return NULL;
  if (total > G_MAXUINT)
    {
      /* GByteArray lengths are guint. */
      set_error (error, SDCL_SAFETENSORS_ERROR_IO, "(writer)",
                 "the file would be %" G_GSIZE_FORMAT " bytes, too large to build in "
                 "memory; save it to a file instead", total);
      return NULL;
    }
  GByteArray *out = g_byte_array_sized_new ((guint) total);
  g_byte_array_append (out, g_bytes_get_data (header, NULL), (guint) g_bytes_get_size (header));
  for (guint i = 0; i < w->tensors->len; i++)
    {
      GBytes *d = ((PendingTensor *) w->tensors->pdata[i])->data;
      gsize len = 0;
      gconstpointer p = g_bytes_get_data (d, &len);
      if (len)
        g_byte_array_append (out, p, (guint) len);
    }
  return g_byte_array_free_to_bytes (out);
}

gboolean
sdcl_safetensors_writer_save (SdclSafetensorsWriter *w, const gchar *path, GError **error)
{
  g_return_val_if_fail (w != NULL && path != NULL, FALSE);
  g_autofree gchar *base = g_path_get_basename (path);
  gsize total = 0;
  g_autoptr (GBytes) header = build_header (w, &total, error);
  if (!header)
    return FALSE;

  /* Written beside the target, then renamed over it, so a failed write
   * never leaves a half file where a model was. */
  g_autofree gchar *tmp = g_strdup_printf ("%s.XXXXXX", path);
  gint fd = g_mkstemp_full (tmp, O_WRONLY | O_BINARY, 0666);
  if (fd < 0)
    {
      int saved = errno;
      set_error (error, SDCL_SAFETENSORS_ERROR_IO, base, "cannot create a file beside it: %s",
                 g_strerror (saved));
      return FALSE;
    }
  FILE *f = fdopen (fd, "wb");
  if (!f)
    {
      int saved = errno;
      g_close (fd, NULL);
      g_unlink (tmp);
      set_error (error, SDCL_SAFETENSORS_ERROR_IO, base, "cannot write: %s", g_strerror (saved));
      return FALSE;
    }
  gboolean ok = fwrite (g_bytes_get_data (header, NULL), 1, g_bytes_get_size (header), f)
                == g_bytes_get_size (header);
  for (guint i = 0; ok && i < w->tensors->len; i++)
    {
      GBytes *d = ((PendingTensor *) w->tensors->pdata[i])->data;
      gsize len = 0;
      gconstpointer p = g_bytes_get_data (d, &len);
      ok = len == 0 || fwrite (p, 1, len, f) == len;
    }
  int saved = errno;
  if (fclose (f) != 0 && ok)
    {
      ok = FALSE;
      saved = errno;
    }
  if (ok && g_rename (tmp, path) != 0)
    {
      ok = FALSE;
      saved = errno;
    }
  if (!ok)
    {
      g_unlink (tmp);
      set_error (error, SDCL_SAFETENSORS_ERROR_IO, base, "cannot write: %s", g_strerror (saved));
    }
  return ok;
}

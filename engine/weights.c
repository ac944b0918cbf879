/* weights.c — the weight source of a model: engine names resolved to
 * tensors in the open safetensors files, shapes checked, values uploaded
 * in the storage dtype; and the architecture configs read from diffusers'
 * and transformers' config JSON.
 */
#include "model.h"

#include <string.h>

G_DEFINE_QUARK (sdcl-model-error-quark, sdcl_model_error)

/* ---- the weight source ------------------------------------------------------ */

SdclWeights *
sdcl_weights_new (void)
{
  SdclWeights *w = g_new0 (SdclWeights, 1);
  w->storage = SDCL_DTYPE_F16;
  w->map = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  w->file_names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  w->file_of = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  w->files = g_ptr_array_new_with_free_func ((GDestroyNotify) sdcl_safetensors_free);
  w->problems = g_ptr_array_new_with_free_func (g_free);
  w->dtypes = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, NULL);
  return w;
}

void
sdcl_weights_free (SdclWeights *w)
{
  if (!w)
    return;
  g_hash_table_unref (w->map);
  g_hash_table_unref (w->file_names);
  g_hash_table_unref (w->file_of);
  g_ptr_array_unref (w->files);
  g_ptr_array_unref (w->problems);
  g_hash_table_unref (w->dtypes);
  if (w->requests)
    g_array_unref (w->requests);
  sdcl_name_table_free (w->names);
  g_free (w);
}

static void
clear_request (gpointer p)
{
  g_free (((SdclWeightRequest *) p)->name);
}

void
sdcl_weights_record (SdclWeights *w)
{
  if (w->requests)
    return;
  w->requests = g_array_new (FALSE, TRUE, sizeof (SdclWeightRequest));
  g_array_set_clear_func (w->requests, clear_request);
}

void
sdcl_weights_add_file (SdclWeights *w, SdclSafetensors *st, SdclRenameFunc rename,
                       gpointer user_data)
{
  g_ptr_array_add (w->files, st);
  const guint n = sdcl_safetensors_n_tensors (st);
  for (guint i = 0; i < n; i++)
    {
      const SdclSafetensorsEntry *e = sdcl_safetensors_nth (st, i);
      gchar *name = rename (e->name, user_data);
      if (!name)
        continue;
      g_hash_table_replace (w->file_names, g_strdup (name), g_strdup (e->name));
      g_hash_table_replace (w->file_of, g_strdup (name), st);
      g_hash_table_replace (w->map, name, (gpointer) e);
    }
}

void
sdcl_weights_forget (SdclWeights *w, const gchar *prefix)
{
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, w->map);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (g_str_has_prefix (key, prefix))
      {
        g_hash_table_remove (w->file_names, key);
        g_hash_table_remove (w->file_of, key);
        g_hash_table_iter_remove (&it);
      }
}

gboolean
sdcl_weights_check (SdclWeights *w, const gchar *what, GError **error)
{
  if (w->problems->len == 0)
    return TRUE;
  g_autoptr (GString) s = g_string_new (NULL);
  gboolean missing_only = TRUE;
  const guint shown = MIN (w->problems->len, 8);
  for (guint i = 0; i < shown; i++)
    {
      const gchar *p = g_ptr_array_index (w->problems, i);
      missing_only = missing_only && g_str_has_prefix (p, "missing ");
      g_string_append_printf (s, "%s%s", i ? "; " : "", p);
    }
  if (w->problems->len > shown)
    g_string_append_printf (s, "; and %u more", w->problems->len - shown);
  g_set_error (error, SDCL_MODEL_ERROR,
               missing_only ? SDCL_MODEL_ERROR_MISSING : SDCL_MODEL_ERROR_SHAPE,
               "%s is not a usable model: %s", what, s->str);
  return FALSE;
}

void
sdcl_layer_clear (SdclLayer *l)
{
  g_clear_pointer (&l->w, sdcl_tensor_free);
  g_clear_pointer (&l->b, sdcl_tensor_free);
}

/* The entry for `name` with `n` dims of the given shape (outermost first);
 * alt_dims > 0 also accepts the shape followed by 1s up to alt_dims (a 1×1
 * conv where a linear layer is expected). NULL after recording (dry run)
 * or reporting (error) a problem; *failed tells the two apart. */
static const SdclSafetensorsEntry *
lookup (SdclWeights *w, const gchar *name, guint n, const gint64 *shape, guint alt_dims,
        gboolean *failed, GError **error)
{
  *failed = FALSE;
  if (w->requests)
    {
      SdclWeightRequest r = { g_strdup (name), n, { 1, 1, 1, 1 } };
      memcpy (r.shape, shape, n * sizeof (gint64));
      g_array_append_val (w->requests, r);
    }
  const SdclSafetensorsEntry *e = g_hash_table_lookup (w->map, name);
  g_autofree gchar *problem = NULL;
  if (!e)
    {
      g_autofree gchar *original = w->names ? sdcl_name_to_original (w->names, name) : NULL;
      problem = original ? g_strdup_printf ("missing tensor '%s' (%s)", original, name)
                         : g_strdup_printf ("missing tensor '%s'", name);
    }
  else
    {
      gboolean ok = e->n_dims == n || (alt_dims && e->n_dims == alt_dims);
      for (guint i = 0; ok && i < e->n_dims; i++)
        ok = e->shape[i] == (i < n ? shape[i] : 1);
      const gchar *dt = sdcl_safetensors_dtype_name (e->dtype);
      if (ok && e->dtype != SDCL_ST_F32 && e->dtype != SDCL_ST_F16 && e->dtype != SDCL_ST_BF16)
        {
          const gchar *file = g_hash_table_lookup (w->file_names, name);
          problem = g_strdup_printf ("tensor '%s' is %s; weights must be F32, F16 or BF16",
                                     file, dt);
        }
      else if (!ok)
        {
          g_autoptr (GString) want = g_string_new ("[");
          for (guint i = 0; i < n; i++)
            g_string_append_printf (want, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
          g_string_append_c (want, ']');
          g_autofree gchar *got = sdcl_safetensors_entry_describe (e);
          const gchar *file = g_hash_table_lookup (w->file_names, name);
          problem = g_strdup_printf ("tensor '%s' has shape %s where the architecture needs %s",
                                     file, got, want->str);
        }
      else
        g_hash_table_add (w->dtypes, (gpointer) dt);
    }
  if (!problem)
    return e;
  *failed = TRUE;
  if (w->engine)
    g_set_error_literal (error, SDCL_MODEL_ERROR,
                         e ? SDCL_MODEL_ERROR_SHAPE : SDCL_MODEL_ERROR_MISSING, problem);
  else
    g_ptr_array_add (w->problems, g_steal_pointer (&problem));
  return NULL;
}

/* Tells the kernel the file's pages of `name` are not needed any more: the
 * weight is read once, then lives on the device. */
static void
drop_pages (SdclWeights *w, const gchar *name)
{
  sdcl_safetensors_drop_pages (g_hash_table_lookup (w->file_of, name),
                               g_hash_table_lookup (w->file_names, name));
}

static gfloat *
read_f32 (SdclWeights *w, const gchar *name, GError **error)
{
  gfloat *v = sdcl_safetensors_read_f32 (g_hash_table_lookup (w->file_of, name),
                                         g_hash_table_lookup (w->file_names, name), NULL, error);
  drop_pages (w, name);
  return v;
}

/* The elements of `name` as `rows` rows of a weight to pack
 * (sdcl_linear_weight_new_parts): straight from the file's map where they
 * are F32, F16 or BF16, aligned and little-endian; otherwise converted to
 * floats, which are added to `keep` (freed with it). The caller drops the
 * file's pages once the weight is packed. */
static gboolean
weight_part (SdclWeights *w, const gchar *name, gint64 rows, SdclWeightPart *part,
             GPtrArray *keep, GError **error)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  const SdclSafetensorsEntry *e = sdcl_safetensors_get (g_hash_table_lookup (w->file_of, name),
                                                        g_hash_table_lookup (w->file_names, name));
  if (e && (e->dtype == SDCL_ST_F32 || e->dtype == SDCL_ST_F16 || e->dtype == SDCL_ST_BF16)
      && (guintptr) e->data % sdcl_safetensors_dtype_size (e->dtype) == 0)
    {
      *part = (SdclWeightPart) { e->data, e->dtype == SDCL_ST_F32 ? SDCL_WEIGHT_F32
                                          : e->dtype == SDCL_ST_F16 ? SDCL_WEIGHT_F16
                                                                    : SDCL_WEIGHT_BF16, rows };
      return TRUE;
    }
#endif
  gfloat *v = read_f32 (w, name, error);
  if (!v)
    return FALSE;
  g_ptr_array_add (keep, v);
  *part = (SdclWeightPart) { v, SDCL_WEIGHT_F32, rows };
  return TRUE;
}

/* A [n] f32 vector tensor from `name`. */
static gboolean
vector (SdclWeights *w, SdclTensor **t, const gchar *name, gint n, GError **error)
{
  gboolean failed;
  const gint64 shape[1] = { n };
  if (!lookup (w, name, 1, shape, 0, &failed, error))
    return !failed || !w->engine;
  w->params += n;
  w->device_bytes += n * sizeof (gfloat);
  if (!w->engine)
    return TRUE;
  g_autofree gfloat *v = read_f32 (w, name, error);
  if (!v)
    return FALSE;
  *t = sdcl_tensor_new_4d (w->engine, SDCL_DTYPE_F32, n, 1, 1, 1, error);
  if (!*t || !sdcl_tensor_write_f32 (*t, v, error))
    return FALSE;
  sdcl_tensor_set_name (*t, "%s", name);
  return TRUE;
}

gboolean
sdcl_weights_layer (SdclWeights *w, SdclLayer *l, SdclLayerKind kind, const gchar *prefix,
                    gint out, gint in, gboolean bias, GError **error)
{
  g_autofree gchar *wname = g_strconcat (prefix, "weight", NULL);
  g_autofree gchar *bname = g_strconcat (prefix, "bias", NULL);
  if (kind == SDCL_LAYER_NORM)
    return vector (w, &l->w, wname, out, error) && vector (w, &l->b, bname, out, error);

  const gint k = kind == SDCL_LAYER_CONV3 ? 3 : 1;
  const gint64 shape[4] = { out, in, k, k };
  const guint n = kind == SDCL_LAYER_LINEAR ? 2 : 4;
  gboolean failed;
  if (!lookup (w, wname, n, shape, kind == SDCL_LAYER_LINEAR ? 4 : 0, &failed, error))
    {
      if (failed && w->engine)
        return FALSE;
    }
  else
    {
      const gint64 count = (gint64) out * in * k * k;
      w->params += count;
      w->device_bytes += count * sdcl_dtype_size (w->storage);
      if (w->engine)
        {
          SdclWeightPart part;
          g_autoptr (GPtrArray) floats = g_ptr_array_new_with_free_func (g_free);
          if (!weight_part (w, wname, out, &part, floats, error))
            return FALSE;
          l->w = kind == SDCL_LAYER_LINEAR
                 ? sdcl_linear_weight_new_parts (w->engine, w->storage, &part, 1, in, error)
                 : sdcl_conv2d_weight_new_parts (w->engine, w->storage, &part, out, in, k, k,
                                                 error);
          drop_pages (w, wname);
          if (!l->w)
            return FALSE;
          sdcl_tensor_set_name (l->w, "%s", wname);
        }
    }
  return !bias || vector (w, &l->b, bname, out, error);
}

gboolean
sdcl_weights_fused (SdclWeights *w, SdclLayer *l, const gchar * const *prefixes, guint n,
                    gint out_each, gint in, gboolean bias, GError **error)
{
  const gint64 shape[2] = { out_each, in };
  const gsize each = (gsize) out_each * in;
  SdclWeightPart parts[4];
  g_return_val_if_fail (n <= G_N_ELEMENTS (parts), FALSE);
  g_autoptr (GPtrArray) floats = g_ptr_array_new_with_free_func (g_free);
  g_autofree gfloat *all_b = w->engine && bias ? g_new (gfloat, (gsize) out_each * n) : NULL;
  gboolean complete = TRUE;
  for (guint i = 0; i < n; i++)
    {
      g_autofree gchar *wname = g_strconcat (prefixes[i], "weight", NULL);
      g_autofree gchar *bname = g_strconcat (prefixes[i], "bias", NULL);
      gboolean failed;
      const gint64 bshape[1] = { out_each };
      const gboolean have_w = lookup (w, wname, 2, shape, 4, &failed, error) != NULL;
      if (!have_w && w->engine)
        return FALSE;
      const gboolean have_b = !bias || lookup (w, bname, 1, bshape, 0, &failed, error) != NULL;
      if (!have_b && w->engine)
        return FALSE;
      complete = complete && have_w && have_b;
      w->params += each + (bias ? out_each : 0);
      w->device_bytes += each * sdcl_dtype_size (w->storage) + (bias ? out_each * 4 : 0);
      if (!w->engine)
        continue;
      if (!weight_part (w, wname, out_each, &parts[i], floats, error))
        return FALSE;
      if (bias)
        {
          g_autofree gfloat *b = read_f32 (w, bname, error);
          if (!b)
            return FALSE;
          memcpy (all_b + (gsize) out_each * i, b, out_each * sizeof (gfloat));
        }
    }
  if (!w->engine || !complete)
    return TRUE;
  l->w = sdcl_linear_weight_new_parts (w->engine, w->storage, parts, n, in, error);
  for (guint i = 0; i < n; i++)
    {
      g_autofree gchar *wname = g_strconcat (prefixes[i], "weight", NULL);
      drop_pages (w, wname);
    }
  if (!l->w)
    return FALSE;
  sdcl_tensor_set_name (l->w, "%sweight (fused x%u)", prefixes[0], n);
  if (bias)
    {
      l->b = sdcl_tensor_new_4d (w->engine, SDCL_DTYPE_F32, (gint64) out_each * n, 1, 1, 1, error);
      if (!l->b || !sdcl_tensor_write_f32 (l->b, all_b, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
sdcl_weights_table (SdclWeights *w, SdclTensor **t, const gchar *name, gint rows, gint cols,
                    GError **error)
{
  gboolean failed;
  const gint64 shape[2] = { rows, cols };
  if (!lookup (w, name, 2, shape, 0, &failed, error))
    return !failed || !w->engine;
  const gint64 count = (gint64) rows * cols;
  w->params += count;
  w->device_bytes += count * sdcl_dtype_size (w->storage);
  if (!w->engine)
    return TRUE;
  g_autofree gfloat *v = read_f32 (w, name, error);
  if (!v)
    return FALSE;
  *t = sdcl_tensor_new_4d (w->engine, w->storage, cols, rows, 1, 1, error);
  if (!*t || !sdcl_tensor_write_f32 (*t, v, error))
    return FALSE;
  sdcl_tensor_set_name (*t, "%s", name);
  return TRUE;
}

/* ---- configs from JSON -------------------------------------------------------- */

/* Members read with defaults; a member of the wrong type is a CONFIG error. */
typedef struct
{
  JsonObject  *o;
  const gchar *what;
  GError     **error;
  gboolean     ok;
} Reader;

static JsonNode *
member (Reader *r, const gchar *key)
{
  JsonNode *n = json_object_get_member (r->o, key);
  return n && !JSON_NODE_HOLDS_NULL (n) ? n : NULL;
}

static void
fail (Reader *r, const gchar *key, const gchar *want)
{
  if (r->ok)
    g_set_error (r->error, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_CONFIG,
                 "%s: '%s' is not %s", r->what, key, want);
  r->ok = FALSE;
}

static gint64
get_int (Reader *r, const gchar *key, gint64 def, gint64 lo, gint64 hi)
{
  JsonNode *n = member (r, key);
  if (!n)
    return def;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64
      || json_node_get_int (n) < lo || json_node_get_int (n) > hi)
    {
      g_autofree gchar *want = g_strdup_printf ("an integer in %" G_GINT64_FORMAT "..%"
                                                G_GINT64_FORMAT, lo, hi);
      fail (r, key, want);
      return def;
    }
  return json_node_get_int (n);
}

static gdouble
get_double (Reader *r, const gchar *key, gdouble def)
{
  JsonNode *n = member (r, key);
  if (!n)
    return def;
  if (!JSON_NODE_HOLDS_VALUE (n) || (json_node_get_value_type (n) != G_TYPE_INT64
                                     && json_node_get_value_type (n) != G_TYPE_DOUBLE))
    {
      fail (r, key, "a number");
      return def;
    }
  return json_node_get_double (n);
}

static gboolean
get_bool (Reader *r, const gchar *key, gboolean def)
{
  JsonNode *n = member (r, key);
  if (!n)
    return def;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    {
      fail (r, key, "true or false");
      return def;
    }
  return json_node_get_boolean (n);
}

static const gchar *
get_string (Reader *r, const gchar *key, const gchar *def)
{
  JsonNode *n = member (r, key);
  if (!n)
    return def;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    {
      fail (r, key, "a string");
      return def;
    }
  return json_node_get_string (n);
}

/* An integer array (or a single integer repeated `n` times when
 * `scalar_ok`); returns its length, 0 when absent. */
static guint
get_ints (Reader *r, const gchar *key, gint *out, guint max, gboolean scalar_ok, guint n_scalar,
          gint lo, gint hi)
{
  JsonNode *n = member (r, key);
  if (!n)
    return 0;
  if (scalar_ok && JSON_NODE_HOLDS_VALUE (n))
    {
      const gint v = get_int (r, key, lo, lo, hi);
      for (guint i = 0; i < n_scalar && i < max; i++)
        out[i] = v;
      return n_scalar;
    }
  JsonArray *a = JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
  const guint len = a ? json_array_get_length (a) : 0;
  if (!a || len == 0 || len > max)
    {
      g_autofree gchar *want = g_strdup_printf ("a list of 1 to %u integers", max);
      fail (r, key, want);
      return 0;
    }
  for (guint i = 0; i < len; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64
          || json_node_get_int (e) < lo || json_node_get_int (e) > hi)
        {
          g_autofree gchar *want = g_strdup_printf ("a list of integers in %d..%d", lo, hi);
          fail (r, key, want);
          return 0;
        }
      out[i] = json_node_get_int (e);
    }
  return len;
}

static void
unsupported (Reader *r, const gchar *what)
{
  if (r->ok)
    g_set_error (r->error, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_UNSUPPORTED,
                 "%s: %s is not supported", r->what, what);
  r->ok = FALSE;
}

gboolean
sdcl_clip_config_from_json (JsonObject *o, SdclClipConfig *c, GError **error)
{
  memset (c, 0, sizeof *c);
  Reader r = { o, "text encoder config", error, TRUE };
  c->vocab = get_int (&r, "vocab_size", 49408, 1, 1 << 22);
  c->positions = get_int (&r, "max_position_embeddings", 77, 1, 4096);
  c->width = get_int (&r, "hidden_size", 768, 4, 16384);
  c->layers = get_int (&r, "num_hidden_layers", 12, 1, 256);
  c->heads = get_int (&r, "num_attention_heads", 12, 1, 256);
  c->ff = get_int (&r, "intermediate_size", 3072, 1, 65536);
  c->eps = get_double (&r, "layer_norm_eps", 1e-5);
  const gchar *act = get_string (&r, "hidden_act", "quick_gelu");
  if (r.ok && g_strcmp0 (act, "quick_gelu") != 0 && g_strcmp0 (act, "gelu") != 0)
    unsupported (&r, "the activation in 'hidden_act'");
  c->quick_gelu = g_strcmp0 (act, "quick_gelu") == 0;
  if (r.ok && c->width % c->heads != 0)
    fail (&r, "num_attention_heads", "a divisor of hidden_size");
  return r.ok;
}

gboolean
sdcl_unet_config_from_json (JsonObject *o, SdclUnetConfig *c, GError **error)
{
  memset (c, 0, sizeof *c);
  Reader r = { o, "UNet config", error, TRUE };
  c->in_channels = get_int (&r, "in_channels", 4, 1, 64);
  c->out_channels = get_int (&r, "out_channels", 4, 1, 64);
  c->n_levels = get_ints (&r, "block_out_channels", c->channels, SDCL_MAX_LEVELS, FALSE, 0, 1,
                          16384);
  if (r.ok && c->n_levels == 0)
    fail (&r, "block_out_channels", "present");
  c->layers_per_block = get_int (&r, "layers_per_block", 2, 1, 16);
  c->context_dim = get_int (&r, "cross_attention_dim", 768, 1, 16384);
  c->groups = get_int (&r, "norm_num_groups", 32, 1, 1024);
  c->eps = get_double (&r, "norm_eps", 1e-5);
  c->linear_projection = get_bool (&r, "use_linear_projection", FALSE);
  c->flip_sin_to_cos = get_bool (&r, "flip_sin_to_cos", TRUE);
  c->freq_shift = get_double (&r, "freq_shift", 0);
  c->sample_size = get_int (&r, "sample_size", 64, 1, 4096);

  /* diffusers' SD 1.x configs put the number of heads in
   * attention_head_dim; num_attention_heads wins when set */
  gint heads[SDCL_MAX_LEVELS] = { 8, 8, 8, 8, 8, 8 };
  guint nh = get_ints (&r, "num_attention_heads", heads, SDCL_MAX_LEVELS, TRUE, c->n_levels, 1, 1024);
  if (nh == 0)
    nh = get_ints (&r, "attention_head_dim", heads, SDCL_MAX_LEVELS, TRUE, c->n_levels, 1, 1024);
  if (r.ok && nh != 0 && nh != (guint) c->n_levels)
    fail (&r, "attention_head_dim", "one value or one per level");
  memcpy (c->heads, heads, sizeof heads);

  JsonNode *types = member (&r, "down_block_types");
  JsonArray *ta = types && JSON_NODE_HOLDS_ARRAY (types) ? json_node_get_array (types) : NULL;
  if (r.ok && (!ta || json_array_get_length (ta) != (guint) c->n_levels))
    fail (&r, "down_block_types", "a list as long as block_out_channels");
  for (gint i = 0; r.ok && i < c->n_levels; i++)
    {
      const gchar *t = json_array_get_string_element (ta, i);
      if (g_strcmp0 (t, "CrossAttnDownBlock2D") == 0)
        c->attention[i] = TRUE;
      else if (g_strcmp0 (t, "DownBlock2D") == 0)
        c->attention[i] = FALSE;
      else
        unsupported (&r, "a down block type other than CrossAttnDownBlock2D and DownBlock2D");
    }

  /* what SD 1.x does not have */
  if (member (&r, "addition_embed_type"))
    unsupported (&r, "an added embedding ('addition_embed_type', as SDXL has)");
  if (member (&r, "class_embed_type"))
    unsupported (&r, "a class embedding");
  if (member (&r, "time_cond_proj_dim"))
    unsupported (&r, "a guidance embedding ('time_cond_proj_dim')");
  gint depth[SDCL_MAX_LEVELS] = { 1, 1, 1, 1, 1, 1 };
  const guint nd = get_ints (&r, "transformer_layers_per_block", depth, SDCL_MAX_LEVELS, TRUE,
                             c->n_levels, 1, 64);
  for (guint i = 0; i < nd && i < SDCL_MAX_LEVELS; i++)
    if (depth[i] != 1)
      unsupported (&r, "more than one transformer layer per block");
  if (get_bool (&r, "only_cross_attention", FALSE) || get_bool (&r, "dual_cross_attention", FALSE))
    unsupported (&r, "only_cross_attention or dual_cross_attention");
  if (g_strcmp0 (get_string (&r, "mid_block_type", "UNetMidBlock2DCrossAttn"),
                 "UNetMidBlock2DCrossAttn") != 0)
    unsupported (&r, "a mid block other than UNetMidBlock2DCrossAttn");
  if (g_strcmp0 (get_string (&r, "resnet_time_scale_shift", "default"), "default") != 0)
    unsupported (&r, "resnet_time_scale_shift other than \"default\"");
  if (g_strcmp0 (get_string (&r, "time_embedding_type", "positional"), "positional") != 0)
    unsupported (&r, "a time embedding other than \"positional\"");
  if (get_int (&r, "conv_in_kernel", 3, 1, 7) != 3 || get_int (&r, "conv_out_kernel", 3, 1, 7) != 3)
    unsupported (&r, "conv_in/conv_out kernels other than 3");
  if (get_bool (&r, "center_input_sample", FALSE))
    unsupported (&r, "center_input_sample");
  for (gint i = 0; r.ok && i < c->n_levels; i++)
    if (c->channels[i] % c->groups != 0 || (c->attention[i] && c->channels[i] % c->heads[i] != 0))
      fail (&r, "block_out_channels", "divisible by norm_num_groups and the heads");
  return r.ok;
}

gboolean
sdcl_vae_config_from_json (JsonObject *o, SdclVaeConfig *c, GError **error)
{
  memset (c, 0, sizeof *c);
  Reader r = { o, "VAE config", error, TRUE };
  c->image_channels = get_int (&r, "in_channels", 3, 1, 4);
  if (r.ok && get_int (&r, "out_channels", 3, 1, 4) != c->image_channels)
    unsupported (&r, "different in_channels and out_channels");
  c->n_levels = get_ints (&r, "block_out_channels", c->channels, SDCL_MAX_LEVELS, FALSE, 0, 1,
                          16384);
  if (r.ok && c->n_levels == 0)
    fail (&r, "block_out_channels", "present");
  c->layers_per_block = get_int (&r, "layers_per_block", 2, 1, 16);
  c->latent_channels = get_int (&r, "latent_channels", 4, 1, 64);
  c->groups = get_int (&r, "norm_num_groups", 32, 1, 1024);
  c->scaling_factor = get_double (&r, "scaling_factor", 0.18215);
  c->mid_attention = get_bool (&r, "mid_block_add_attention", TRUE);
  c->sample_size = get_int (&r, "sample_size", 512, 1, 16384);
  if (member (&r, "shift_factor") && get_double (&r, "shift_factor", 0) != 0)
    unsupported (&r, "a latent shift_factor");
  if (!get_bool (&r, "use_quant_conv", TRUE) || !get_bool (&r, "use_post_quant_conv", TRUE))
    unsupported (&r, "a VAE without quant_conv");
  for (gint i = 0; r.ok && i < c->n_levels; i++)
    if (c->channels[i] % c->groups != 0)
      fail (&r, "block_out_channels", "divisible by norm_num_groups");
  return r.ok;
}

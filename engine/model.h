/* model.h — SD 1.x model parts on the engine (internal): architecture
 * configs read from a file's metadata, a diffusers config.json or the
 * tensor shapes; the weight source that resolves the engine's (diffusers)
 * tensor names in whatever file layout was opened; and the text encoder,
 * UNet and VAE written in terms of ops.
 */
#pragma once

#include "ops.h"
#include "safetensors.h"

#include <json-glib/json-glib.h>

#define SDCL_MAX_LEVELS 6

/* ---- architecture ------------------------------------------------------------ */

/* transformers' CLIPTextConfig (CLIP ViT-L/14 text model for SD 1.x). */
typedef struct
{
  gint     vocab;              /* 49408 */
  gint     positions;          /* 77 */
  gint     width;              /* 768 */
  gint     layers;             /* 12 */
  gint     heads;              /* 12 */
  gint     ff;                 /* 3072 */
  gboolean quick_gelu;         /* CLIP's x·σ(1.702x); FALSE: exact GELU (OpenCLIP) */
  gfloat   eps;                /* layer norm, 1e-5 */
} SdclClipConfig;

/* diffusers' UNet2DConditionModel, the SD 1.x subset. */
typedef struct
{
  gint     in_channels;        /* 4, or 9 for inpainting models */
  gint     out_channels;       /* 4 */
  gint     n_levels;           /* 4 */
  gint     channels[SDCL_MAX_LEVELS];   /* 320, 640, 1280, 1280 */
  gboolean attention[SDCL_MAX_LEVELS];  /* level has cross-attention blocks */
  gint     heads[SDCL_MAX_LEVELS];      /* 8 per level for SD 1.x */
  gint     layers_per_block;   /* 2 */
  gint     context_dim;        /* 768 */
  gint     groups;             /* 32 */
  gfloat   eps;                /* resnet group norm, 1e-5 */
  gboolean linear_projection;  /* proj_in/out stored as linear (SD 2.x) or 1×1 conv */
  gboolean flip_sin_to_cos;    /* TRUE */
  gfloat   freq_shift;         /* 0 */
  gint     sample_size;        /* native latent size, 64 */
} SdclUnetConfig;

/* diffusers' AutoencoderKL. */
typedef struct
{
  gint     image_channels;     /* 3 */
  gint     n_levels;           /* 4: the latent is 2^(n_levels-1) times smaller */
  gint     channels[SDCL_MAX_LEVELS];   /* 128, 256, 512, 512 */
  gint     layers_per_block;   /* 2 (the decoder has one more per level) */
  gint     latent_channels;    /* 4 */
  gint     groups;             /* 32 */
  gfloat   scaling_factor;     /* 0.18215 */
  gboolean mid_attention;      /* TRUE */
  gint     sample_size;        /* native image size, 512 */
} SdclVaeConfig;

gboolean sdcl_clip_config_from_json (JsonObject *o, SdclClipConfig *c, GError **error);
gboolean sdcl_unet_config_from_json (JsonObject *o, SdclUnetConfig *c, GError **error);
gboolean sdcl_vae_config_from_json (JsonObject *o, SdclVaeConfig *c, GError **error);

/* ---- tensor names --------------------------------------------------------------- */

/* The one table between the original single-file layout and the engine's
 * names (diffusers' names with a part prefix: "unet.", "vae.",
 * "text_encoder."). Block numbers depend on the architecture, so the
 * table is made for a pair of configs. `vae_prefix` is "first_stage_model."
 * for a whole checkpoint and "" for a standalone VAE file. */
typedef struct _SdclNameTable SdclNameTable;

SdclNameTable *sdcl_name_table_new (const SdclUnetConfig *unet, const SdclVaeConfig *vae,
                                    const gchar *vae_prefix);
void sdcl_name_table_free (SdclNameTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclNameTable, sdcl_name_table_free)

/* Original name -> engine name (g_free), or NULL for a tensor the engine
 * does not use (EMA copies, position_ids, other models' parts). */
gchar *sdcl_name_from_original (const SdclNameTable *table, const gchar *name);
/* Engine name -> original name (g_free), or NULL. */
gchar *sdcl_name_to_original (const SdclNameTable *table, const gchar *name);

/* ---- weights -------------------------------------------------------------------- */

/* Resolves engine names to tensors in the open files, uploads them, and
 * checks shapes. A dry run (engine NULL) uploads nothing: it collects every
 * missing or mis-shaped tensor and counts parameters, so a model is checked
 * whole before a byte goes to the device, and `sdcl info` costs no device. */
typedef struct
{
  SdclEngine *engine;          /* NULL: dry run */
  SdclDtype   storage;         /* weights' device dtype */
  GHashTable *map;             /* engine name -> const SdclSafetensorsEntry * */
  GHashTable *file_names;      /* engine name -> name in the file, for messages */
  GHashTable *file_of;         /* engine name -> SdclSafetensors * */
  GPtrArray  *files;           /* SdclSafetensors *, owned */
  GPtrArray  *problems;        /* messages, dry run */
  guint64     params;          /* parameters requested */
  guint64     device_bytes;    /* device bytes they take */
  GHashTable *dtypes;          /* file dtype name -> count, for `sdcl info` */
  GArray     *requests;        /* SdclWeightRequest, when recording (tools) */
  SdclNameTable *names;        /* single files: names missing tensors as the file would */
} SdclWeights;

/* One tensor an architecture asks for: its engine name and shape as
 * PyTorch stores it (outermost first). */
typedef struct
{
  gchar  *name;
  guint   n_dims;
  gint64  shape[4];
} SdclWeightRequest;

/* From now on, every tensor the loaders ask for is recorded in
 * w->requests (in a dry run, this lists a whole architecture). */
void sdcl_weights_record (SdclWeights *w);

SdclWeights *sdcl_weights_new (void);
void sdcl_weights_free (SdclWeights *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclWeights, sdcl_weights_free)

/* Takes ownership of `st`; its tensors are added under the names
 * `rename` gives (NULL: ignored). A later file's tensor replaces an
 * earlier one of the same engine name. */
typedef gchar *(*SdclRenameFunc) (const gchar *name, gpointer user_data);
void sdcl_weights_add_file (SdclWeights *w, SdclSafetensors *st, SdclRenameFunc rename,
                            gpointer user_data);
/* Drops every tensor whose engine name starts with `prefix`. */
void sdcl_weights_forget (SdclWeights *w, const gchar *prefix);

/* Dry run finished: fails with SDCL_MODEL_ERROR_MISSING / _SHAPE naming
 * the first problems when there were any. */
gboolean sdcl_weights_check (SdclWeights *w, const gchar *what, GError **error);

/* A linear (or 1×1 conv) layer: weight [out, in] (also [out, in, 1, 1])
 * and, when bias, [out]. A conv: weight [out, in, k, k]. */
typedef struct
{
  SdclTensor *w;
  SdclTensor *b;
} SdclLayer;

void sdcl_layer_clear (SdclLayer *l);

typedef enum
{
  SDCL_LAYER_LINEAR,
  SDCL_LAYER_CONV3,
  SDCL_LAYER_CONV1,
  SDCL_LAYER_NORM,             /* w and b are [out] vectors (gamma, beta) */
} SdclLayerKind;

/* Loads `prefix`.weight / `prefix`.bias. Returns FALSE only on a device
 * error; in a dry run, problems are recorded and the layer stays empty. */
gboolean sdcl_weights_layer (SdclWeights *w, SdclLayer *l, SdclLayerKind kind, const gchar *prefix,
                             gint out, gint in, gboolean bias, GError **error);
/* Several linear layers with the same input stacked into one (q, k, v ->
 * qkv): outs[i] rows each from prefixes[i]. */
gboolean sdcl_weights_fused (SdclWeights *w, SdclLayer *l, const gchar * const *prefixes,
                             guint n, gint out_each, gint in, gboolean bias, GError **error);
/* A raw [rows, cols] table (embeddings), stored as [cols, rows] in the
 * storage dtype. */
gboolean sdcl_weights_table (SdclWeights *w, SdclTensor **t, const gchar *name, gint rows,
                             gint cols, GError **error);

/* ---- shared blocks (unet.c) ---------------------------------------------------- */

/* diffusers' ResnetBlock2D: norm1+silu, conv1, + time projection, norm2+silu,
 * conv2, + (1×1 shortcut of) the input. */
typedef struct
{
  gint      in, out, groups;
  gfloat    eps;
  SdclLayer norm1, conv1;      /* [in], [out, in, 3, 3] */
  SdclLayer time;              /* [out, time_dim], empty in the VAE */
  SdclLayer norm2, conv2;      /* [out], [out, out, 3, 3] */
  SdclLayer shortcut;          /* [out, in, 1, 1] when in != out */
} SdclResBlock;

gboolean sdcl_resblock_load (SdclWeights *w, SdclResBlock *r, const gchar *prefix, gint in,
                             gint out, gint time_dim, gint groups, gfloat eps, GError **error);
void sdcl_resblock_clear (SdclResBlock *r);
/* time: silu(temb) [time_dim, B] or NULL. */
SdclTensor *sdcl_resblock_forward (const SdclResBlock *r, const SdclTensor *x,
                                   const SdclTensor *time, GError **error);

/* [W, H, C, B] -> [C, W·H, B] (a view). */
SdclTensor *sdcl_image_to_tokens (const SdclTensor *x, GError **error);
/* residual [W, H, C, B] + tokens [C, W·H, B], in image layout. */
SdclTensor *sdcl_add_tokens_to_image (const SdclTensor *residual, const SdclTensor *tokens,
                                      GError **error);
/* *x = *x + fx; fx is consumed (NULL: FALSE, the error already set). */
gboolean sdcl_residual (SdclTensor **x, SdclTensor *fx, GError **error);

/* ---- model parts ------------------------------------------------------------- */

typedef struct _SdclClip SdclClip;
typedef struct _SdclUnet SdclUnet;
typedef struct _SdclVae  SdclVae;

/* `prefix` is the part's name prefix ("text_encoder."). */
SdclClip *sdcl_clip_load (SdclWeights *w, const SdclClipConfig *c, const gchar *prefix,
                          GError **error);
void sdcl_clip_free (SdclClip *clip);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclClip, sdcl_clip_free)

/* ids [batch][positions] -> hidden states [width, positions, batch] after
 * the final layer norm. clip_skip 1 uses the last layer, N the output of
 * the layer N-1 before it (sd-webui's "clip skip"). */
SdclTensor *sdcl_clip_forward (SdclClip *clip, const gint32 *ids, gint batch, gint clip_skip,
                               GError **error);

/* A prompt cut into chunks of `positions` tokens (start, 75 tokens, end,
 * padding), each encoded on its own and concatenated: [width, positions ·
 * n_chunks, 1]. weights (NULL: all 1) are sd-webui's emphasis per token:
 * the hidden states are scaled by them and each chunk's mean restored. */
SdclTensor *sdcl_clip_encode_chunks (SdclClip *clip, const gint32 *ids, const gfloat *weights,
                                     gint n_chunks, gint clip_skip, GError **error);

SdclUnet *sdcl_unet_load (SdclWeights *w, const SdclUnetConfig *c, const gchar *prefix,
                          GError **error);
void sdcl_unet_free (SdclUnet *unet);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclUnet, sdcl_unet_free)

/* x [W, H, in_channels, B] latents, timesteps [B] host values, context
 * [context_dim, S, k·B] (S any multiple of tokens) -> [W, H, out_channels,
 * k·B]. With k > 1 the input meets k texts, as CFG's two halves share
 * their latents (k = 2, context [negative, positive]): the layers before
 * the first cross-attention run once on the B inputs, then their output is
 * repeated ([x0 .. xB-1] k times) for the rest. Any W and H: odd sizes are
 * rounded up on the way down and met on the way up, as diffusers does. */
SdclTensor *sdcl_unet_forward (SdclUnet *unet, const SdclTensor *x, const gfloat *timesteps,
                               const SdclTensor *context, GError **error);

/* The text's keys and values for every cross-attention of the UNet
 * (context [context_dim, S, B] projected by each block's k and v), made
 * once for all the steps that share the context instead of on every
 * step; sdcl_unet_forward makes and drops them each call. */
typedef struct _SdclUnetText SdclUnetText;
SdclUnetText *sdcl_unet_text_new (SdclUnet *unet, const SdclTensor *context, GError **error);
void sdcl_unet_text_free (SdclUnetText *text);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclUnetText, sdcl_unet_text_free)
/* sdcl_unet_forward with the text projected by sdcl_unet_text_new for this
 * UNet and a batch that is a multiple of the input's. */
SdclTensor *sdcl_unet_forward_text (SdclUnet *unet, const SdclTensor *x, const gfloat *timesteps,
                                    const SdclUnetText *text, GError **error);

/* Per-block wall times of each forward (benchmarks): the device is
 * waited for after every block, so only set this when measuring. */
typedef struct
{
  const gchar *block;     /* "down", "mid", "up", ... */
  gint         level;     /* -1 where it has none */
  gdouble      seconds;
} SdclBlockTime;

void sdcl_unet_time_blocks (SdclUnet *unet, GArray *times);

/* The VAE's halves, whose weights load and release on their own. */
typedef enum
{
  SDCL_VAE_ENCODER = 1 << 0,
  SDCL_VAE_DECODER = 1 << 1,
} SdclVaeParts;

/* A VAE with the weights of `parts` (0: none yet) uploaded. */
SdclVae *sdcl_vae_load (SdclWeights *w, const SdclVaeConfig *c, const gchar *prefix,
                        SdclVaeParts parts, GError **error);
/* Loads those of `parts` it lacks; on failure, leaves them out. */
gboolean sdcl_vae_load_parts (SdclVae *vae, SdclWeights *w, const gchar *prefix,
                              SdclVaeParts parts, GError **error);
void sdcl_vae_release_parts (SdclVae *vae, SdclVaeParts parts);
SdclVaeParts sdcl_vae_parts (SdclVae *vae);
void sdcl_vae_free (SdclVae *vae);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclVae, sdcl_vae_free)

const SdclVaeConfig *sdcl_vae_config (SdclVae *vae);

/* image [W, H, 3, B] in [-1, 1] -> mean and log-variance [W/f, H/f, latent, B]
 * (unscaled); either output may be NULL. W and H multiples of f. */
gboolean sdcl_vae_encode (SdclVae *vae, const SdclTensor *image, SdclTensor **mean,
                          SdclTensor **logvar, GError **error);
/* latent [w, h, latent, B] (unscaled) -> image [w·f, h·f, 3, B]. */
SdclTensor *sdcl_vae_decode (SdclVae *vae, const SdclTensor *latent, GError **error);

/* Tiled versions: the input is cut into overlapping tiles of at most
 * `tile` latent pixels a side (0: the VAE's choice), each run on its own,
 * and the outputs blended linearly across the overlap. */
SdclTensor *sdcl_vae_decode_tiled (SdclVae *vae, const SdclTensor *latent, gint tile,
                                   gint overlap, GError **error);
gboolean sdcl_vae_encode_tiled (SdclVae *vae, const SdclTensor *image, gint tile, gint overlap,
                                SdclTensor **mean, SdclTensor **logvar, GError **error);
/* (logvar, when asked for, is set only where the image fits one tile; else NULL) */

/* ---- the loaded model's parts (model.c) ------------------------------------------- */

SdclEngine *sdcl_model_engine (SdclModel *model);

typedef enum
{
  SDCL_PART_TEXT_ENCODER = 1 << 0,
  SDCL_PART_UNET         = 1 << 1,
  SDCL_PART_VAE_ENCODER  = 1 << 2,
  SDCL_PART_VAE_DECODER  = 1 << 3,
} SdclModelParts;

/* Uploads those of `parts` that are not on the device (SDCL_MODEL_ON_DEMAND,
 * or after sdcl_model_done), from the model's files as they are now. */
gboolean sdcl_model_acquire (SdclModel *model, SdclModelParts parts, GError **error);
/* A request is done with `parts`: under SDCL_MODEL_ON_DEMAND they are
 * released, with the engine's idle buffers; under SDCL_MODEL_RESIDENT
 * nothing happens. */
void sdcl_model_done (SdclModel *model, SdclModelParts parts);

/* The parts as they are now: the text encoder and the UNet are NULL while
 * not on the device, the VAE is there with the halves it has. */
SdclClip *sdcl_model_clip (SdclModel *model);
SdclUnet *sdcl_model_unet (SdclModel *model);
SdclVae  *sdcl_model_vae (SdclModel *model);
const SdclClipConfig *sdcl_model_clip_config (SdclModel *model);
const SdclUnetConfig *sdcl_model_unet_config (SdclModel *model);
/* The scheduler config JSON that came with the model, or NULL. */
const gchar *sdcl_model_scheduler_json (SdclModel *model);
/* Replaces it (NULL: SD 1.5's defaults), e.g. for a v-prediction model
 * that shipped without one. */
void sdcl_model_set_scheduler_json (SdclModel *model, const gchar *json);

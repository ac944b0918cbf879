/* sdcl.h — public API of the sdcl engine: Stable-Diffusion-class models on
 * any OpenCL device. The plug-in and the CLI include this header only; it
 * pulls in no OpenCL, GIMP or GTK header.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* ---- errors ------------------------------------------------------------ */

/* Runtime: devices, programs, memory. */
#define SDCL_RUNTIME_ERROR (sdcl_runtime_error_quark ())
GQuark sdcl_runtime_error_quark (void);

typedef enum
{
  SDCL_RUNTIME_ERROR_NO_DEVICE,      /* no OpenCL platform or no device matches */
  SDCL_RUNTIME_ERROR_OPENCL,         /* an OpenCL call failed */
  SDCL_RUNTIME_ERROR_BUILD,          /* a kernel program failed to compile */
  SDCL_RUNTIME_ERROR_OUT_OF_MEMORY,  /* device memory exhausted or over the limits */
} SdclRuntimeError;

/* safetensors files. */
#define SDCL_SAFETENSORS_ERROR (sdcl_safetensors_error_quark ())
GQuark sdcl_safetensors_error_quark (void);

typedef enum
{
  SDCL_SAFETENSORS_ERROR_IO,         /* cannot open, map or write the file */
  SDCL_SAFETENSORS_ERROR_CORRUPT,    /* the file contradicts itself or is truncated */
  SDCL_SAFETENSORS_ERROR_UNSUPPORTED,/* valid, but a dtype we do not handle */
  SDCL_SAFETENSORS_ERROR_NOT_FOUND,  /* a requested tensor is absent */
} SdclSafetensorsError;

/* Tensor operations: shapes and arguments. */
#define SDCL_OPS_ERROR (sdcl_ops_error_quark ())
GQuark sdcl_ops_error_quark (void);

typedef enum
{
  SDCL_OPS_ERROR_SHAPE,              /* operand shapes do not fit together */
  SDCL_OPS_ERROR_DTYPE,              /* an operand has a dtype the op does not take */
  SDCL_OPS_ERROR_ARGUMENT,           /* a parameter is out of range */
} SdclOpsError;

/* Model files: layouts, architectures, tensors. */
#define SDCL_MODEL_ERROR (sdcl_model_error_quark ())
GQuark sdcl_model_error_quark (void);

typedef enum
{
  SDCL_MODEL_ERROR_NOT_FOUND,        /* no such file or folder, or a part of a folder is absent */
  SDCL_MODEL_ERROR_UNSUPPORTED,      /* a format or architecture we do not run (.ckpt, SDXL, SD 2.x) */
  SDCL_MODEL_ERROR_CONFIG,           /* an architecture config that cannot be right */
  SDCL_MODEL_ERROR_MISSING,          /* tensors the architecture needs are absent */
  SDCL_MODEL_ERROR_SHAPE,            /* tensors with the wrong shape or dtype */
} SdclModelError;

/* Prompts: text and emphasis syntax. */
#define SDCL_PROMPT_ERROR (sdcl_prompt_error_quark ())
GQuark sdcl_prompt_error_quark (void);

typedef enum
{
  SDCL_PROMPT_ERROR_INVALID_TEXT,    /* not valid UTF-8 */
  SDCL_PROMPT_ERROR_TOO_LONG,        /* more text than any model takes */
  SDCL_PROMPT_ERROR_VOCABULARY,      /* the built-in vocabulary could not be read */
} SdclPromptError;

/* Generation requests: settings that cannot be run. */
#define SDCL_REQUEST_ERROR (sdcl_request_error_quark ())
GQuark sdcl_request_error_quark (void);

typedef enum
{
  SDCL_REQUEST_ERROR_INVALID,        /* a setting out of range, or missing for the mode */
  SDCL_REQUEST_ERROR_SIZE,           /* width/height not a multiple of 8, or not the init image's */
  SDCL_REQUEST_ERROR_EMPTY_MASK,     /* inpainting with a mask that selects nothing */
} SdclRequestError;

/* ---- devices and the engine --------------------------------------------- */

typedef struct
{
  guint   platform_index;
  guint   device_index;              /* index across all platforms, as `sdcl devices` lists it */
  gchar  *platform_name;
  gchar  *name;
  gchar  *vendor;
  gchar  *driver_version;
  gchar  *opencl_c_version;
  gboolean is_gpu;
  guint64 global_mem_bytes;
  guint64 max_alloc_bytes;
  guint64 local_mem_bytes;
  guint   compute_units;
  gsize   max_work_group_size;
  gboolean has_fp16;                 /* cl_khr_fp16: half arithmetic in kernels */
  gboolean has_subgroups;
  guint   float_vector_width;        /* CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT (16 on AVX-512) */
} SdclDeviceInfo;

void sdcl_device_info_free (SdclDeviceInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclDeviceInfo, sdcl_device_info_free)

/* Every OpenCL device on every platform, in the order `sdcl devices` shows.
 * Returns an empty array (not an error) when there is no device. */
GPtrArray *sdcl_list_devices (GError **error);

typedef struct _SdclEngine SdclEngine;

/* Opens a device: `spec` is NULL or "" (best device: a GPU before a CPU),
 * a decimal index from sdcl_list_devices(), or a case-insensitive substring
 * of the device or platform name. The environment variable SDCL_DEVICE,
 * when set, takes precedence over `spec`. */
SdclEngine *sdcl_engine_new (const gchar *spec, GError **error);
void        sdcl_engine_free (SdclEngine *engine);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclEngine, sdcl_engine_free)

const SdclDeviceInfo *sdcl_engine_device (SdclEngine *engine);

/* Compiles (or loads from the on-disk cache) every kernel program now,
 * instead of on first use. */
gboolean sdcl_engine_build_all (SdclEngine *engine, GError **error);

/* Waits for all queued work; also flushes the kernel profile. */
gboolean sdcl_engine_finish (SdclEngine *engine, GError **error);

/* Device memory in use by this engine right now and at its peak, in bytes. */
guint64 sdcl_engine_memory_in_use (SdclEngine *engine);
guint64 sdcl_engine_memory_peak (SdclEngine *engine);
void    sdcl_engine_reset_peak (SdclEngine *engine);

/* Returns every pooled, currently unused activation buffer to the device. */
void    sdcl_engine_trim (SdclEngine *engine);

/* ---- models -------------------------------------------------------------- */

typedef enum
{
  SDCL_MODEL_KIND_SD1,               /* SD 1.x: 4-channel UNet, CLIP ViT-L/14 text */
  SDCL_MODEL_KIND_SD1_INPAINT,       /* SD 1.x inpainting: 9-channel UNet */
} SdclModelKind;

/* What a model file holds, read without a device (`sdcl info`). */
typedef struct
{
  gchar        *path;
  SdclModelKind kind;
  const gchar  *kind_name;           /* "SD 1.x", "SD 1.x inpainting" */
  const gchar  *layout;              /* "single file" or "diffusers folder" */
  gchar        *file_dtypes;         /* dtypes of the weights as stored: "F16", "F32, BF16" */
  gchar        *vae_path;            /* the replacement VAE, or NULL */
  guint64       text_encoder_params;
  guint64       unet_params;
  guint64       vae_params;
  guint64       weight_bytes;        /* on the device, weights as f16 */
  guint64       work_bytes;          /* activation memory estimate for one image at native size */
  guint64       part_peak_bytes;     /* on the device at once when loaded SDCL_MODEL_ON_DEMAND
                                        (the CLI, the plug-in): the largest part and its work */
  guint         native_size;         /* image side the model was trained at (pixels) */
  guint         latent_factor;       /* image pixels per latent pixel (8) */
  guint         latent_channels;
  guint         unet_in_channels;
  guint         text_width;
  guint         text_layers;
} SdclModelInfo;

void sdcl_model_info_free (SdclModelInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclModelInfo, sdcl_model_info_free)

/* Opens a model: a single `.safetensors` file in the original layout or a
 * diffusers folder. `vae_path` (NULL: none) is a VAE file or folder that
 * replaces the model's own. Every tensor the architecture needs is checked
 * (names, shapes, dtypes) before anything else. */
SdclModelInfo *sdcl_model_inspect (const gchar *path, const gchar *vae_path, GError **error);

typedef struct _SdclModel SdclModel;

/* How long a loaded model keeps its weights on the device. */
typedef enum
{
  /* every part from load to free: a request starts at once */
  SDCL_MODEL_RESIDENT,
  /* each part (text encoder, UNet, VAE encoder, VAE decoder) is uploaded
   * when a request needs it and released when the request is done with
   * it, so memory peaks at the largest part and its work instead of at
   * all the weights together; a later request reads the files again. For
   * a process that runs one request: the CLI, the plug-in. */
  SDCL_MODEL_ON_DEMAND,
} SdclModelPolicy;

/* Inspects, then uploads the weights to the engine's device (f16). The
 * files are unmapped before this returns. */
SdclModel *sdcl_model_load (SdclEngine *engine, const gchar *path, const gchar *vae_path,
                            GError **error);
/* The same with a policy; under SDCL_MODEL_ON_DEMAND only the checks are
 * made here, and the files are opened again when a part is needed. */
SdclModel *sdcl_model_load_with_policy (SdclEngine *engine, const gchar *path,
                                        const gchar *vae_path, SdclModelPolicy policy,
                                        GError **error);
void sdcl_model_free (SdclModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclModel, sdcl_model_free)

const SdclModelInfo *sdcl_model_get_info (SdclModel *model);

/* ---- generation ---------------------------------------------------------- */

typedef enum
{
  SDCL_SAMPLER_EULER,                /* Euler (k-diffusion), diffusers' EulerDiscreteScheduler */
  SDCL_SAMPLER_EULER_A,              /* Euler ancestral: fresh noise every step */
  SDCL_SAMPLER_DDIM,                 /* DDIM; eta 0 is deterministic, eta > 0 adds noise */
  SDCL_SAMPLER_DPMPP_2M,             /* DPM++ 2M (DPMSolverMultistep, order 2, dpmsolver++) */
  SDCL_SAMPLER_LCM,                  /* latent consistency models (few steps, cfg ~1-2) */
} SdclSampler;

typedef enum
{
  SDCL_SCHEDULE_DEFAULT,             /* timesteps as the model's scheduler config spaces them */
  SDCL_SCHEDULE_KARRAS,              /* Karras et al. sigmas (Euler, Euler a, DPM++ 2M) */
} SdclSchedule;

/* Parses a sampler name: the engine's ("euler", "euler_a", "ddim", "dpmpp_2m",
 * "dpmpp_2m_karras", "lcm", "euler_karras", "euler_a_karras") or sd-webui's
 * ("Euler a", "DPM++ 2M Karras", ...), case-insensitive. */
gboolean     sdcl_sampler_from_name (const gchar *name, SdclSampler *sampler,
                                     SdclSchedule *schedule, GError **error);
/* The name sd-webui shows ("Euler a", "DPM++ 2M"); the schedule is separate. */
const gchar *sdcl_sampler_display_name (SdclSampler sampler);
/* The engine's name ("euler_a", "dpmpp_2m_karras"). */
const gchar *sdcl_sampler_name (SdclSampler sampler, SdclSchedule schedule);

typedef enum
{
  SDCL_MODE_TXT2IMG,                 /* from noise */
  SDCL_MODE_IMG2IMG,                 /* from init_image, partly noised by strength */
  SDCL_MODE_INPAINT,                 /* repaint where mask > 0, keep the rest exactly */
} SdclMode;

/* One request; sdcl_request_init() fills in the defaults. Nothing here is
 * kept after sdcl_generate() returns. */
typedef struct
{
  SdclMode      mode;
  const gchar  *prompt;              /* sd-webui syntax: (emphasis:1.2), [less], BREAK */
  const gchar  *negative_prompt;     /* NULL or "": none (the empty prompt) */
  guint         width, height;       /* multiples of 8; 0: the init image's size, or the
                                        model's native size for txt2img */
  guint         steps;               /* sampling steps, 1-1000 (default 20) */
  gdouble       cfg_scale;           /* classifier-free guidance (7.5), 0-100; 1 or less
                                        uses the prompt alone (no unconditional pass) */
  SdclSampler   sampler;             /* default Euler a */
  SdclSchedule  schedule;
  gdouble       eta;                 /* DDIM's eta (0) */
  gint64        seed;                /* 0 to 2^32-1; -1: a random one (reported per image) */
  guint         batch_count;         /* images, one after another, seeds seed, seed+1, ... (1) */
  guint         clip_skip;           /* 1: the text encoder's last layer; 2: the one before */
  gdouble       strength;            /* img2img and inpaint: 0 returns the image, 1 ignores
                                        it (0.75) */
  const guint8 *init_image;          /* img2img and inpaint: RGB, init_width x init_height */
  guint         init_width, init_height;
  const guint8 *mask;                /* inpaint: one byte per init_image pixel; 255 repaints,
                                        0 keeps, between blends (soft edges) */
  guint         preview_size;        /* 0: no previews; else the preview's longest side */
} SdclRequest;

void sdcl_request_init (SdclRequest *request);

/* What sdcl_generate() tells its progress function once per sampling step.
 * The preview, when asked for, is a cheap linear latent -> RGB estimate of
 * the current denoised image; it lives only during the call. */
typedef struct
{
  guint         image, images;       /* this image of the batch (0-based), how many */
  guint         step, steps;         /* steps done for this image (1..steps), of how many */
  gdouble       elapsed;             /* seconds since sdcl_generate() started */
  guint32       seed;                /* this image's seed */
  const guint8 *preview;             /* RGB or NULL */
  guint         preview_width, preview_height;
} SdclProgress;

/* Returns FALSE to cancel: sdcl_generate() then stops within one step,
 * frees everything and fails with G_IO_ERROR_CANCELLED. */
typedef gboolean (*SdclProgressFunc) (const SdclProgress *progress, gpointer user_data);

typedef struct
{
  guint    width, height;
  guint8  *pixels;                   /* RGB, width x height x 3 */
  guint32  seed;
  gchar   *parameters;               /* the settings as sd-webui writes them in a PNG's
                                        "parameters" text chunk */
} SdclImage;

void sdcl_image_free (SdclImage *image);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclImage, sdcl_image_free)

/* Runs a request; returns batch_count SdclImage (free with
 * g_ptr_array_unref). On error nothing is returned and nothing is kept. */
GPtrArray *sdcl_generate (SdclModel *model, const SdclRequest *request,
                          SdclProgressFunc progress, gpointer user_data, GError **error);

/* ---- images ------------------------------------------------------------ */

/* Writes 8-bit RGB (channels 3) or RGBA (4) pixels as PNG, with optional
 * tEXt chunks given as a NULL-terminated key, value, key, value... list.
 * The file appears whole or not at all (written beside, then renamed). */
gboolean sdcl_png_write (const gchar *path, guint width, guint height, guint channels,
                         const guint8 *pixels, const gchar * const *text, GError **error);

/* Reads a PNG as 8-bit RGB; *width, *height set. */
guint8 *sdcl_png_read_rgb (const gchar *path, guint *width, guint *height, GError **error);

/* Reads a PNG as one 8-bit channel (a mask): grey as is, colour as its
 * luminance, alpha ignored. */
guint8 *sdcl_png_read_gray (const gchar *path, guint *width, guint *height, GError **error);

/* Resizes 8-bit RGB pixels (free with g_free). Enlarging keeps edges sharp:
 * a bicubic interpolant snapped across colour edges, so a 64x64 shape drawn
 * at 512x512 has antialiased edges about one pixel wide instead of an
 * 8-pixel blur, while gradients and flat areas stay smooth. Shrinking
 * averages the area each output pixel covers; an axis that shrinks while
 * the other grows is shrunk first. The same size gives a copy.
 * Deterministic; borders clamp. NULL if a size is too large to hold. */
guint8 *sdcl_image_upscale (const guint8 *rgb, guint width, guint height, guint out_width,
                            guint out_height);

/* txt2img draws at no more than twice the model's native size: when the
 * request asks for more (a side over 2x native), sdcl_generate() draws with
 * the aspect kept and the longer side at the native size (both sides
 * multiples of the latent granularity, at least 16) and enlarges the
 * result with sdcl_image_upscale(). Returns TRUE and that drawn size in
 * that case; FALSE (and the size as asked) otherwise, and for img2img and
 * inpainting, which work at the init image's size. */
gboolean sdcl_generate_draw_size (SdclModel *model, const SdclRequest *request, guint *width,
                                  guint *height);

/* ---- demo ---------------------------------------------------------------- */

/* Renders a size×size RGB picture through a pipeline of the engine's own
 * kernels (timestep embedding, matmul, conv, group norm, attention, upsampling);
 * `size` is 64·2^k. Returns size·size·3 bytes. */
guint8 *sdcl_demo_render (SdclEngine *engine, guint size, GError **error);

G_END_DECLS

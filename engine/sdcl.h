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

/* Inspects, then uploads the weights to the engine's device (f16). The
 * files are unmapped before this returns. */
SdclModel *sdcl_model_load (SdclEngine *engine, const gchar *path, const gchar *vae_path,
                            GError **error);
void sdcl_model_free (SdclModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclModel, sdcl_model_free)

const SdclModelInfo *sdcl_model_get_info (SdclModel *model);

/* ---- images ------------------------------------------------------------ */

/* Writes 8-bit RGB (channels 3) or RGBA (4) pixels as PNG, with optional
 * tEXt chunks given as a NULL-terminated key, value, key, value... list.
 * The file appears whole or not at all (written beside, then renamed). */
gboolean sdcl_png_write (const gchar *path, guint width, guint height, guint channels,
                         const guint8 *pixels, const gchar * const *text, GError **error);

/* Reads a PNG as 8-bit RGB; *width, *height set. */
guint8 *sdcl_png_read_rgb (const gchar *path, guint *width, guint *height, GError **error);

/* ---- demo ---------------------------------------------------------------- */

/* Renders a size×size RGB picture through a pipeline of the engine's own
 * kernels (timestep embedding, matmul, conv, group norm, attention, upsampling);
 * `size` is 64·2^k. Returns size·size·3 bytes. */
guint8 *sdcl_demo_render (SdclEngine *engine, guint size, GError **error);

G_END_DECLS

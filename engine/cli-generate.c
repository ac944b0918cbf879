/* cli-generate.c — `sdcl generate`, `sdcl img2img` and `sdcl inpaint`: one
 * option table for the three, every check that needs no model done before
 * the model loads, a progress line, Ctrl-C, and PNGs written only once
 * every image of the batch exists.
 *
 * Exit status: 0 done, 1 a model, file or runtime error (Ctrl-C too), 2 bad
 * arguments (with a usage line).
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "cli.h"

#ifndef SDCL_VERSION
#error "SDCL_VERSION comes from meson.build"
#endif

/* ---- options --------------------------------------------------------------- */

/* Options not given keep these, so the request's own defaults apply (not
 * NaN for doubles: "--cfg nan" must be refused, not ignored). */
#define UNSET_INT    G_MININT
#define UNSET_SEED   G_MININT64
#define UNSET_DOUBLE (-G_MAXDOUBLE)

/* The shipped model's file name (models/ in the checkout, share/sdcl/models
 * when installed), and its inpainting variant's, which `sdcl inpaint` takes
 * where it is there */
#define SDCL_DEFAULT_MODEL "sdcl-shapes.safetensors"
#define SDCL_DEFAULT_INPAINT_MODEL "sdcl-shapes-inpainting.safetensors"

typedef struct
{
  SdclMode  mode;
  const gchar *command;              /* "generate", "img2img", "inpaint" */
  gchar    *model, *vae, *prompt, *negative, *sampler, *init, *mask, *device, *output;
  gint      steps, width, height, batch, clip_skip;
  gdouble   cfg, eta, strength;
  gint64    seed;
  gchar   **rest;                    /* arguments that are no option */
} Options;

static void
options_init (Options *o, SdclMode mode, const gchar *command)
{
  *o = (Options) { .mode = mode, .command = command, .steps = UNSET_INT, .width = UNSET_INT,
                   .height = UNSET_INT, .batch = UNSET_INT, .clip_skip = UNSET_INT,
                   .cfg = UNSET_DOUBLE, .eta = UNSET_DOUBLE, .strength = UNSET_DOUBLE,
                   .seed = UNSET_SEED };
}

static void
options_clear (Options *o)
{
  g_free (o->model);
  g_free (o->vae);
  g_free (o->prompt);
  g_free (o->negative);
  g_free (o->sampler);
  g_free (o->init);
  g_free (o->mask);
  g_free (o->device);
  g_free (o->output);
  g_strfreev (o->rest);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Options, options_clear)

static const gchar *
usage_line (SdclMode mode)
{
  switch (mode)
    {
    case SDCL_MODE_IMG2IMG:
      return "usage: sdcl img2img [--model MODEL] --init IMAGE --prompt TEXT -o OUT.png [OPTIONS]";
    case SDCL_MODE_INPAINT:
      return "usage: sdcl inpaint [--model MODEL] --init IMAGE --mask MASK --prompt TEXT "
             "-o OUT.png [OPTIONS]";
    default:
      return "usage: sdcl generate [--model MODEL] --prompt TEXT -o OUT.png [OPTIONS]";
    }
}

static int usage_error (const Options *o, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

/* Prints "sdcl CMD: message", the usage line, and returns 2. */
static int
usage_error (const Options *o, const gchar *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree gchar *message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("sdcl %s: %s\n%s\n(sdcl %s --help lists the options)\n", o->command, message,
              usage_line (o->mode), o->command);
  return 2;
}

/* A model, file or runtime error: "sdcl CMD: message", status 1. */
static int
fail (const Options *o, const GError *error)
{
  g_printerr ("sdcl %s: %s\n", o->command, error->message);
  return 1;
}

static GOptionContext *
option_context (Options *o)
{
  const GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &o->model,
      "Model: a .safetensors file or a diffusers folder (default: $SDCL_MODEL, else the "
      "shipped sdcl-shapes model; for inpaint its inpainting variant)", "MODEL" },
    { "vae", 0, 0, G_OPTION_ARG_FILENAME, &o->vae, "A VAE file or folder replacing the model's", "VAE" },
    { "prompt", 'p', 0, G_OPTION_ARG_STRING, &o->prompt,
      "What to draw, in sd-webui syntax: (word:1.2), [word], BREAK (required; may be \"\")", "TEXT" },
    { "negative", 'n', 0, G_OPTION_ARG_STRING, &o->negative, "What to steer away from", "TEXT" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &o->steps, "Sampling steps, 1-1000 (20)", "N" },
    { "cfg", 0, 0, G_OPTION_ARG_DOUBLE, &o->cfg, "Classifier-free guidance scale, 0-100 (7.5)", "S" },
    { "sampler", 0, 0, G_OPTION_ARG_STRING, &o->sampler,
      "Sampler (Euler a); --sampler help lists them", "NAME" },
    { "eta", 0, 0, G_OPTION_ARG_DOUBLE, &o->eta, "DDIM's eta, 0-1 (0)", "E" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &o->seed,
      "Seed, 0-4294967295; -1 picks a random one (the default)", "N" },
    { "width", 'W', 0, G_OPTION_ARG_INT, &o->width,
      "Width, a multiple of 8 (the init image's, or the model's native size)", "PX" },
    { "height", 'H', 0, G_OPTION_ARG_INT, &o->height, "Height, a multiple of 8 (as --width)", "PX" },
    { "strength", 0, 0, G_OPTION_ARG_DOUBLE, &o->strength,
      "img2img, inpaint: how much to change, 0 (nothing) to 1 (everything) (0.75)", "S" },
    { "init", 'i', 0, G_OPTION_ARG_FILENAME, &o->init, "img2img, inpaint: the starting image (PNG)",
      "IMAGE" },
    { "mask", 0, 0, G_OPTION_ARG_FILENAME, &o->mask,
      "inpaint: PNG the init image's size; white repaints, black keeps, grey blends", "MASK" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &o->batch,
      "Images to make, one after another, seeds SEED, SEED+1, ... (1)", "N" },
    { "clip-skip", 0, 0, G_OPTION_ARG_INT, &o->clip_skip,
      "Text encoder layer from the end, 1-12 (1: the last)", "N" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &o->device, "OpenCL device (index or name)", "DEV" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &o->output,
      "PNG to write (required); a batch writes OUT.png, OUT-1.png, OUT-2.png, ...", "OUT.png" },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &o->rest, NULL, NULL },
    { NULL }
  };
  static const gchar *summaries[] = {
    [SDCL_MODE_TXT2IMG] = "- make images from a prompt",
    [SDCL_MODE_IMG2IMG] = "- redraw an image after a prompt",
    [SDCL_MODE_INPAINT] = "- repaint the white part of a mask over an image",
  };
  GOptionContext *ctx = g_option_context_new (summaries[o->mode]);
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_description (
    ctx, "Each PNG carries its settings in a \"parameters\" text chunk, as sd-webui writes them.\n"
         "Nothing is written unless every image of the batch was made; Ctrl-C cancels.\n"
         "Exit status: 0 done, 1 model, file or runtime error (or cancelled), 2 bad arguments.\n");
  return ctx;
}

/* ---- checks that need no model ------------------------------------------------- */

typedef struct
{
  const gchar *name;
  gint         value, min, max, multiple;
} IntRange;

typedef struct
{
  const gchar *name;
  gdouble      value, min, max;
} DoubleRange;

/* Returns 0, or 2 after a usage message about the first number out of range. */
static int
check_ranges (const Options *o)
{
  const IntRange ints[] = {
    { "--steps", o->steps, 1, 1000, 1 },       { "--width", o->width, 16, 8192, 8 },
    { "--height", o->height, 16, 8192, 8 },    { "--batch", o->batch, 1, 1000, 1 },
    { "--clip-skip", o->clip_skip, 1, 12, 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (ints); i++)
    {
      const IntRange *r = &ints[i];
      if (r->value == UNSET_INT)
        continue;
      if (r->value < r->min || r->value > r->max)
        return usage_error (o, "%s must be %d to %d, not %d", r->name, r->min, r->max, r->value);
      if (r->value % r->multiple != 0)
        return usage_error (o, "%s must be a multiple of %d, not %d", r->name, r->multiple,
                            r->value);
    }
  const DoubleRange doubles[] = {
    { "--cfg", o->cfg, 0, 100 }, { "--eta", o->eta, 0, 1 }, { "--strength", o->strength, 0, 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (doubles); i++)
    {
      const DoubleRange *r = &doubles[i];
      if (r->value != UNSET_DOUBLE && !(r->value >= r->min && r->value <= r->max))
        return usage_error (o, "%s must be %g to %g, not %g", r->name, r->min, r->max, r->value);
    }
  if (o->seed != UNSET_SEED && (o->seed < -1 || o->seed > G_MAXUINT32))
    return usage_error (o, "--seed must be 0 to %u, or -1 for a random one, not %" G_GINT64_FORMAT,
                        G_MAXUINT32, o->seed);
  return 0;
}

/* Options that belong to another mode, then the ones this mode needs. */
static int
check_presence (const Options *o)
{
  if (o->rest && o->rest[0])
    return usage_error (o, "unexpected argument \"%s\" (a prompt goes after --prompt, in quotes)",
                        o->rest[0]);
  if (o->mode == SDCL_MODE_TXT2IMG && (o->init || o->strength != UNSET_DOUBLE))
    return usage_error (o, "%s applies to img2img and inpaint; generate starts from noise",
                        o->init ? "--init" : "--strength");
  if (o->mode != SDCL_MODE_INPAINT && o->mask)
    return usage_error (o, "--mask applies to inpaint only");
  const struct { const gchar *name; gboolean missing; } needed[] = {
    { "--prompt", !o->prompt }, { "-o", !o->output },
    { "--init", o->mode != SDCL_MODE_TXT2IMG && !o->init },
    { "--mask", o->mode == SDCL_MODE_INPAINT && !o->mask },
  };
  for (guint i = 0; i < G_N_ELEMENTS (needed); i++)
    if (needed[i].missing)
      return usage_error (o, "%s is required", needed[i].name);
  return 0;
}

static void
list_samplers (void)
{
  g_print ("samplers (sd-webui's names work too, in any case):\n");
  for (guint s = SDCL_SAMPLER_EULER; s <= SDCL_SAMPLER_LCM; s++)
    for (guint k = SDCL_SCHEDULE_DEFAULT; k <= SDCL_SCHEDULE_KARRAS; k++)
      {
        const gchar *name = sdcl_sampler_name (s, k);
        SdclSampler back;
        SdclSchedule back_schedule;
        if (!name || !sdcl_sampler_from_name (name, &back, &back_schedule, NULL) || back != s
            || back_schedule != k)
          continue;
        g_print ("  %-18s %s%s\n", name, sdcl_sampler_display_name (s),
                 k == SDCL_SCHEDULE_KARRAS ? " Karras" : "");
      }
}

/* Output i of the batch: OUT.png, then OUT-1.png, OUT-2.png, ... (the
 * number goes before the extension of the file's name, if any). */
static gchar *
output_path (const gchar *output, guint i)
{
  if (i == 0)
    return g_strdup (output);
  const gchar *base = strrchr (output, G_DIR_SEPARATOR);
  base = base ? base + 1 : output;
  const gchar *dot = strrchr (base, '.');
  if (!dot || dot == base)
    return g_strdup_printf ("%s-%u", output, i);
  return g_strdup_printf ("%.*s-%u%s", (int) (dot - output), output, i, dot);
}

/* Whether two paths name one file: the same inode when both exist, else the
 * same absolute path. */
static gboolean
same_file (const gchar *a, const gchar *b)
{
  GStatBuf sa, sb;
  if (g_stat (a, &sa) == 0 && g_stat (b, &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  g_autofree gchar *ca = g_canonicalize_filename (a, NULL);
  g_autofree gchar *cb = g_canonicalize_filename (b, NULL);
  return g_str_equal (ca, cb);
}

/* No output may replace an input; every output's folder must exist, so a
 * long run does not end in "cannot write". */
static int
check_outputs (const Options *o, guint count, GError **error)
{
  const struct { const gchar *option; const gchar *path; } inputs[] = {
    { "--model", o->model }, { "--vae", o->vae }, { "--init", o->init }, { "--mask", o->mask },
  };
  for (guint i = 0; i < count; i++)
    {
      g_autofree gchar *path = output_path (o->output, i);
      for (guint k = 0; k < G_N_ELEMENTS (inputs); k++)
        if (inputs[k].path && same_file (path, inputs[k].path))
          return usage_error (o, "the output %s would overwrite the %s file", path,
                              inputs[k].option);
    }
  g_autofree gchar *folder = g_path_get_dirname (o->output);
  if (!g_file_test (folder, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "cannot write %s: the folder %s does not exist", o->output, folder);
      return 1;
    }
  return 0;
}

/* The model used without --model: $SDCL_MODEL, else the shipped
 * sdcl-shapes.safetensors (for inpaint its inpainting variant, where it is
 * there) installed beside the program (PREFIX/bin/sdcl ->
 * PREFIX/share/sdcl/models) or, run from a build tree (build/engine/sdcl),
 * the checkout's models/ folder. NULL with an error naming where it looked. */
static gchar *
default_model (gboolean inpaint, GError **error)
{
  const gchar *env = g_getenv ("SDCL_MODEL");
  if (env && *env)
    return g_strdup (env);
  g_autofree gchar *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree gchar *bin = exe ? g_path_get_dirname (exe) : g_strdup (".");
  const gchar *relative[] = { "../share/sdcl/models", "../../models" };
  g_autoptr (GString) tried = g_string_new (NULL);
  for (guint i = 0; i < G_N_ELEMENTS (relative); i++)
    {
      g_autofree gchar *dir = g_canonicalize_filename (relative[i], bin);
      g_autofree gchar *path = g_build_filename (dir, SDCL_DEFAULT_MODEL, NULL);
      g_autofree gchar *inpainting = g_build_filename (dir, SDCL_DEFAULT_INPAINT_MODEL, NULL);
      if (inpaint && g_file_test (inpainting, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer (&inpainting);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer (&path);
      g_string_append_printf (tried, "%s%s", i ? ", " : "", dir);
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
               "no --model given, and the shipped model %s is in none of %s; pass --model or "
               "set SDCL_MODEL", SDCL_DEFAULT_MODEL, tried->str);
  return NULL;
}

/* Parses and checks the arguments; 0 to go on, else the exit status. A
 * `--sampler help` lists the samplers and ends with 0 through *done. */
static int
parse_options (Options *o, int argc, char **argv, gboolean *done)
{
  g_autofree gchar *prgname = g_strconcat ("sdcl ", o->command, NULL);
  g_set_prgname (prgname);   /* for --help's "Usage: sdcl generate ..." */
  g_autoptr (GOptionContext) ctx = option_context (o);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return usage_error (o, "%s", error->message);
  if (o->sampler && g_ascii_strcasecmp (o->sampler, "help") == 0)
    {
      list_samplers ();
      *done = TRUE;
      return 0;
    }
  int status = check_presence (o);
  if (status == 0)
    status = check_ranges (o);
  SdclSampler sampler;
  SdclSchedule schedule;
  if (status == 0 && o->sampler && !sdcl_sampler_from_name (o->sampler, &sampler, &schedule, &error))
    status = usage_error (o, "%s (--sampler help lists them)", error->message);
  if (status == 0 && !o->model
      && !(o->model = default_model (o->mode == SDCL_MODE_INPAINT, &error)))
    status = fail (o, error);
  return status;
}

/* ---- input images -------------------------------------------------------------- */

typedef struct
{
  guint8 *init;                      /* RGB */
  guint8 *mask;                      /* one byte a pixel */
  guint   width, height;
} Inputs;

static void
inputs_clear (Inputs *in)
{
  g_free (in->init);
  g_free (in->mask);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Inputs, inputs_clear)

/* The init image must already have the output's size: sdcl never scales. */
static gboolean
check_init_size (const Options *o, const Inputs *in, GError **error)
{
  const guint w = o->width != UNSET_INT ? (guint) o->width : in->width;
  const guint h = o->height != UNSET_INT ? (guint) o->height : in->height;
  if (w != in->width || h != in->height)
    {
      g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_SIZE,
                   "the init image %s is %ux%u but --width/--height ask for %ux%u; leave them "
                   "out to keep the image's size, or scale the image first",
                   o->init, in->width, in->height, w, h);
      return FALSE;
    }
  if (w % 8 || h % 8)
    {
      g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_SIZE,
                   "the init image %s is %ux%u; width and height must be multiples of 8 "
                   "(crop or scale it)", o->init, w, h);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_mask (const Options *o, const Inputs *in, guint mw, guint mh, GError **error)
{
  if (mw != in->width || mh != in->height)
    {
      g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_SIZE,
                   "the mask %s is %ux%u but the init image %s is %ux%u", o->mask, mw, mh, o->init,
                   in->width, in->height);
      return FALSE;
    }
  for (gsize i = 0; i < (gsize) mw * mh; i++)
    if (in->mask[i] != 0)
      return TRUE;
  g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_EMPTY_MASK,
               "the mask %s is black everywhere, so there is nothing to repaint: white marks "
               "what to repaint", o->mask);
  return FALSE;
}

static gboolean
read_inputs (const Options *o, Inputs *in, GError **error)
{
  if (!o->init)
    return TRUE;
  in->init = sdcl_png_read_rgb (o->init, &in->width, &in->height, error);
  if (!in->init || !check_init_size (o, in, error))
    return FALSE;
  if (!o->mask)
    return TRUE;
  guint mw, mh;
  in->mask = sdcl_png_read_gray (o->mask, &mw, &mh, error);
  return in->mask && check_mask (o, in, mw, mh, error);
}

static void
fill_request (const Options *o, const Inputs *in, SdclRequest *r)
{
  sdcl_request_init (r);
  r->mode = o->mode;
  r->prompt = o->prompt;
  r->negative_prompt = o->negative;
  if (o->sampler)
    sdcl_sampler_from_name (o->sampler, &r->sampler, &r->schedule, NULL);
#define SET_IF_GIVEN(field, value, unset) \
  if ((value) != (unset))                 \
    r->field = (value);
  SET_IF_GIVEN (steps, o->steps, UNSET_INT)
  SET_IF_GIVEN (width, o->width, UNSET_INT)
  SET_IF_GIVEN (height, o->height, UNSET_INT)
  SET_IF_GIVEN (batch_count, o->batch, UNSET_INT)
  SET_IF_GIVEN (clip_skip, o->clip_skip, UNSET_INT)
  SET_IF_GIVEN (seed, o->seed, UNSET_SEED)
  SET_IF_GIVEN (cfg_scale, o->cfg, UNSET_DOUBLE)
  SET_IF_GIVEN (eta, o->eta, UNSET_DOUBLE)
  SET_IF_GIVEN (strength, o->strength, UNSET_DOUBLE)
#undef SET_IF_GIVEN
  r->init_image = in->init;
  r->init_width = in->width;
  r->init_height = in->height;
  r->mask = in->mask;
}

/* ---- progress and Ctrl-C -------------------------------------------------------- */

static volatile sig_atomic_t cancel_requested;

static void
on_sigint (int signum)
{
  static const char note[] = "\nsdcl: cancelling after this step (Ctrl-C again stops at once)\n";
  cancel_requested = 1;
  if (write (STDERR_FILENO, note, sizeof note - 1) < 0)
    return;
}

/* The first Ctrl-C asks the run to stop at the next step; the handler is
 * then reset, so a second one ends the process. */
static void
catch_sigint (gboolean on)
{
  struct sigaction sa = { 0 };
  sa.sa_handler = on ? on_sigint : SIG_DFL;
  sa.sa_flags = on ? SA_RESETHAND : 0;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
}

typedef struct
{
  gboolean tty;                      /* stderr is a terminal: one line redrawn with \r */
  gboolean line_open;                /* the terminal line has no newline yet */
  gdouble  first_elapsed;            /* at the first report: start-up time is not a step's */
  guint    first_done;
} Progress;

static gchar *
format_duration (gdouble seconds)
{
  const guint s = (guint) (seconds + 0.5);
  if (s >= 3600)
    return g_strdup_printf ("%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
  return g_strdup_printf ("%u:%02u", s / 60, s % 60);
}

static gchar *
progress_bar (guint done, guint total)
{
  enum { WIDTH = 20 };
  const guint full = total ? done * WIDTH / total : WIDTH;
  gchar bar[WIDTH + 3];
  bar[0] = '[';
  for (guint i = 0; i < WIDTH; i++)
    bar[i + 1] = i < full ? '#' : '-';
  bar[WIDTH + 1] = ']';
  bar[WIDTH + 2] = '\0';
  return g_strdup (bar);
}

static gboolean
on_progress (const SdclProgress *p, gpointer user_data)
{
  Progress *state = user_data;
  const guint done = p->image * p->steps + p->step, total = p->images * p->steps;
  if (state->first_done == 0)
    {
      state->first_done = done;
      state->first_elapsed = p->elapsed;
    }
  const gdouble per_step = done > state->first_done
    ? (p->elapsed - state->first_elapsed) / (done - state->first_done) : p->elapsed / MAX (done, 1);
  g_autofree gchar *eta = format_duration (per_step * (total - done));
  g_autofree gchar *image = p->images > 1 ? g_strdup_printf ("image %u/%u ", p->image + 1, p->images)
                                          : g_strdup ("");
  if (state->tty)
    {
      g_autofree gchar *bar = progress_bar (done, total);
      g_printerr ("\r%sstep %u/%u %s %.2f s/step, ETA %s\033[K", image, p->step, p->steps, bar,
                  per_step, eta);
      state->line_open = TRUE;
    }
  else
    g_printerr ("step %u/%u %s%.2f s/step, ETA %s\n", p->step, p->steps, image, per_step, eta);
  return !cancel_requested;
}

static void
progress_end (Progress *state)
{
  if (state->line_open)
    g_printerr ("\n");
  state->line_open = FALSE;
}

/* ---- the run -------------------------------------------------------------------- */

static SdclModel *
load_model (const Options *o, SdclEngine **engine, GError **error)
{
  const gint64 t0 = g_get_monotonic_time ();
  *engine = sdcl_engine_new (o->device, error);
  if (!*engine)
    return NULL;
  /* one request per run: each part is on the device only while it works */
  SdclModel *model = sdcl_model_load_with_policy (*engine, o->model, o->vae, SDCL_MODEL_ON_DEMAND,
                                                  error);
  if (model)
    g_printerr ("sdcl %s: %s on %s, opened in %.1f s\n", o->command,
                sdcl_model_get_info (model)->kind_name, sdcl_engine_device (*engine)->name,
                (g_get_monotonic_time () - t0) / 1e6);
  return model;
}

/* Runs the request with Ctrl-C caught; a Ctrl-C that came too late for the
 * progress function (while the VAE decodes) still cancels. */
static GPtrArray *
run_request (const Options *o, SdclModel *model, const SdclRequest *request, GError **error)
{
  Progress state = { .tty = isatty (STDERR_FILENO) };
  GPtrArray *images = cancel_requested
    ? NULL : sdcl_generate (model, request, on_progress, &state, error);
  progress_end (&state);
  if (cancel_requested)
    {
      g_clear_pointer (&images, g_ptr_array_unref);
      g_clear_error (error);
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled; nothing written");
    }
  return images;
}

/* Writes every image; on a failure the files already written stay (each is
 * whole) and are named in the message. */
static gboolean
write_images (const Options *o, GPtrArray *images, GError **error)
{
  const gchar *software = "sdcl " SDCL_VERSION;
  for (guint i = 0; i < images->len; i++)
    {
      const SdclImage *img = images->pdata[i];
      g_autofree gchar *path = output_path (o->output, i);
      const gchar *text[] = { "Software", software, img->parameters ? "parameters" : NULL,
                              img->parameters, NULL };
      if (!sdcl_png_write (path, img->width, img->height, 3, img->pixels, text, error))
        {
          if (i > 0)
            g_prefix_error (error, "%u of %u images written before this error: ", i, images->len);
          return FALSE;
        }
      g_print ("wrote %s (%ux%u, seed %u)\n", path, img->width, img->height, img->seed);
    }
  return TRUE;
}

static int
run (const Options *o, gint64 t0)
{
  g_autoptr (GError) error = NULL;
  const guint count = o->batch != UNSET_INT ? (guint) o->batch : 1;
  int status = check_outputs (o, count, &error);
  if (status != 0)
    return status == 1 ? fail (o, error) : status;
  g_auto (Inputs) in = { 0 };
  if (!read_inputs (o, &in, &error))
    return fail (o, error);
  SdclRequest request;
  fill_request (o, &in, &request);

  catch_sigint (TRUE);
  g_autoptr (SdclEngine) engine = NULL;
  g_autoptr (SdclModel) model = load_model (o, &engine, &error);
  g_autoptr (GPtrArray) images = model ? run_request (o, model, &request, &error) : NULL;
  catch_sigint (FALSE);
  if (!images)
    return fail (o, error);
  guint drawn_w, drawn_h;
  if (sdcl_generate_draw_size (model, &request, &drawn_w, &drawn_h))
    g_printerr ("sdcl %s: generated at %ux%u (the model's native size is %u) and upscaled to "
                "%ux%u\n", o->command, drawn_w, drawn_h, sdcl_model_get_info (model)->native_size,
                request.width, request.height);
  if (!write_images (o, images, &error))
    return fail (o, error);
  const gdouble seconds = (g_get_monotonic_time () - t0) / 1e6;
  g_print ("%u image%s in %.1f s\n", images->len, images->len == 1 ? "" : "s", seconds);
  return 0;
}

int
sdcl_cli_generate (SdclMode mode, int argc, char **argv)
{
  const gint64 t0 = g_get_monotonic_time ();
  static const gchar *names[] = { [SDCL_MODE_TXT2IMG] = "generate", [SDCL_MODE_IMG2IMG] = "img2img",
                                  [SDCL_MODE_INPAINT] = "inpaint" };
  g_auto (Options) o;
  options_init (&o, mode, names[mode]);
  gboolean done = FALSE;
  const int status = parse_options (&o, argc, argv, &done);
  if (status != 0 || done)
    return status;
  return run (&o, t0);
}

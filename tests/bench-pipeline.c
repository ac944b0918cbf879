/* bench-pipeline.c — txt2img on full-size SD 1.5 shapes (random weights,
 * fullsize.h): Euler, CFG 7.5, seconds per step, VAE decode, total, peak
 * process and device memory, for each size. tests/bench-peer.py does the
 * same work in diffusers on PyTorch; `make bench` runs both. load_s is a
 * resident load (every part uploaded); the runs load the parts on demand,
 * as the CLI and the plug-in do (--resident: all parts kept), and each
 * size's peaks are its own.
 *
 * --paced (tools/bench-pair): before each size and after each step the
 * process writes "PAUSE <what>" on a line of its own and waits for a line
 * on standard input, so a driver can alternate it with the peer, each
 * stretch of work next to the peer's same stretch; the times it prints
 * leave the waits out.
 *
 *   bench-pipeline [MODEL.safetensors] [--sizes 512,256] [--steps 20] [--resident] [--paced]
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fullsize.h"
#include "model.h"
#include "testutil.h"

#define CHECK(x) do { if (!(x)) sdcl_test_fail ("%s", error->message); } while (0)

static gboolean paced;

typedef struct
{
  GArray *at;       /* gdouble: seconds of work (waits left out) at each step's end */
  gint64  resumed;  /* when the work last resumed (µs, monotonic) */
  gdouble worked;   /* seconds of work before that */
} Steps;

/* With --paced: says where it stopped and waits for the driver's line. */
static void
pause_for_driver (const gchar *what)
{
  if (!paced)
    return;
  g_print ("PAUSE %s\n", what);
  fflush (stdout);
  gchar line[64];
  if (!fgets (line, sizeof line, stdin))
    {
      g_printerr ("bench-pipeline: standard input closed while paced\n");
      exit (1);
    }
}

static gdouble
worked (const Steps *s)
{
  return s->worked + (g_get_monotonic_time () - s->resumed) / 1e6;
}

static gboolean
on_step (const SdclProgress *p, gpointer data)
{
  Steps *s = data;
  s->worked = worked (s);
  g_array_append_val (s->at, s->worked);
  if (isatty (2) && !paced)
    g_printerr ("\r  step %u/%u  %.1f s", p->step, p->steps, s->worked);
  g_autofree gchar *what = g_strdup_printf ("step %u", p->step);
  pause_for_driver (what);
  s->resumed = g_get_monotonic_time ();
  return TRUE;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  g_autofree gchar *sizes = g_strdup ("512,256");
  gint steps = 20;
  gboolean resident = FALSE;
  GOptionEntry entries[] = {
    { "resident", 0, 0, G_OPTION_ARG_NONE, &resident,
      "Keep every part on the device (SDCL_MODEL_RESIDENT), not one at a time", NULL },
    { "sizes", 0, 0, G_OPTION_ARG_STRING, &sizes, "Image sides, comma-separated", "512,256" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &steps, "Sampling steps", "20" },
    { "paced", 0, 0, G_OPTION_ARG_NONE, &paced,
      "Wait for a line on standard input before each size and after each step", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("[MODEL.safetensors]");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("bench-pipeline: %s\n", error->message);
      return 2;
    }
  const gchar *path = argc > 1 ? argv[1] : "build/sd15-random.safetensors";
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_print ("writing random SD 1.5-shaped weights to %s ...\n", path);
      CHECK (sdcl_test_write_random_model (SDCL_SOURCE_DIR "/models/configs/sd15", path, &error));
    }
  g_autoptr (SdclEngine) engine = sdcl_engine_new (NULL, &error);
  CHECK (engine);
  CHECK (sdcl_engine_build_all (engine, &error));
  const gboolean on_demand = !resident;
  g_print ("sdcl txt2img, %s, Euler, CFG 7.5, %d steps, parts %s\n",
           sdcl_engine_device (engine)->name, steps,
           on_demand ? "on demand (as the CLI and the plug-in)" : "resident");

  /* the load time: every part uploaded at once (SDCL_MODEL_RESIDENT) */
  const gint64 t0 = g_get_monotonic_time ();
  SdclModel *all = sdcl_model_load (engine, path, NULL, &error);
  CHECK (all && sdcl_engine_finish (engine, &error));
  const gdouble load = (g_get_monotonic_time () - t0) / 1e6;
  sdcl_model_free (all);
  /* the runs as the CLI and the plug-in make them: one part at a time */
  g_autoptr (SdclModel) model = on_demand ? sdcl_model_load_with_policy (engine, path, NULL,
                                                                         SDCL_MODEL_ON_DEMAND,
                                                                         &error)
                                          : sdcl_model_load (engine, path, NULL, &error);
  CHECK (model);

  g_print ("%-6s %8s %8s %8s %13s %8s %13s %14s\n", "size", "load_s", "first_s", "step_s",
           "vae_decode_s", "total_s", "peak_rss_GB", "device_peak_GB");
  g_auto (GStrv) list = g_strsplit (sizes, ",", 0);
  for (guint k = 0; list[k]; k++)
    {
      const guint side = (guint) atoi (list[k]);
      SdclRequest r;
      sdcl_request_init (&r);
      r.prompt = "a photograph of an astronaut riding a horse";
      r.width = r.height = side;
      r.steps = steps;
      r.cfg_scale = 7.5;
      r.sampler = SDCL_SAMPLER_EULER;
      r.seed = 1;
      Steps s = { g_array_new (FALSE, FALSE, sizeof (gdouble)), 0, 0.0 };
      sdcl_engine_trim (engine);
      sdcl_engine_reset_peak (engine);
      sdcl_test_rss_peak_reset ();
      g_autofree gchar *what = g_strdup_printf ("size %u", side);
      pause_for_driver (what);
      s.resumed = g_get_monotonic_time ();
      g_autoptr (GPtrArray) images = sdcl_generate (model, &r, on_step, &s, &error);
      CHECK (images);
      const gdouble total = worked (&s);
      if (isatty (2) && !paced)
        g_printerr ("\r%40s\r", "");
      /* step ends as the pipeline counts them, from sdcl_generate's start:
         the first includes the prompt encoding, what follows the last is
         the VAE decode */
      const gdouble *at = (const gdouble *) s.at->data;
      const guint n = s.at->len;
      const gdouble step = n > 1 ? (at[n - 1] - at[0]) / (n - 1) : at[0];
      g_print ("%-6u %8.1f %8.2f %8.2f %13.2f %8.1f %13.2f %14.2f\n", side, load, at[0], step,
               total - at[n - 1], total, sdcl_test_rss_peak () / 1e9,
               sdcl_engine_memory_peak (engine) / 1e9);
      /* each step's own seconds (the first with the prompt encoding) */
      g_autoptr (GString) each = g_string_new (NULL);
      for (guint i = 0; i < n; i++)
        g_string_append_printf (each, " %.3f", at[i] - (i ? at[i - 1] : 0));
      g_print ("  %u: steps_s%s\n", side, each->str);
      fflush (stdout);
      g_array_unref (s.at);
    }
  return 0;
}

/* test-cli.c — the `sdcl generate`, `img2img` and `inpaint` commands, run
 * as a user runs them (the built binary, through GSubprocess): bad
 * arguments exit 2 with a usage line, model and file errors exit 1 with a
 * message and write nothing, and end-to-end runs on the tiny model write
 * PNGs of the asked size whose "parameters" chunk holds the settings. A
 * Ctrl-C (SIGINT) during the run cancels it and writes nothing.
 */
#include <png.h>
#include <signal.h>
#include <string.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "sdcl.h"
#include "testpng.h"
#include "testutil.h"

static gchar *scratch;   /* every file a test writes goes here */
static gchar *model;     /* tests/fixtures/models/tiny-sd.safetensors */

static gchar *
scratch_path (const gchar *name)
{
  return g_build_filename (scratch, name, NULL);
}

/* ---- running sdcl -------------------------------------------------------- */

typedef struct
{
  gint   status;                     /* exit status; 128 + signal if killed */
  gchar *out, *err;
} Result;

static void
result_free (Result *r)
{
  g_free (r->out);
  g_free (r->err);
  g_free (r);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Result, result_free)

static gint
exit_status (GSubprocess *p)
{
  return g_subprocess_get_if_exited (p) ? g_subprocess_get_exit_status (p)
                                        : 128 + g_subprocess_get_term_sig (p);
}

/* Runs SDCL_EXE with the NULL-terminated arguments; waits for it. */
static Result *
run_sdcl_v (const gchar * const *args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) SDCL_EXE);
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_newv ((const gchar * const *) argv->pdata,
                                                 G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                                 | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  Result *r = g_new0 (Result, 1);
  g_subprocess_communicate_utf8 (p, NULL, NULL, &r->out, &r->err, &error);
  g_assert_no_error (error);
  r->status = exit_status (p);
  return r;
}

#define run_sdcl(...) run_sdcl_v ((const gchar *[]) { __VA_ARGS__, NULL })

/* Asserts the exit status and that stderr holds every needle; a failure
 * shows what sdcl printed. */
static void
expect (const Result *r, gint status, const gchar * const *needles)
{
  gboolean ok = r->status == status;
  for (guint i = 0; needles && needles[i]; i++)
    ok = ok && strstr (r->err, needles[i]) != NULL;
  if (!ok)
    sdcl_test_fail ("expected exit %d and stderr containing the given text; got exit %d\n"
                    "--- stderr:\n%s--- stdout:\n%s", status, r->status, r->err, r->out);
}

#define expect_err(r, status, ...) expect (r, status, (const gchar *[]) { __VA_ARGS__, NULL })

static guint
files_in_scratch (void)
{
  g_autoptr (GDir) dir = g_dir_open (scratch, 0, NULL);
  guint n = 0;
  while (dir && g_dir_read_name (dir))
    n++;
  return n;
}

/* ---- input images -------------------------------------------------------- */

/* An RGB test picture of w x h, written with sdcl_png_write. */
static gchar *
write_init (const gchar *name, guint w, guint h)
{
  g_autofree guint8 *px = g_malloc ((gsize) w * h * 3);
  for (gsize i = 0; i < (gsize) w * h * 3; i++)
    px[i] = (guint8) (i * 7 / 3);
  gchar *path = scratch_path (name);
  g_autoptr (GError) error = NULL;
  g_assert_true (sdcl_png_write (path, w, h, 3, px, NULL, &error));
  return path;
}

/* An 8-bit grey mask: 0 everywhere, `value` in the centre square. */
static gchar *
write_mask (const gchar *name, guint w, guint h, guint8 value)
{
  g_autofree guint8 *px = g_malloc0 ((gsize) w * h);
  for (guint y = h / 4; y < h * 3 / 4; y++)
    memset (px + (gsize) y * w + w / 4, value, w / 2);
  SdclTestPng png = { w, h, 8, PNG_COLOR_TYPE_GRAY, FALSE, px };
  gchar *path = scratch_path (name);
  sdcl_test_png_write (path, &png);
  return path;
}

/* ---- argument errors: exit 2 and a usage line ---------------------------- */

static void
test_no_command (void)
{
  g_autoptr (Result) r = run_sdcl ("frobnicate");
  expect_err (r, 2, "unknown command", "usage: sdcl COMMAND", "generate", "inpaint");
}

typedef struct
{
  const gchar *path;                 /* test name */
  const gchar *args[24];
  const gchar *needle;               /* in stderr */
} BadArgs;

/* MODEL and OUT stand for the tiny model and a scratch file. */
static const BadArgs bad_args[] = {
  { "unknown-option", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--frob" }, "Unknown option --frob" },
  { "missing-prompt", { "generate", "MODEL", "-o", "OUT" }, "--prompt is required" },
  { "missing-output", { "generate", "MODEL", "--prompt", "x" }, "-o is required" },
  { "missing-init", { "img2img", "MODEL", "--prompt", "x", "-o", "OUT" }, "--init is required" },
  { "missing-mask", { "inpaint", "MODEL", "--prompt", "x", "-o", "OUT", "--init", "a.png" }, "--mask is required" },
  { "steps-0", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--steps", "0" }, "--steps must be 1 to 1000, not 0" },
  { "steps-text", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--steps", "many" }, "--steps" },
  { "width-not-8", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--width", "100" }, "--width must be a multiple of 8" },
  { "height-negative", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--height", "-64" }, "--height must be" },
  { "cfg-too-big", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--cfg", "101" }, "--cfg must be 0 to 100" },
  { "cfg-nan", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--cfg", "nan" }, "--cfg must be" },
  { "seed-too-big", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--seed", "4294967296" }, "--seed must be" },
  { "seed-below-minus-1", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--seed", "-2" }, "--seed must be" },
  { "batch-0", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--batch", "0" }, "--batch must be" },
  { "clip-skip-0", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--clip-skip", "0" }, "--clip-skip must be" },
  { "eta-negative", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--eta", "-0.5" }, "--eta must be" },
  { "strength-above-1", { "img2img", "MODEL", "--prompt", "x", "-o", "OUT", "--init", "a.png", "--strength", "1.5" }, "--strength must be 0 to 1" },
  { "unknown-sampler", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--sampler", "heun" }, "unknown sampler" },
  { "mask-with-generate", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--mask", "m.png" }, "--mask applies to inpaint only" },
  { "mask-with-img2img", { "img2img", "MODEL", "--prompt", "x", "-o", "OUT", "--init", "a.png", "--mask", "m.png" }, "--mask applies to inpaint only" },
  { "init-with-generate", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--init", "a.png" }, "--init applies to img2img and inpaint" },
  { "strength-with-generate", { "generate", "MODEL", "--prompt", "x", "-o", "OUT", "--strength", "0.5" }, "--strength applies" },
  { "stray-argument", { "generate", "MODEL", "--prompt", "a", "red", "square", "-o", "OUT" }, "unexpected argument \"red\"" },
};

static void
test_bad_args (gconstpointer data)
{
  const BadArgs *t = data;
  g_autofree gchar *out = scratch_path ("bad-args.png");
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  for (guint i = 0; t->args[i]; i++)
    {
      if (g_str_equal (t->args[i], "MODEL"))
        {
          g_ptr_array_add (args, (gpointer) "--model");
          g_ptr_array_add (args, model);
        }
      else
        g_ptr_array_add (args, (gpointer) (g_str_equal (t->args[i], "OUT") ? out : t->args[i]));
    }
  g_ptr_array_add (args, NULL);
  g_autoptr (Result) r = run_sdcl_v ((const gchar * const *) args->pdata);
  g_autofree gchar *usage = g_strdup_printf ("usage: sdcl %s", t->args[0]);
  expect_err (r, 2, t->needle, usage);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* -o naming the model is refused before anything is read (a copy stands
 * in for the model: were the check missing, a fixture would be lost). */
static void
test_output_is_model (void)
{
  g_autofree gchar *fake = scratch_path ("model-copy.safetensors");
  g_file_set_contents (fake, "not read", -1, NULL);
  g_autoptr (Result) r = run_sdcl ("generate", "--model", fake, "--prompt", "x", "-o", fake);
  expect_err (r, 2, "would overwrite the --model file", "usage: sdcl generate");
  g_autofree gchar *contents = NULL;
  g_file_get_contents (fake, &contents, NULL, NULL);
  g_assert_cmpstr (contents, ==, "not read");
}

/* A batch's second file, OUT-1.png, may not be the init image either. */
static void
test_batch_output_is_input (void)
{
  g_autofree gchar *init = write_init ("pic-1.png", 64, 64);
  g_autofree gchar *out = scratch_path ("pic.png");
  g_autoptr (Result) r = run_sdcl ("img2img", "--model", model, "--prompt", "x", "--init", init,
                                   "--batch", "2", "-o", out);
  expect_err (r, 2, "would overwrite the --init file");
}

static void
test_sampler_help (void)
{
  g_autoptr (Result) r = run_sdcl ("generate", "--sampler", "help");
  expect (r, 0, NULL);
  for (const gchar *const *n = (const gchar *[]) { "euler_a", "dpmpp_2m_karras", "ddim", "lcm",
                                                   "DPM++ 2M Karras", NULL }; *n; n++)
    if (!strstr (r->out, *n))
      sdcl_test_fail ("--sampler help does not list %s:\n%s", *n, r->out);
}

/* ---- model and file errors: exit 1, a message, no file ------------------- */

static void
test_missing_model (void)
{
  g_autofree gchar *absent = scratch_path ("absent.safetensors");
  g_autofree gchar *out = scratch_path ("missing-model.png");
  g_autoptr (Result) r = run_sdcl ("generate", "--model", absent, "--prompt", "x", "-o", out);
  expect_err (r, 1, "sdcl generate: ", "absent.safetensors");
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* Without --model: $SDCL_MODEL, else the shipped model (see
 * tests/test-default-model.c for the shipped model itself). */
static void
test_model_from_environment (void)
{
  g_autofree gchar *out = scratch_path ("env-model.png");
  g_setenv ("SDCL_MODEL", model, TRUE);
  g_autoptr (Result) r = run_sdcl ("generate", "--prompt", "x", "--steps", "2", "-o", out);
  g_unsetenv ("SDCL_MODEL");
  expect_err (r, 0, "opened in");
  g_assert_true (g_file_test (out, G_FILE_TEST_IS_REGULAR));
  g_unlink (out);

  g_autofree gchar *absent = scratch_path ("absent-env.safetensors");
  g_setenv ("SDCL_MODEL", absent, TRUE);
  g_autoptr (Result) r2 = run_sdcl ("generate", "--prompt", "x", "-o", out);
  g_unsetenv ("SDCL_MODEL");
  expect_err (r2, 1, "sdcl generate: ", "absent-env.safetensors");
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

static void
test_missing_output_folder (void)
{
  g_autofree gchar *out = g_build_filename (scratch, "no-folder", "x.png", NULL);
  g_autoptr (Result) r = run_sdcl ("generate", "--model", model, "--prompt", "x", "-o", out);
  expect_err (r, 1, "does not exist");
}

static void
test_black_mask (void)
{
  g_autofree gchar *init = write_init ("black-init.png", 64, 64);
  g_autofree gchar *mask = write_mask ("black-mask.png", 64, 64, 0);
  g_autofree gchar *out = scratch_path ("black-out.png");
  const guint before = files_in_scratch ();
  g_autoptr (Result) r = run_sdcl ("inpaint", "--model", model, "--prompt", "x", "--init", init,
                                   "--mask", mask, "-o", out);
  expect_err (r, 1, "sdcl inpaint: ", "black-mask.png", "black everywhere", "nothing to repaint");
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (files_in_scratch (), ==, before);
}

static void
test_mask_size (void)
{
  g_autofree gchar *init = write_init ("msize-init.png", 64, 64);
  g_autofree gchar *mask = write_mask ("msize-mask.png", 64, 72, 255);
  g_autofree gchar *out = scratch_path ("msize-out.png");
  g_autoptr (Result) r = run_sdcl ("inpaint", "--model", model, "--prompt", "x", "--init", init,
                                   "--mask", mask, "-o", out);
  expect_err (r, 1, "64x72", "64x64");
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

static void
test_init_wrong_size (void)
{
  g_autofree gchar *init = write_init ("size-init.png", 64, 64);
  g_autofree gchar *out = scratch_path ("size-out.png");
  g_autoptr (Result) r = run_sdcl ("img2img", "--model", model, "--prompt", "x", "--init", init,
                                   "--width", "64", "--height", "96", "-o", out);
  expect_err (r, 1, "sdcl img2img: ", "64x64", "64x96");
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

static void
test_init_not_png (void)
{
  g_autofree gchar *init = scratch_path ("not-png.png");
  g_file_set_contents (init, "GIF89a and then some", -1, NULL);
  g_autofree gchar *out = scratch_path ("not-png-out.png");
  g_autoptr (Result) r = run_sdcl ("img2img", "--model", model, "--prompt", "x", "--init", init,
                                   "-o", out);
  expect_err (r, 1, "not a PNG file");
}

/* ---- end to end on the tiny model ---------------------------------------- */

/* Checks the file's size and that its "parameters" chunk holds each needle;
 * returns the chunk. */
static gchar *
check_png (const gchar *path, guint width, guint height, const gchar * const *needles)
{
  guint w, h, type;
  g_autoptr (GHashTable) text = NULL;
  g_autoptr (GError) error = NULL;
  if (!sdcl_test_png_info (path, &w, &h, &type, &text, &error))
    sdcl_test_fail ("%s", error->message);
  g_assert_cmpuint (w, ==, width);
  g_assert_cmpuint (h, ==, height);
  const gchar *parameters = g_hash_table_lookup (text, "parameters");
  const gchar *software = g_hash_table_lookup (text, "Software");
  g_assert_nonnull (software);
  g_assert_true (g_str_has_prefix (software, "sdcl "));
  if (!parameters)
    sdcl_test_fail ("%s has no parameters chunk", path);
  for (guint i = 0; needles[i]; i++)
    if (!strstr (parameters, needles[i]))
      sdcl_test_fail ("%s: parameters lack \"%s\":\n%s", path, needles[i], parameters);
  return g_strdup (parameters);
}

#define check_png_has(path, w, h, ...) \
  g_free (check_png (path, w, h, (const gchar *[]) { __VA_ARGS__, NULL }))

static void
test_generate (void)
{
  g_autofree gchar *out = scratch_path ("red-square.png");
  g_autoptr (Result) r = run_sdcl ("generate", "--model", model, "--prompt", "a red square",
                                   "--steps", "3", "--width", "64", "--height", "96", "--seed",
                                   "7", "-o", out);
  expect_err (r, 0, "step 1/3", "step 3/3");   /* stderr is a pipe: plain lines */
  g_autofree gchar *params = check_png (out, 64, 96, (const gchar *[]) { "a red square",
                                        "Steps: 3", "Seed: 7", "Size: 64x96", NULL });
  g_assert_nonnull (strstr (r->out, out));
  g_assert_nonnull (strstr (r->out, "seed 7"));
}

/* No --model, no $SDCL_MODEL: the shipped model, found beside the build
 * tree's binary (models/sdcl-shapes.safetensors), at its native 64x64; and
 * 512x512 asked of it is drawn at 64 and enlarged, as the user is told. */
static void
test_shipped_model (void)
{
  g_autofree gchar *out = scratch_path ("shipped.png");
  g_autofree gchar *big = scratch_path ("shipped-512.png");
  g_unsetenv ("SDCL_MODEL");
  g_autoptr (Result) r = run_sdcl ("generate", "--prompt", "a red circle", "--steps", "4",
                                   "--seed", "3", "-o", out);
  expect_err (r, 0, "opened in");
  check_png_has (out, 64, 64, "a red circle", "Seed: 3");
  g_autoptr (Result) r2 = run_sdcl ("generate", "--prompt", "a red circle", "--steps", "4",
                                    "--seed", "3", "--width", "512", "--height", "512", "-o", big);
  expect_err (r2, 0, "upscaled to 512x512");
  check_png_has (big, 512, 512, "a red circle");
}

/* Two images: OUT.png with seed 11 and OUT-1.png with seed 12. */
static void
test_generate_batch (void)
{
  g_autofree gchar *out = scratch_path ("batch.png");
  g_autofree gchar *second = scratch_path ("batch-1.png");
  g_autoptr (Result) r = run_sdcl ("generate", "--model", model, "--prompt", "", "--steps", "2",
                                   "--width", "64", "--height", "64", "--seed", "11", "--batch",
                                   "2", "--sampler", "DPM++ 2M Karras", "-o", out);
  expect_err (r, 0, "image 2/2");
  check_png_has (out, 64, 64, "Seed: 11", "DPM++ 2M");
  check_png_has (second, 64, 64, "Seed: 12");
  g_assert_nonnull (strstr (r->out, "2 images in"));
}

static void
test_img2img (void)
{
  g_autofree gchar *init = write_init ("i2i-init.png", 64, 64);
  g_autofree gchar *out = scratch_path ("i2i-out.png");
  g_autoptr (Result) r = run_sdcl ("img2img", "--model", model, "--prompt", "a blue circle",
                                   "--init", init, "--strength", "0.5", "--steps", "4", "--seed",
                                   "3", "-o", out);
  expect (r, 0, NULL);
  check_png_has (out, 64, 64, "a blue circle", "Seed: 3", "Size: 64x64");
}

static void
test_inpaint (void)
{
  g_autofree gchar *inpaint_model = sdcl_test_fixture ("models/tiny-sd-inpaint.safetensors");
  g_autofree gchar *init = write_init ("inp-init.png", 64, 64);
  g_autofree gchar *mask = write_mask ("inp-mask.png", 64, 64, 255);
  g_autofree gchar *out = scratch_path ("inp-out.png");
  g_autoptr (Result) r = run_sdcl ("inpaint", "--model", inpaint_model, "--prompt", "a cat",
                                   "--init", init, "--mask", mask, "--steps", "2", "--seed", "5",
                                   "-o", out);
  expect (r, 0, NULL);
  check_png_has (out, 64, 64, "a cat", "Seed: 5");
}

/* `sdcl inpaint` without --model: the shipped inpainting variant
 * (models/sdcl-shapes-inpainting.safetensors) where the checkout has it,
 * else the shipped model. */
static void
test_shipped_inpaint_model (void)
{
  g_autofree gchar *variant = g_build_filename (SDCL_SOURCE_DIR, "models",
                                                "sdcl-shapes-inpainting.safetensors", NULL);
  g_autofree gchar *init = write_init ("shipped-inp-init.png", 64, 64);
  g_autofree gchar *mask = write_mask ("shipped-inp-mask.png", 64, 64, 255);
  g_autofree gchar *out = scratch_path ("shipped-inp-out.png");
  g_unsetenv ("SDCL_MODEL");
  g_autoptr (Result) r = run_sdcl ("inpaint", "--prompt", "a red square", "--init", init,
                                   "--mask", mask, "--steps", "2", "--seed", "4", "-o", out);
  expect (r, 0, NULL);
  check_png_has (out, 64, 64, "a red square",
                 g_file_test (variant, G_FILE_TEST_EXISTS) ? "Model: sdcl-shapes-inpainting,"
                                                           : "Model: sdcl-shapes,");
}

/* SIGINT once the first step is reported: the run stops, says
 * "cancelled", exits 1 and writes nothing. */
static void
test_cancel (void)
{
  g_autofree gchar *out = scratch_path ("cancelled.png");
  const gchar *argv[] = { SDCL_EXE, "generate", "--model", model, "--prompt", "x", "--steps",
                          "1000", "--width", "64", "--height", "64", "-o", out, NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                                 | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  g_autoptr (GDataInputStream) err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (p));
  g_autoptr (GString) seen = g_string_new (NULL);
  gchar *line;
  while ((line = g_data_input_stream_read_line_utf8 (err, NULL, NULL, &error)))
    {
      g_string_append_printf (seen, "%s\n", line);
      const gboolean stepping = g_str_has_prefix (line, "step 1/1000");
      g_free (line);
      if (stepping)
        {
          g_subprocess_send_signal (p, SIGINT);
          break;
        }
    }
  g_assert_no_error (error);
  while ((line = g_data_input_stream_read_line_utf8 (err, NULL, NULL, NULL)))
    {
      g_string_append_printf (seen, "%s\n", line);
      g_free (line);
    }
  g_subprocess_wait (p, NULL, &error);
  g_assert_no_error (error);
  if (exit_status (p) != 1 || !strstr (seen->str, "sdcl generate: cancelled"))
    sdcl_test_fail ("expected exit 1 and \"cancelled\", got exit %d:\n%s", exit_status (p), seen->str);
  g_assert_null (strstr (seen->str, "step 1000/1000"));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* ---- main ------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  scratch = sdcl_test_scratch_new ("sdcl-cli-XXXXXX");
  model = sdcl_test_fixture ("models/tiny-sd.safetensors");

  g_test_add_func ("/cli/usage/unknown-command", test_no_command);
  for (guint i = 0; i < G_N_ELEMENTS (bad_args); i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/cli/usage/%s", bad_args[i].path);
      g_test_add_data_func (path, &bad_args[i], test_bad_args);
    }
  g_test_add_func ("/cli/usage/output-is-model", test_output_is_model);
  g_test_add_func ("/cli/usage/batch-output-is-input", test_batch_output_is_input);
  g_test_add_func ("/cli/usage/sampler-help", test_sampler_help);
  g_test_add_func ("/cli/errors/missing-model", test_missing_model);
  g_test_add_func ("/cli/errors/missing-output-folder", test_missing_output_folder);
  g_test_add_func ("/cli/run/model-from-environment", test_model_from_environment);
  g_test_add_func ("/cli/run/shipped-model", test_shipped_model);
  g_test_add_func ("/cli/errors/inpaint-black-mask", test_black_mask);
  g_test_add_func ("/cli/errors/mask-size", test_mask_size);
  g_test_add_func ("/cli/errors/init-wrong-size", test_init_wrong_size);
  g_test_add_func ("/cli/errors/init-not-png", test_init_not_png);
  g_test_add_func ("/cli/run/generate", test_generate);
  g_test_add_func ("/cli/run/generate-batch", test_generate_batch);
  g_test_add_func ("/cli/run/img2img", test_img2img);
  g_test_add_func ("/cli/run/inpaint", test_inpaint);
  g_test_add_func ("/cli/run/inpaint-shipped-model", test_shipped_inpaint_model);
  g_test_add_func ("/cli/run/cancel", test_cancel);

  int status = g_test_run ();
  sdcl_test_scratch_remove (scratch);
  g_free (scratch);
  g_free (model);
  return status;
}

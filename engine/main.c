/* main.c — the sdcl command-line tool. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static int
cmd_devices (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = sdcl_list_devices (&error);
  if (!devices)
    {
      g_printerr ("sdcl: %s\n", error->message);
      return 1;
    }
  if (devices->len == 0)
    {
      g_printerr ("sdcl: no OpenCL device found: install an OpenCL driver for your GPU, "
                  "or PoCL (package pocl-opencl-icd) to run on the CPU\n");
      return 1;
    }
  for (guint i = 0; i < devices->len; i++)
    {
      SdclDeviceInfo *d = devices->pdata[i];
      g_print ("%u: %s [%s]\n", d->device_index, d->name, d->platform_name);
      g_print ("   type %s, %u compute units, driver %s, %s\n", d->is_gpu ? "GPU" : "CPU",
               d->compute_units, d->driver_version, d->opencl_c_version);
      g_print ("   global memory %" G_GUINT64_FORMAT " MiB, max allocation %" G_GUINT64_FORMAT
               " MiB, local memory %" G_GUINT64_FORMAT " KiB\n",
               d->global_mem_bytes >> 20, d->max_alloc_bytes >> 20, d->local_mem_bytes >> 10);
      g_print ("   fp16 %s, subgroups %s, max work-group size %" G_GSIZE_FORMAT "\n",
               d->has_fp16 ? "yes" : "no (weights stored as f16, computed in f32)",
               d->has_subgroups ? "yes" : "no", d->max_work_group_size);
    }
  return 0;
}

static int
cmd_demo (int argc, char **argv)
{
  g_autofree gchar *output = NULL;
  g_autofree gchar *device = NULL;
  gint size = 512;
  GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "PNG file to write", "FILE" },
    { "size", 's', 0, G_OPTION_ARG_INT, &size, "Width and height (64, 128, ... 4096)", "N" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "OpenCL device (index or name)", "DEV" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- render a picture with the engine's kernels");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !output || size <= 0)
    {
      g_printerr ("sdcl demo: %s\nusage: sdcl demo -o FILE.png [--size N] [--device DEV]\n",
                  error ? error->message : "an output file is required (-o FILE.png)");
      return 2;
    }
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (SdclEngine) engine = sdcl_engine_new (device, &error);
  if (!engine)
    {
      g_printerr ("sdcl demo: %s\n", error->message);
      return 1;
    }
  g_autofree guint8 *pixels = sdcl_demo_render (engine, size, &error);
  const gchar *text[] = { "Software", "sdcl demo", NULL };
  if (!pixels || !sdcl_png_write (output, size, size, 3, pixels, text, &error))
    {
      g_printerr ("sdcl demo: %s\n", error->message);
      return 1;
    }
  g_print ("wrote %s (%dx%d) on %s in %.2f s\n", output, size, size,
           sdcl_engine_device (engine)->name, (g_get_monotonic_time () - t0) / 1e6);
  return 0;
}

static gchar *
format_bytes (guint64 bytes)
{
  return g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
}

static gchar *
format_params (guint64 n)
{
  return n >= 1000000 ? g_strdup_printf ("%.1f M", n / 1e6) : g_strdup_printf ("%.1f k", n / 1e3);
}

static int
cmd_info (int argc, char **argv)
{
  g_autofree gchar *vae = NULL;
  GOptionEntry entries[] = {
    { "vae", 0, 0, G_OPTION_ARG_FILENAME, &vae, "A VAE file or folder replacing the model's", "VAE" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("MODEL - what a model file holds");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 2)
    {
      g_printerr ("sdcl info: %s\nusage: sdcl info MODEL [--vae VAE]\n",
                  error ? error->message : "give one model file or diffusers folder");
      return 2;
    }
  g_autoptr (SdclModelInfo) info = sdcl_model_inspect (argv[1], vae, &error);
  if (!info)
    {
      g_printerr ("sdcl info: %s\n", error->message);
      return 1;
    }
  g_autofree gchar *te = format_params (info->text_encoder_params);
  g_autofree gchar *un = format_params (info->unet_params);
  g_autofree gchar *va = format_params (info->vae_params);
  g_autofree gchar *wb = format_bytes (info->weight_bytes);
  g_autofree gchar *work = format_bytes (info->work_bytes);
  g_autofree gchar *total = format_bytes (info->weight_bytes + info->work_bytes);
  g_print ("%s\n", info->path);
  g_print ("  kind           %s (UNet input %u channels)\n", info->kind_name, info->unet_in_channels);
  g_print ("  layout         %s, weights stored as %s\n", info->layout, info->file_dtypes);
  if (info->vae_path)
    g_print ("  VAE            replaced by %s\n", info->vae_path);
  g_print ("  text encoder   %s parameters (%u wide, %u layers)\n", te, info->text_width,
           info->text_layers);
  g_print ("  UNet           %s parameters\n", un);
  g_print ("  VAE            %s parameters (latent %u channels, 1/%u of the image)\n", va,
           info->latent_channels, info->latent_factor);
  g_print ("  native size    %u x %u\n", info->native_size, info->native_size);
  g_autofree gchar *part = format_bytes (info->part_peak_bytes);
  g_print ("  device memory  %s weights (f16) + about %s working = %s with every part resident;\n"
           "                about %s loading each part when needed (sdcl generate, the plug-in)\n",
           wb, work, total, part);
  return 0;
}

static void
usage (void)
{
  g_printerr ("usage: sdcl COMMAND [OPTIONS]\n\n"
              "commands:\n"
              "  generate   make images from a prompt (--model MODEL --prompt TEXT -o OUT.png)\n"
              "  img2img    redraw an image after a prompt (... --init IMAGE)\n"
              "  inpaint    repaint the white part of a mask (... --init IMAGE --mask MASK)\n"
              "  devices    list OpenCL platforms and devices\n"
              "  info       what a model file holds: kind, parts, sizes (sdcl info MODEL)\n"
              "  demo       render a picture with the engine's kernels (-o FILE.png)\n\n"
              "sdcl COMMAND --help lists a command's options.\n");
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  const gchar *command = argc >= 2 ? argv[1] : "";
  if (g_str_equal (command, "generate"))
    return sdcl_cli_generate (SDCL_MODE_TXT2IMG, argc - 1, argv + 1);
  if (g_str_equal (command, "img2img"))
    return sdcl_cli_generate (SDCL_MODE_IMG2IMG, argc - 1, argv + 1);
  if (g_str_equal (command, "inpaint"))
    return sdcl_cli_generate (SDCL_MODE_INPAINT, argc - 1, argv + 1);
  if (g_str_equal (command, "devices"))
    return cmd_devices ();
  if (g_str_equal (command, "info"))
    return cmd_info (argc - 1, argv + 1);
  if (g_str_equal (command, "demo"))
    return cmd_demo (argc - 1, argv + 1);
  const gboolean asked = g_str_equal (command, "help") || g_str_equal (command, "--help");
  if (*command && !asked)
    g_printerr ("sdcl: unknown command \"%s\"\n", command);
  usage ();
  return asked ? 0 : 2;
}

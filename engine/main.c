/* main.c — the sdcl command-line tool. */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

#include "sdcl.h"

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

static void
usage (void)
{
  g_printerr ("usage: sdcl COMMAND [OPTIONS]\n\n"
              "commands:\n"
              "  devices    list OpenCL platforms and devices\n"
              "  demo       render a picture with the engine's kernels (-o FILE.png)\n");
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (argc >= 2 && g_str_equal (argv[1], "devices"))
    return cmd_devices ();
  if (argc >= 2 && g_str_equal (argv[1], "demo"))
    return cmd_demo (argc - 1, argv + 1);
  usage ();
  return 2;
}

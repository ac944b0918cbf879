/* main.c — the sdcl command-line tool. */
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

int
main (int argc, char **argv)
{
  if (argc >= 2 && g_str_equal (argv[1], "devices"))
    return cmd_devices ();
  g_printerr ("usage: sdcl devices\n");
  return 2;
}

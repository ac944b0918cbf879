/* make-random-model.c — writes a checkpoint of random weights with a real
 * architecture (see fullsize.h): `make-random-model CONFIG_DIR OUT.safetensors`.
 * With models/configs/sd15 it is an SD 1.5-shaped file of about 2 GB. */
#include <locale.h>

#include "fullsize.h"

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (argc != 3)
    {
      g_printerr ("usage: make-random-model CONFIG_DIR OUT.safetensors\n");
      return 2;
    }
  g_autoptr (GError) error = NULL;
  const gint64 t0 = g_get_monotonic_time ();
  if (!sdcl_test_write_random_model (argv[1], argv[2], &error))
    {
      g_printerr ("make-random-model: %s\n", error->message);
      return 1;
    }
  g_print ("wrote %s in %.1f s\n", argv[2], (g_get_monotonic_time () - t0) / 1e6);
  return 0;
}

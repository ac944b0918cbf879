/* test-runtime.c — the OpenCL runtime: device choice and its errors, the
 * on-disk program cache (including corrupt and foreign entries), the
 * profiler and the activation pool.
 */
#include <glib/gstdio.h>
#include <string.h>

#include "ops.h"

/* Runs one small kernel and checks its result: y = 2x + 1. */
static void
run_scale (SdclEngine *engine)
{
  g_autoptr (GError) error = NULL;
  const gfloat x[5] = { 0, 1, 2, 3, -4 };
  const gint64 ne[4] = { 5, 1, 1, 1 };
  g_autoptr (SdclTensor) t = sdcl_tensor_new (engine, SDCL_DTYPE_F32, 4, ne, &error);
  g_assert_no_error (error);
  g_assert_true (sdcl_tensor_write (t, x, &error));
  g_autoptr (SdclTensor) y = sdcl_scale (t, 2.0f, 1.0f, &error);
  g_assert_no_error (error);
  g_autofree gfloat *v = sdcl_tensor_read_f32 (y, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 5; i++)
    g_assert_cmpfloat (v[i], ==, 2 * x[i] + 1);
}

static void
test_device_choice (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = sdcl_list_devices (&error);
  g_assert_no_error (error);
  g_assert_cmpuint (devices->len, >=, 1);
  SdclDeviceInfo *first = devices->pdata[0];
  g_assert_cmpuint (first->max_alloc_bytes, >, 0);
  g_assert_cmpuint (first->max_alloc_bytes, <=, first->global_mem_bytes);

  /* by index, and by a name substring in another case */
  g_autoptr (SdclEngine) by_index = sdcl_engine_new ("0", &error);
  g_assert_no_error (error);
  g_autofree gchar *upper = g_ascii_strup (first->name, 6);
  g_autoptr (SdclEngine) by_name = sdcl_engine_new (upper, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (sdcl_engine_device (by_name)->name, ==, first->name);

  g_assert_null (sdcl_engine_new ("no-such-device-anywhere", &error));
  g_assert_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_NO_DEVICE);
  g_assert_nonnull (strstr (error->message, "no-such-device-anywhere"));
  g_clear_error (&error);
  g_assert_null (sdcl_engine_new ("99", &error));
  g_assert_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_NO_DEVICE);
}

static void
test_device_env_override (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr (GError) error = NULL;
      g_setenv ("SDCL_DEVICE", "no-such-device-anywhere", TRUE);
      g_assert_null (sdcl_engine_new ("0", &error));
      g_assert_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_NO_DEVICE);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* With no OpenCL platform at all (the ICD loader pointed at an empty
 * vendor folder), the engine says so instead of crashing. The loader
 * reads its configuration once per process, hence the subprocess. */
static void
test_no_device (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) devices = sdcl_list_devices (&error);
      g_assert_no_error (error);
      g_assert_cmpuint (devices->len, ==, 0);
      g_assert_null (sdcl_engine_new (NULL, &error));
      g_assert_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_NO_DEVICE);
      g_assert_nonnull (strstr (error->message, "no OpenCL device"));
      return;
    }
  g_autofree gchar *empty = g_dir_make_tmp ("sdcl-icd-XXXXXX", NULL);
  g_auto (GStrv) env = g_get_environ ();
  env = g_environ_setenv (env, "OCL_ICD_VENDORS", empty, TRUE);
  env = g_environ_unsetenv (env, "OPENCL_VENDOR_PATH");
  env = g_environ_unsetenv (env, "SDCL_DEVICE");
  g_test_trap_subprocess_with_envp (NULL, (const gchar * const *) env, 0,
                                    G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_rmdir (empty);
}

static guint
count_files (const gchar *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;
  while (d && g_dir_read_name (d))
    n++;
  return n;
}

/* Writes `bytes` over every file in dir (all of it when length < 0). */
static void
spoil_cache (const gchar *dir, const gchar *bytes, gssize length)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  while ((name = g_dir_read_name (d)))
    {
      g_autofree gchar *path = g_build_filename (dir, name, NULL);
      g_autofree gchar *data = NULL;
      gsize n = 0;
      g_assert_true (g_file_get_contents (path, &data, &n, NULL));
      if (length < 0)
        g_assert_true (g_file_set_contents (path, bytes, strlen (bytes), NULL));
      else
        {
          memcpy (data + n / 2, bytes, MIN ((gsize) length, n - n / 2));   /* middle of payload */
          g_assert_true (g_file_set_contents (path, data, n, NULL));
        }
    }
}

static void
test_program_cache (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("sdcl-kcache-XXXXXX", NULL);
  g_setenv ("SDCL_KERNEL_CACHE", dir, TRUE);
  g_autoptr (GError) error = NULL;

  {
    g_autoptr (SdclEngine) e = sdcl_engine_new (NULL, &error);
    g_assert_no_error (error);
    run_scale (e);
  }
  g_assert_cmpuint (count_files (dir), ==, 1);   /* elementwise.cl */

  /* from the cache */
  {
    g_autoptr (SdclEngine) e = sdcl_engine_new (NULL, &error);
    run_scale (e);
  }

  /* corrupt payload, then a foreign file under the same name: both are
   * ignored, the program is rebuilt and the entry rewritten */
  static const gchar junk[] = "\xde\xad\xbe\xef garbage";
  spoil_cache (dir, junk, sizeof junk - 1);
  {
    g_autoptr (SdclEngine) e = sdcl_engine_new (NULL, &error);
    run_scale (e);
  }
  spoil_cache (dir, "not a kernel binary", -1);
  {
    g_autoptr (SdclEngine) e = sdcl_engine_new (NULL, &error);
    run_scale (e);
  }
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name = g_dir_read_name (d);
  g_autofree gchar *path = g_build_filename (dir, name, NULL);
  g_autofree gchar *data = NULL;
  gsize n = 0;
  g_assert_true (g_file_get_contents (path, &data, &n, NULL));
  g_assert_cmpuint (n, >, 64);
  g_assert_cmpmem (data, 8, "SDCLKBIN", 8);
  g_assert_cmpuint (strlen (name), ==, 64);   /* named by its SHA-256 key */

  g_unsetenv ("SDCL_KERNEL_CACHE");
  g_autofree gchar *cmd = g_strdup_printf ("rm -rf '%s'", dir);
  g_assert_cmpint (system (cmd), ==, 0);
}

static void
test_profile (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("sdcl-profile-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "profile.csv", NULL);
  g_setenv ("SDCL_PROFILE", path, TRUE);
  {
    g_autoptr (GError) error = NULL;
    g_autoptr (SdclEngine) e = sdcl_engine_new (NULL, &error);
    g_assert_no_error (error);
    run_scale (e);
    run_scale (e);
  }
  g_unsetenv ("SDCL_PROFILE");
  g_autofree gchar *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  g_assert_cmpstr (lines[0], ==, "kernel,global,local,time_us");
  g_assert_true (g_str_has_prefix (lines[1], "scale_f32,256,256,"));
  g_assert_true (g_str_has_prefix (lines[2], "scale_f32,"));
  g_remove (path);
  g_rmdir (dir);

  /* an unwritable profile path is an error, not a crash */
  g_setenv ("SDCL_PROFILE", "/nonexistent-dir/profile.csv", TRUE);
  g_autoptr (GError) error = NULL;
  g_assert_null (sdcl_engine_new (NULL, &error));
  g_assert_nonnull (strstr (error->message, "SDCL_PROFILE"));
  g_unsetenv ("SDCL_PROFILE");
}

/* Freed activations go back to the pool and are reused: running the same
 * work twice needs no new device memory. */
static void
test_pool_reuse (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclEngine) e = sdcl_engine_new (NULL, &error);
  g_assert_no_error (error);
  run_scale (e);
  const guint64 after_first = sdcl_engine_memory_in_use (e);
  for (int i = 0; i < 10; i++)
    run_scale (e);
  g_assert_cmpuint (sdcl_engine_memory_in_use (e), ==, after_first);
  sdcl_engine_trim (e);
  g_assert_cmpuint (sdcl_engine_memory_in_use (e), ==, 0);

  /* beyond the device's largest allocation: a clear error */
  const guint64 max = sdcl_engine_device (e)->max_alloc_bytes;
  const gint64 ne[4] = { (gint64) (max / 4) + 1024, 1, 1, 1 };
  g_assert_null (sdcl_tensor_new (e, SDCL_DTYPE_F32, 4, ne, &error));
  g_assert_error (error, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_OUT_OF_MEMORY);
  g_assert_nonnull (strstr (error->message, "largest single allocation"));
  g_clear_error (&error);
  /* and a size whose byte count overflows */
  const gint64 huge[4] = { G_MAXINT64 / 2, 4, 1, 1 };
  g_assert_null (sdcl_tensor_new (e, SDCL_DTYPE_F32, 4, huge, &error));
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/runtime/device-choice", test_device_choice);
  g_test_add_func ("/runtime/device-env-override", test_device_env_override);
  g_test_add_func ("/runtime/no-device", test_no_device);
  g_test_add_func ("/runtime/program-cache", test_program_cache);
  g_test_add_func ("/runtime/profile", test_profile);
  g_test_add_func ("/runtime/pool-reuse", test_pool_reuse);
  return g_test_run ();
}

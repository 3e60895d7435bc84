/* tests/gpu/test_cuda_sd.c — SD on the GPU end to end: the tiny checkpoint of
 * tests/golden/sd moved onto a CUDA context (lvd_sd_to_device: bf16 weights) against
 * the fp32 CPU model, on two real photos (../shared/data/images):
 *   - each sample's maps per token (lvd_attnmap_sample_run) within SD_DEV_MAP_TOL
 *     (tests/sd_dev_util.h: bf16 rounding of every product's inputs, measured ~1% of
 *     the scale on the CPU twin of this path, bound 5%);
 *   - three samples of two latent shapes in batched UNet passes
 *     (lvd_attnmap_samples_run, what `sd-attnmap run --device cuda` does) against the
 *     fp32 single-sample maps, the same bound;
 *   - the tool: `sd-attnmap run --device cuda` and `--device cpu` on the golden
 *     manifest write records with the same ids in the same order, the same tokens and
 *     grids, maps within the same bound;
 *   - the device workspace is given back after every pass.
 * Built only when CUDA=1; without a visible device every case ends as SKIP. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "gpu/gpu_ctx.h"
#include "sd_dev_util.h"
#include "tool_util.h"
#include "core/device.h"
#include "io/container.h"
#include "nn/ctx.h"

/* The CUDA context (2 GiB of device workspace), or SKIP with the reason. */
static struct lvd_ctx *gpu(void) { return lvd_test_gpu((size_t)2 << 30); }

static void test_sample_maps(void)
{
	struct lvd_ctx *dev = gpu();
	const char *shared = lvd_test_shared_data();
	if (!shared)
		SKIP("../shared/data not found (set LVD_SHARED_DATA)");
	static struct sd_dev_fixture f;
	sd_dev_fixture_init(&f, shared);
	struct lvd_sd *a = sd_dev_load(NULL), *b = sd_dev_load(dev);
	REQUIRE(a && b);
	sd_dev_check_samples(a, b, &f, SD_DEV_MAP_TOL);
	sd_dev_check_grouped(a, b, &f, SD_DEV_MAP_TOL);
	CHECK(lvd_ctx_mark(dev) == 0);
	lvd_sd_free(a);
	lvd_sd_free(b);
}

/* Runs the tool on the golden manifest on `device` into dir/name; 0 on success. */
static int run_tool(const char *dir, const char *name, const char *device, const char *shared)
{
	char out[300], log[300], images[4200], clip[4200], manifest[4200], sd[4200];
	snprintf(out, sizeof out, "%s/%s", dir, name);
	snprintf(log, sizeof log, "%s/%s.log", dir, name);
	snprintf(images, sizeof images, "%s/images", shared);
	snprintf(clip, sizeof clip, "%s/clip", shared);
	snprintf(manifest, sizeof manifest, "%s", lvd_test_path("tests/golden/attnmap/manifest.jsonl"));
	snprintf(sd, sizeof sd, "%s", lvd_test_path("tests/golden/sd/diffusers"));
	char *argv[] = {(char *)lvd_test_tool("sd-attnmap"), "run", "--sd", sd, "--tokenizer", clip, "--manifest",
			manifest, "--images", images, "--out", out, "--resolution", "256", "--fold-vocab", "--device",
			(char *)device, "--batch", "2", "-q", NULL};
	int rc = lvd_test_run_tool(argv, log);
	if (rc)
		fprintf(stderr, "  sd-attnmap --device %s exited %d (log %s)\n", device, rc, log);
	return rc;
}

static void test_tool_cuda_vs_cpu(void)
{
	gpu();
	const char *shared = lvd_test_shared_data();
	if (!shared)
		SKIP("../shared/data not found (set LVD_SHARED_DATA)");
	if (access(lvd_test_tool("sd-attnmap"), X_OK))
		SKIP("%s not built", lvd_test_tool("sd-attnmap"));
	char dir[] = "/tmp/lvd-cuda-sd-XXXXXX";
	REQUIRE(mkdtemp(dir));
	REQUIRE(run_tool(dir, "cpu", "cpu", shared) == 0);
	REQUIRE(run_tool(dir, "cuda", "cuda", shared) == 0);
	struct lvd_rec_reader *rc = NULL, *rg = NULL;
	struct lvd_error err = {0};
	char p[400];
	snprintf(p, sizeof p, "%s/cpu/attn-00000.lvdm", dir);
	REQUIRE(lvd_rec_open(&rc, p, LVD_REC_KIND_MAPS, &err) == 0);
	snprintf(p, sizeof p, "%s/cuda/attn-00000.lvdm", dir);
	REQUIRE(lvd_rec_open(&rg, p, LVD_REC_KIND_MAPS, &err) == 0);
	REQUIRE(lvd_rec_count(rc) == 2 && lvd_rec_count(rg) == 2);
	for (size_t k = 0; k < 2; k++) {
		void *bc = NULL, *bg = NULL;
		size_t lc = 0, lg = 0;
		struct lvd_mapsrec c, g;
		REQUIRE(lvd_rec_read(rc, k, &bc, &lc, &err) == 0 && lvd_rec_read(rg, k, &bg, &lg, &err) == 0);
		REQUIRE(lvd_mapsrec_decode(&c, bc, lc, "cpu", &err) == 0 && lvd_mapsrec_decode(&g, bg, lg, "cuda", &err) == 0);
		CHECK(!strcmp(c.id, g.id) && c.index == g.index && c.T == g.T && c.grid_w == g.grid_w &&
		      c.grid_h == g.grid_h && c.n_timesteps == g.n_timesteps);
		for (uint32_t t = 0; t < c.T && t < g.T; t++)
			CHECK(c.tokens[t] == g.tokens[t]);
		size_t n = (size_t)c.T * c.grid_w * c.grid_h;
		float *mc = malloc(n * sizeof *mc), *mg = malloc(n * sizeof *mg);
		REQUIRE(mc && mg);
		for (size_t i = 0; i < n; i++) {
			mc[i] = lvd_f16_to_f32(c.maps[i]);
			mg[i] = lvd_f16_to_f32(g.maps[i]);
		}
		CHECK_CLOSE(c.id, mg, mc, n, 0, SD_DEV_MAP_TOL);
		free(mc);
		free(mg);
		free(bc);
		free(bg);
		lvd_mapsrec_free(&c);
		lvd_mapsrec_free(&g);
	}
	lvd_rec_close(rc);
	lvd_rec_close(rg);
	snprintf(p, sizeof p, "rm -rf '%s'", dir);
	if (!lvd_t_fail_count)
		CHECK(system(p) == 0);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_sample_maps), TEST(test_tool_cuda_vs_cpu), {0}};
	int rc = lvd_test_main(argc, argv, tests);
	lvd_test_gpu_release();
	return rc;
}

/* bench_loader — the lvd-sft pack loader alone (driven by bench/loader.sh).
 *   bench_loader make DIR N        writes a synthetic pack of N records with the released
 *                                  geometry (tile 560, patch 14, 4 tiles; 8 image sizes,
 *                                  embedded PNG photos-like gradients, 0..3 matched words
 *                                  with fp16 targets on the patch canvas, 40..200 tokens)
 *                                  and a model folder DIR/model it was made for; shards
 *                                  of 1000 records
 *   bench_loader run DIR THREADS BATCH SAMPLES [images]
 *                                  opens DIR/pack (model check included), takes batches
 *                                  until SAMPLES samples (pixels + Lavender plans for 32
 *                                  heads), prints samples/s, peak RSS and the RSS after
 *                                  open; images = 0 skips the image work (record
 *                                  streaming alone). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/sha256.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "lavender/geometry.h"
#include "lavender/packrec.h"
#include "train/loader.h"

static const int SIZES[8][2] = {{640, 480}, {480, 640}, {500, 375}, {1024, 256},
				{300, 640}, {800, 600}, {560, 560}, {256, 1000}}; /* w, h */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * 4;
}

static int die(const struct lvd_error *e)
{
	fprintf(stderr, "bench_loader: %s\n", e->msg);
	return 1;
}

static int hex_of(const char *path, char hex[LVD_SHA256_HEX_LEN], struct lvd_error *e)
{
	unsigned char d[LVD_SHA256_LEN];
	int rc = lvd_sha256_file(path, d, e);
	if (!rc)
		lvd_sha256_hex(d, hex);
	return rc;
}

static int make(const char *dir, int n)
{
	struct lvd_error e = {0};
	char p[4096], q[4096];
	snprintf(p, sizeof p, "%s/model", dir);
	if (lvd_mkdir_p(p, &e))
		return die(&e);
	snprintf(p, sizeof p, "%s/pack", dir);
	if (lvd_mkdir_p(p, &e))
		return die(&e);
	const char *cfg = "{\"model_type\": \"mllama\", \"image_token_index\": 128256, \"text_config\": "
			  "{\"pad_token_id\": 128004}, \"vision_config\": {\"image_size\": 560, \"patch_size\": 14, "
			  "\"max_num_tiles\": 4}}\n";
	char c[LVD_SHA256_HEX_LEN], t[LVD_SHA256_HEX_LEN];
	snprintf(p, sizeof p, "%s/model/config.json", dir);
	snprintf(q, sizeof q, "%s/model/tokenizer.json", dir);
	if (lvd_file_write_atomic(p, cfg, strlen(cfg), &e) || lvd_file_write_atomic(q, "{}\n", 3, &e) ||
	    hex_of(p, c, &e) || hex_of(q, t, &e))
		return die(&e);
	char hdr[1024];
	snprintf(hdr, sizeof hdr,
		 "{\"tool\": \"bench_loader\", \"params\": {}, \"inputs\": {\"model\": {\"config_sha256\": \"%s\", "
		 "\"tokenizer_sha256\": \"%s\"}}}\n",
		 c, t);
	snprintf(p, sizeof p, "%s/pack/pack.json", dir);
	if (lvd_file_write_atomic(p, hdr, strlen(hdr), &e))
		return die(&e);

	/* per size class: PNG bytes, layout, mask */
	uint8_t *png[8];
	size_t png_len[8];
	struct lvd_geom g[8];
	struct lvd_geom_cfg gc = {560, 14, 4};
	for (int k = 0; k < 8; k++) {
		int w = SIZES[k][0], h = SIZES[k][1];
		struct lvd_image im = {w, h, 3, malloc((size_t)w * h * 3)};
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++)
				for (int ch = 0; ch < 3; ch++)
					im.px[((size_t)y * w + x) * 3 + ch] = (uint8_t)((x * (ch + 1) + y * (3 - ch) + k * 40) & 255);
		if (lvd_image_encode_png(&im, &png[k], &png_len[k], &e) || lvd_geom_layout(&g[k], &gc, h, w, &e))
			return die(&e);
		free(im.px);
	}
	int32_t tokens[256], labels[256];
	size_t hw_max = 160 * 160;
	uint16_t *targets = malloc(3 * hw_max * sizeof *targets);
	uint8_t *mask = malloc(hw_max);
	FILE *lines = NULL;
	snprintf(p, sizeof p, "%s/pack/shards.jsonl", dir);
	if (!(lines = fopen(p, "w")))
		return 1;
	struct lvd_rec_writer *wr = NULL;
	int shard = 0, in_shard = 0;
	for (int i = 0; i < n; i++) {
		if (!wr) {
			snprintf(p, sizeof p, "%s/pack/train-%05d.lvdp", dir, shard);
			if (lvd_rec_writer_open(&wr, p, LVD_REC_KIND_PACK, hdr, NULL, &e))
				return die(&e);
		}
		int k = i % 8;
		struct lvd_packrec r = {0};
		char id[32];
		snprintf(id, sizeof id, "s%07d", i);
		r.id = id;
		r.flags = LVD_PACKREC_IMAGE;
		r.T = 40 + (uint32_t)((i * 37) % 161);
		for (uint32_t x = 0; x < r.T; x++) {
			tokens[x] = x == 5 ? 128256 : 1000 + (int)((x * 13 + (uint32_t)i) % 5000);
			labels[x] = x < 20 ? -100 : tokens[x];
		}
		r.tokens = tokens;
		r.labels = labels;
		r.W = (uint32_t)(i % 4);
		struct lvd_packrec_word words[3];
		uint32_t pos[3], query[3];
		char keys[3][8];
		for (uint32_t w = 0; w < r.W; w++) {
			snprintf(keys[w], sizeof keys[w], "w%u", w);
			pos[w] = 21 + 2 * w;
			query[w] = 20 + 2 * w;
			words[w] = (struct lvd_packrec_word){keys[w], 1, 1, &pos[w], &query[w], 0, 0.0f, 1.0f};
		}
		r.words = words;
		r.gh = (uint32_t)g[k].grid_h;
		r.gw = (uint32_t)g[k].grid_w;
		size_t hw = (size_t)r.gh * r.gw;
		for (size_t cc = 0; cc < hw; cc++) {
			int y = (int)(cc / r.gw), x = (int)(cc % r.gw);
			mask[cc] = y * 14 < g[k].new_h && x * 14 < g[k].new_w;
			for (uint32_t w = 0; w < r.W; w++)
				targets[w * hw + cc] = lvd_f32_to_f16(mask[cc] ? (float)((y + x + (int)w) % 17) / 16.0f : 0.0f);
		}
		r.mask = mask;
		r.targets = targets;
		r.img_w = (uint32_t)SIZES[k][0];
		r.img_h = (uint32_t)SIZES[k][1];
		r.new_w = (uint32_t)g[k].new_w;
		r.new_h = (uint32_t)g[k].new_h;
		r.tiles_h = (uint32_t)g[k].tiles_h;
		r.tiles_w = (uint32_t)g[k].tiles_w;
		r.aspect_id = (uint32_t)g[k].aspect_id;
		r.tile_px = 560;
		r.patch_px = 14;
		r.image_pos = 5;
		r.image = png[k];
		r.image_len = (uint32_t)png_len[k];
		uint8_t *buf = NULL;
		size_t len = 0;
		if (lvd_packrec_encode(&r, &buf, &len, &e) || lvd_rec_writer_append(wr, id, buf, len, &e))
			return die(&e);
		free(buf);
		if (++in_shard == 1000 || i == n - 1) {
			if (lvd_rec_writer_close(wr, &e))
				return die(&e);
			wr = NULL;
			fprintf(lines, "{\"shard\": %d, \"first\": 0, \"end\": 0, \"records\": %d}\n", shard, in_shard);
			shard++;
			in_shard = 0;
		}
	}
	fclose(lines);
	for (int k = 0; k < 8; k++)
		free(png[k]);
	free(targets);
	free(mask);
	return 0;
}

static int run(const char *dir, int threads, int batch, long samples, int images)
{
	struct lvd_error e = {0};
	char pack[4096], model[4096];
	snprintf(pack, sizeof pack, "%s/pack", dir);
	snprintf(model, sizeof model, "%s/model", dir);
	struct lvd_loader_opts o;
	lvd_loader_opts_default(&o);
	o.pack = pack;
	o.model = model;
	o.batch = batch;
	o.threads = threads;
	o.prefetch = threads > 2 ? threads : 2;
	o.images = images;
	o.heads = 32;
	o.tile_tok = 1601;
	struct lvd_loader *l = NULL;
	long rss_start = rss_kb();
	double t0 = now_s();
	if (lvd_loader_open(&l, &o, NULL, &e))
		return die(&e);
	double t1 = now_s();
	long rss_open = rss_kb();
	long got = 0, tokens = 0, pairs = 0;
	while (got < samples) {
		struct lvd_loader_batch *b = NULL;
		if (lvd_loader_next(l, &b, &e)) {
			lvd_loader_close(l);
			return die(&e);
		}
		got += b->B;
		tokens += (long)b->B * b->T;
		pairs += b->n_pairs;
		lvd_loader_release(l, b);
	}
	double t2 = now_s();
	long rss_end = rss_kb();
	uint64_t n = lvd_loader_records(l);
	lvd_loader_close(l);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("loader: %llu records, threads %d, batch %d, images %d: %ld samples in %.3f s = %.1f samples/s "
	       "(open %.3f s; %ld padded tokens, %ld pairs); RSS before open %ld KiB, after open %ld KiB, at end %ld KiB, "
	       "peak %ld KiB\n",
	       (unsigned long long)n, threads, batch, images, got, t2 - t1, (double)got / (t2 - t1), t1 - t0, tokens,
	       pairs, rss_start, rss_open, rss_end, ru.ru_maxrss);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "make"))
		return make(argv[2], atoi(argv[3]));
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "run"))
		return run(argv[2], atoi(argv[3]), atoi(argv[4]), atol(argv[5]), argc == 7 ? atoi(argv[6]) : 1);
	fprintf(stderr, "usage: bench_loader make DIR N | run DIR THREADS BATCH SAMPLES [images]\n");
	return 2;
}

/* bench_pack — lvd-pack throughput pieces (driven by bench/pack.sh).
 *   bench_pack fixture DIR N   writes N synthetic samples (tests/unit/test_pack_fixture.h)
 *   bench_pack cpu DIR N       the CPU-bound part of lvd-pack on one thread, in memory:
 *                              chat template + tokenize, word matching, resampling onto
 *                              the patch canvas, normalisation, record encoding (inputs
 *                              preloaded: no file reads, no compression, no writes);
 *                              prints samples/s and the time split. */
#include <time.h>

#include "core/clock.h"
#include "lavender/pack_sample.h"
#include "unit/test_pack_fixture.h"

#include "lavender/packrec.h"

static int cpu(const char *dir, int n)
{
	struct lvd_error e = {0};
	char p[4096];
	struct lvd_llama_tok *tok = NULL;
	snprintf(p, sizeof p, "%s/model/tokenizer.json", dir);
	if (lvd_llama_tok_load(&tok, p, LVD_LLAMA_SCHEME_MLLAMA, &e)) {
		fprintf(stderr, "bench_pack: %s\n", e.msg);
		return 1;
	}
	lvd_pack_check_tokenizer(tok, &e);
	/* inputs: the manifest's first 12 samples and their map records, cycled */
	enum { K = 12 };
	struct lvd_sample s[K];
	struct lvd_mapsrec mr[K];
	char *img[4];
	size_t img_len[4];
	memset(s, 0, sizeof s);
	memset(mr, 0, sizeof mr);
	struct lvd_manifest *man = NULL;
	struct lvd_rec_reader *rr = NULL;
	snprintf(p, sizeof p, "%s/data.jsonl", dir);
	if (lvd_manifest_open(&man, p, NULL, &e))
		goto fail;
	snprintf(p, sizeof p, "%s/maps/attn-00000.lvdm", dir);
	if (lvd_rec_open(&rr, p, LVD_REC_KIND_MAPS, &e))
		goto fail;
	for (int k = 0; k < K; k++) {
		void *buf;
		size_t len;
		if (lvd_manifest_next(man, &s[k], &e) || lvd_rec_read(rr, (size_t)k, &buf, &len, &e) ||
		    lvd_mapsrec_decode(&mr[k], buf, len, "maps", &e))
			goto fail;
		free(buf);
	}
	for (int k = 0; k < 4; k++) {
		snprintf(p, sizeof p, "%s/images/img%d.png", dir, k);
		if (lvd_file_read_all(p, 1 << 30, &img[k], &img_len[k], &e))
			goto fail;
	}
	struct lvd_pack_params prm = {0};
	lvd_geom_cfg_default(&prm.geom);
	prm.embed_images = 1;
	prm.max_tokens = 4096;
	prm.overlong_truncate = 1;
	prm.prompt = LVD_PACK_DEFAULT_PROMPT;
	struct lvd_pack_chat chat = {0};
	uint64_t bytes = 0, words = 0;
	double t0 = lvd_time_now();
	for (int i = 0; i < n; i++) {
		int k = i % K;
		struct lvd_pack_input in = {&s[k], "img.png", "img.png", (const uint8_t *)img[k % 4], img_len[k % 4], &mr[k]};
		uint8_t *out;
		size_t len;
		struct lvd_pack_stats st;
		const char *kind;
		if (lvd_pack_sample_build(&prm, tok, &chat, &in, &out, &len, &st, &kind, &e))
			goto fail;
		bytes += len;
		words += st.words;
		free(out);
	}
	double dt = lvd_time_now() - t0;
	/* the same without the image bytes in the record (memcpy of the PNG excluded) */
	prm.embed_images = 0;
	double t1 = lvd_time_now();
	for (int i = 0; i < n; i++) {
		int k = i % K;
		struct lvd_pack_input in = {&s[k], "img.png", "img.png", (const uint8_t *)img[k % 4], img_len[k % 4], &mr[k]};
		uint8_t *out;
		size_t len;
		struct lvd_pack_stats st;
		const char *kind;
		if (lvd_pack_sample_build(&prm, tok, &chat, &in, &out, &len, &st, &kind, &e))
			goto fail;
		free(out);
	}
	double dt2 = lvd_time_now() - t1;
	printf("bench_pack cpu: %d samples, 1 thread: %.0f samples/s (%.1f us/sample, %.2f words/sample, %.1f KiB/record "
	       "with image); without image bytes %.0f samples/s\n",
	       n, n / dt, 1e6 * dt / n, (double)words / n, (double)bytes / n / 1024, n / dt2);
	lvd_pack_chat_free(&chat);
	for (int k = 0; k < K; k++) {
		lvd_sample_clear(&s[k]);
		lvd_mapsrec_free(&mr[k]);
	}
	for (int k = 0; k < 4; k++)
		free(img[k]);
	lvd_rec_close(rr);
	lvd_manifest_close(man);
	lvd_llama_tok_free(tok);
	return 0;
fail:
	fprintf(stderr, "bench_pack: %s\n", e.msg);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "fixture") && strcmp(argv[1], "cpu"))) {
		fprintf(stderr, "usage: bench_pack fixture|cpu DIR N\n");
		return 2;
	}
	int n = atoi(argv[3]);
	if (n < 1)
		n = 1;
	if (!strcmp(argv[1], "cpu"))
		return cpu(argv[2], n);
	struct lvd_error e = {0};
	const char *src = getenv("LVD_SRCDIR");
	if (pkf_make(argv[2], n, 0, src && *src ? src : ".", &e)) {
		fprintf(stderr, "bench_pack: %s\n", e.msg);
		return 1;
	}
	return 0;
}

/* Tokenizer throughput: our Llama-3 tokenizer on a text file, single thread.
 *
 *   bench_tokenizer gen OUT MB            write OUT: MB megabytes of text lines drawn
 *                                         (seeded) from tests/golden/tokenizer/corpus.json
 *   bench_tokenizer run TOKENIZER FILE RUNS   encode FILE one line per call (special
 *                                         tokens mapped, as HF does) RUNS times; prints one
 *                                         JSON line with the median seconds, MB/s, tokens/s
 *                                         and the token count
 *   bench_tokenizer longline TOKENIZER MB one line of MB megabytes of 'a': seconds (Llama-3
 *                                         and, when CLIP is given as 4th arg, CLIP) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "text/clip_tok.h"
#include "text/llama_tok.h"
#include "text/textio.h"

#define CHUNK 1 /* one line per encode call, as a data pipeline does */

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int gen(const char *out, long mb)
{
	json_t *c = json_load_file("tests/golden/tokenizer/corpus.json", JSON_ALLOW_NUL, NULL);
	if (!c) {
		fprintf(stderr, "bench_tokenizer: cannot read tests/golden/tokenizer/corpus.json\n");
		return 1;
	}
	json_t *lines = json_object_get(c, "lines");
	size_t n = json_array_size(lines);
	FILE *f = fopen(out, "wb");
	if (!f || !n) {
		json_decref(c);
		return 1;
	}
	uint64_t s = 0x9E3779B97F4A7C15ull;
	size_t total = 0, want = (size_t)mb << 20;
	while (total < want) {
		s ^= s << 13; s ^= s >> 7; s ^= s << 17;
		json_t *l = json_array_get(lines, (size_t)(s % n));
		const char *t = json_string_value(l);
		size_t len = json_string_length(l);
		if (memchr(t, 0, len) || memchr(t, '\n', len)) /* one line each, no NULs */
			continue;
		fwrite(t, 1, len, f);
		fputc('\n', f);
		total += len + 1;
	}
	json_decref(c);
	return fclose(f) ? 1 : 0;
}

static int run(const char *tokpath, const char *file, int runs)
{
	struct lvd_error err = {0};
	struct lvd_llama_tok *tok;
	double t0 = lvd_time_now();
	if (lvd_llama_tok_load(&tok, tokpath, LVD_LLAMA_SCHEME_MLLAMA, &err)) {
		fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
		return 1;
	}
	double load = lvd_time_now() - t0;
	char *data;
	size_t len;
	if (lvd_text_read_file(file, &data, &len, &err)) {
		fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
		return 1;
	}
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	double times[64];
	size_t ntok = 0;
	if (runs > 64)
		runs = 64;
	for (int r = 0; r < runs; r++) {
		ntok = 0;
		double a = lvd_time_now();
		size_t p = 0;
		while (p < len) {
			size_t e = p + CHUNK < len ? p + CHUNK : len;
			while (e < len && data[e - 1] != '\n')
				e++;
			lvd_tokens_clear(&t);
			if (lvd_llama_encode(tok, data + p, e - p, LVD_LLAMA_ALLOW_SPECIAL, &t, &err)) {
				fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
				return 1;
			}
			ntok += t.n;
			p = e;
		}
		times[r] = lvd_time_now() - a;
	}
	qsort(times, (size_t)runs, sizeof *times, cmp_d);
	double med = times[runs / 2];
	printf("{\"impl\": \"lvd\", \"bytes\": %zu, \"tokens\": %zu, \"median_s\": %.4f, \"mb_per_s\": %.2f, "
	       "\"tokens_per_s\": %.0f, \"load_s\": %.3f, \"runs\": %d}\n",
	       len, ntok, med, (double)len / med / 1e6, (double)ntok / med, load, runs);
	lvd_tokens_free(&t);
	free(data);
	lvd_llama_tok_free(tok);
	return 0;
}

static int longline(const char *tokpath, long mb, const char *clippath)
{
	struct lvd_error err = {0};
	struct lvd_llama_tok *tok;
	if (lvd_llama_tok_load(&tok, tokpath, LVD_LLAMA_SCHEME_MLLAMA, &err)) {
		fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
		return 1;
	}
	size_t n = (size_t)mb << 20;
	char *s = malloc(n);
	if (!s)
		return 1;
	memset(s, 'a', n);
	struct lvd_tokens t;
	lvd_tokens_init(&t);
	double a = lvd_time_now();
	int rc = lvd_llama_encode(tok, s, n, 0, &t, &err);
	double dl = lvd_time_now() - a;
	size_t nl = t.n;
	double dc = -1;
	size_t nc = 0;
	if (!rc && clippath) {
		struct lvd_clip_tok *clip;
		if ((rc = lvd_clip_tok_load(&clip, clippath, &err)) == 0) {
			lvd_tokens_clear(&t);
			a = lvd_time_now();
			rc = lvd_clip_encode(clip, s, n, NULL, &t, &err);
			dc = lvd_time_now() - a;
			nc = t.n;
			lvd_clip_tok_free(clip);
		}
	}
	if (rc)
		fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
	else
		printf("{\"impl\": \"lvd\", \"longline_mb\": %ld, \"llama_s\": %.4f, \"llama_tokens\": %zu, "
		       "\"clip_s\": %.4f, \"clip_tokens\": %zu}\n", mb, dl, nl, dc, nc);
	lvd_tokens_free(&t);
	free(s);
	lvd_llama_tok_free(tok);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "gen"))
		return gen(argv[2], atol(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "run"))
		return run(argv[2], argv[3], atoi(argv[4]) > 0 ? atoi(argv[4]) : 1);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "longline"))
		return longline(argv[2], atol(argv[3]), argc == 5 ? argv[4] : NULL);
	fprintf(stderr, "usage: bench_tokenizer gen OUT MB | run TOKENIZER FILE RUNS | longline TOKENIZER MB [CLIP]\n");
	return 2;
}

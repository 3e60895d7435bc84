/* Tests for lib/io/safetensors: values written by the Python package (golden files from
 * tests/ref/gen_safetensors.py), f16/bf16 conversions against torch bit for bit, sharded
 * and folder opening, C writer = Python bytes, and a corpus of hostile headers. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "core/error.h"
#include "io/safetensors.h"

#define GOLD "tests/golden/safetensors/"

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
	static char buf[8][512];
	static int k;
	if (!tmpdir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(tmpdir, sizeof tmpdir, "%s/lvd-st-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			abort();
		}
	}
	char *out = buf[k++ & 7];
	snprintf(out, sizeof buf[0], "%s/%s", tmpdir, name);
	return out;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[1024];
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		struct stat sb;
		if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	*out = malloc((size_t)n + 1);
	*len = fread(*out, 1, (size_t)n, f);
	fclose(f);
	return *len == (size_t)n ? 0 : -1;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	REQUIRE(fwrite(p, 1, n, f) == n);
	fclose(f);
}

/* A safetensors file with `header` as its JSON, declared length hlen (or the real one
 * when hlen == UINT64_MAX) and nbuf zero bytes of data. */
static const char *raw_file(const char *name, const char *header, uint64_t hlen, size_t nbuf)
{
	size_t n = strlen(header);
	if (hlen == UINT64_MAX)
		hlen = n;
	unsigned char *b = calloc(1, 8 + n + nbuf);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(hlen >> (8 * i));
	memcpy(b + 8, header, n);
	const char *p = tmp_path(name);
	write_bytes(p, b, 8 + n + nbuf);
	free(b);
	return p;
}

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* ---- golden values ------------------------------------------------------------ */

static void test_golden_dtypes(void)
{
	struct lvd_error e = {0};
	struct lvd_st *st;
	int rc = lvd_st_open(&st, lvd_test_path(GOLD "dtypes.safetensors"), &e);
	CHECKF(rc == 0, "%s", e.msg);
	REQUIRE(rc == 0);
	json_error_t je;
	json_t *exp = json_load_file(lvd_test_path(GOLD "dtypes.expected.json"), 0, &je);
	REQUIRE(exp);
	CHECK(lvd_st_count(st) == json_object_size(exp));
	CHECK_STR(lvd_st_metadata(st, "format"), "pt");
	CHECK(lvd_st_metadata(st, "nope") == NULL);
	static const struct { const char *torch; enum lvd_st_dtype dt; } dmap[] = {
		{"float32", LVD_DT_F32}, {"float16", LVD_DT_F16}, {"bfloat16", LVD_DT_BF16},
		{"float64", LVD_DT_F64}, {"int64", LVD_DT_I64}, {"int32", LVD_DT_I32},
		{"int16", LVD_DT_I16}, {"int8", LVD_DT_I8}, {"uint8", LVD_DT_U8}, {"bool", LVD_DT_BOOL},
	};
	const char *key;
	json_t *v;
	size_t checked = 0, nvals = 0;
	json_object_foreach(exp, key, v) {
		const struct lvd_tensor_view *t = lvd_st_find(st, key);
		CHECKF(t != NULL, "tensor %s", key);
		if (!t)
			continue;
		CHECK_STR(t->name, key);
		const char *tdt = json_string_value(json_object_get(v, "dtype"));
		int dt = -1;
		for (size_t i = 0; i < sizeof dmap / sizeof dmap[0]; i++)
			if (!strcmp(dmap[i].torch, tdt))
				dt = (int)dmap[i].dt;
		CHECKF(dt == (int)t->dtype, "%s: dtype %s vs %s", key, tdt, lvd_st_dtype_name(t->dtype));
		json_t *shape = json_object_get(v, "shape");
		CHECK(t->ndim == (int)json_array_size(shape));
		int64_t numel = 1;
		for (int d = 0; d < t->ndim; d++) {
			CHECK(t->shape[d] == json_integer_value(json_array_get(shape, (size_t)d)));
			numel *= t->shape[d];
		}
		CHECK(t->numel == numel);
		CHECK(t->nbytes == (size_t)numel * lvd_st_dtype_size(t->dtype));
		json_t *bits = json_object_get(v, "f32_bits");
		REQUIRE(json_array_size(bits) == (size_t)numel);
		float *buf = malloc(sizeof(float) * ((size_t)numel + 1));
		CHECK(lvd_tensor_to_f32(t, buf, (size_t)numel, &e) == 0);
		for (int64_t i = 0; i < numel; i++) {
			uint32_t want = (uint32_t)json_integer_value(json_array_get(bits, (size_t)i));
			/* exact: every conversion here is exact or a single IEEE rounding (f64, i64) */
			CHECKF(fbits(buf[i]) == want, "%s[%lld]: got 0x%08x (%g), want 0x%08x", key, (long long)i,
			       fbits(buf[i]), (double)buf[i], want);
			nvals++;
		}
		free(buf);
		checked++;
	}
	CHECK(checked == 14);
	CHECK(nvals > 80);
	/* scalar: shape [] has one element */
	const struct lvd_tensor_view *s = lvd_st_find(st, "scalar");
	REQUIRE(s);
	CHECK(s->ndim == 0 && s->numel == 1 && s->nbytes == 4);
	/* views are sorted by name */
	for (size_t i = 1; i < lvd_st_count(st); i++)
		CHECK(strcmp(lvd_st_at(st, i - 1)->name, lvd_st_at(st, i)->name) < 0);
	/* data points into the mapping: the same pointer each time, never a copy */
	CHECK(lvd_st_find(st, "f32")->data == lvd_st_find(st, "f32")->data);
	CHECK_STR(lvd_st_find(st, "f32")->file, lvd_test_path(GOLD "dtypes.safetensors"));
	json_decref(exp);
	lvd_st_close(st);
}

static void test_load_f32_checks(void)
{
	struct lvd_error e = {0};
	struct lvd_st *st;
	const char *path = lvd_test_path(GOLD "dtypes.safetensors");
	REQUIRE(lvd_st_open(&st, path, &e) == 0);
	float buf[120];
	int64_t ok[4] = {2, 3, 4, 5}, any[4] = {2, -1, 4, -1}, bad[4] = {2, 3, 5, 4};
	CHECK(lvd_st_load_f32(st, "unet.down_blocks.0.conv.weight", 4, ok, buf, 120, &e) == 0);
	CHECK(lvd_st_load_f32(st, "unet.down_blocks.0.conv.weight", 4, any, buf, 120, &e) == 0);
	CHECK(lvd_st_load_f32(st, "unet.down_blocks.0.conv.weight", 4, bad, buf, 120, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "tensor 'unet.down_blocks.0.conv.weight': shape [2, 3, 4, 5] does not match the expected [2, 3, 5, 4]");
	CHECK_CONTAINS(e.msg, "dtypes.safetensors");
	CHECK(lvd_st_load_f32(st, "unet.down_blocks.0.conv.weight", 2, ok, buf, 120, &e) == LVD_ERR_INVALID);
	CHECK(lvd_st_load_f32(st, "unet.down_blocks.0.conv.weight", 4, ok, buf, 119, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "destination holds 119 floats but the tensor has 120");
	CHECK(lvd_st_load_f32(st, "x", 1, ok, buf, 120, &e) == LVD_ERR_NOTFOUND);
	char want[600];
	snprintf(want, sizeof want, "%s: tensor 'x' not found", path);
	CHECK_STR(e.msg, want);
	CHECK(lvd_st_load_f32(st, "scalar", 0, NULL, buf, 1, &e) == 0 && buf[0] == 42.5f);
	CHECK(lvd_st_load_f32(st, "empty", 2, (int64_t[]){0, 3}, NULL, 0, &e) == 0);
	lvd_st_close(st);
}

/* f32 -> f16/bf16 rounding and f16 -> f32, bit-exact against torch */
static void test_half_conversions(void)
{
	struct lvd_error e = {0};
	struct lvd_st *st;
	int rc = lvd_st_open(&st, lvd_test_path(GOLD "convert.safetensors"), &e);
	CHECKF(rc == 0, "%s", e.msg);
	REQUIRE(rc == 0);
	const struct lvd_tensor_view *src = lvd_st_find(st, "src"), *h = lvd_st_find(st, "src_f16"),
				     *b = lvd_st_find(st, "src_bf16"), *all = lvd_st_find(st, "f16_all"),
				     *allf = lvd_st_find(st, "f16_all_f32");
	REQUIRE(src && h && b && all && allf);
	REQUIRE(src->numel == h->numel && src->numel == b->numel && src->numel > 2000);
	int bad16 = 0, badbf = 0, nnan = 0;
	for (int64_t i = 0; i < src->numel; i++) {
		float f;
		uint16_t wh, wb;
		memcpy(&f, (const char *)src->data + 4 * i, 4);
		memcpy(&wh, (const char *)h->data + 2 * i, 2);
		memcpy(&wb, (const char *)b->data + 2 * i, 2);
		uint16_t gh = lvd_f32_to_f16(f), gb = lvd_f32_to_bf16(f);
		if (isnan(f)) {
			/* torch's NaN bits depend on its code path (F16C, AVX, scalar): NaN-ness
			 * and (f16) sign are what is defined */
			wh = (uint16_t)((wh & 0x7c00) == 0x7c00 && (wh & 0x3ff) ? (wh & 0x8000) | 0x7e00 : 0);
			gh = (uint16_t)((gh & 0x7c00) == 0x7c00 && (gh & 0x3ff) ? (gh & 0x8000) | 0x7e00 : 1);
			wb = (uint16_t)((wb & 0x7f80) == 0x7f80 && (wb & 0x7f) ? 0x7fc0 : 0);
			gb = (uint16_t)((gb & 0x7f80) == 0x7f80 && (gb & 0x7f) ? 0x7fc0 : 1);
			nnan++;
		}
		if (gh != wh && bad16++ < 5)
			fprintf(stderr, "  f16(%a = 0x%08x): got 0x%04x want 0x%04x\n", (double)f, fbits(f), gh, wh);
		if (gb != wb && badbf++ < 5)
			fprintf(stderr, "  bf16(%a = 0x%08x): got 0x%04x want 0x%04x\n", (double)f, fbits(f), gb, wb);
	}
	CHECK(bad16 == 0);
	CHECK(badbf == 0);
	CHECK(nnan >= 2);
	REQUIRE(all->numel == 65536 && allf->numel == 65536);
	int badall = 0;
	for (int64_t i = 0; i < 65536; i++) {
		uint16_t hb;
		uint32_t want;
		memcpy(&hb, (const char *)all->data + 2 * i, 2);
		memcpy(&want, (const char *)allf->data + 4 * i, 4);
		float got = lvd_f16_to_f32(hb);
		if (fbits(got) != want && badall++ < 5)
			fprintf(stderr, "  f16 0x%04x: got 0x%08x want 0x%08x\n", hb, fbits(got), want);
		/* every non-NaN half survives the round trip */
		if (!isnan(got) && lvd_f32_to_f16(got) != hb && badall++ < 5)
			fprintf(stderr, "  f16 0x%04x does not round-trip\n", hb);
	}
	CHECK(badall == 0);
	/* the tensor conversion loop (a separate, vectorised path) agrees on all of them */
	float *conv = malloc(65536 * sizeof *conv);
	REQUIRE(conv);
	CHECK(lvd_tensor_to_f32(all, conv, 65536, &e) == 0);
	CHECK(memcmp(conv, allf->data, 65536 * sizeof *conv) == 0);
	free(conv);
	/* bf16 -> f32 -> bf16 is the identity for non-NaN values */
	int badb = 0;
	for (uint32_t x = 0; x < 65536; x++) {
		float f = lvd_bf16_to_f32((uint16_t)x);
		if (!isnan(f) && lvd_f32_to_bf16(f) != x)
			badb++;
	}
	CHECK(badb == 0);
	lvd_st_close(st);
}

static void test_sharded_and_folder(void)
{
	struct lvd_error e = {0};
	struct lvd_st *st;
	const char *paths[2] = {lvd_test_path(GOLD "sharded/model.safetensors.index.json"),
				lvd_test_path(GOLD "sharded")};
	for (int k = 0; k < 2; k++) {
		int rc = lvd_st_open(&st, paths[k], &e);
		CHECKF(rc == 0, "%s", e.msg);
		if (rc)
			continue;
		CHECK(lvd_st_count(st) == 4);
		CHECK_STR(lvd_st_at(st, 0)->name, "a.weight");
		CHECK_STR(lvd_st_at(st, 3)->name, "z.ids");
		CHECK_STR(lvd_st_metadata(st, "format"), "pt");
		float a[6], c[4], z[3], bb[2];
		CHECK(lvd_st_load_f32(st, "a.weight", 2, (int64_t[]){2, 3}, a, 6, &e) == 0);
		for (int i = 0; i < 6; i++)
			CHECK(a[i] == (float)i);
		CHECK(lvd_st_load_f32(st, "c.weight", 2, (int64_t[]){2, 2}, c, 4, &e) == 0);
		for (int i = 0; i < 4; i++)
			CHECK(c[i] == (float)i / 4);
		CHECK(lvd_st_load_f32(st, "z.ids", 1, (int64_t[]){3}, z, 3, &e) == 0 && z[0] == 7 && z[2] == 9);
		CHECK(lvd_st_load_f32(st, "b.bias", 1, (int64_t[]){2}, bb, 2, &e) == 0 && bb[0] == 0.5f && bb[1] == -0.5f);
		CHECK_CONTAINS(lvd_st_find(st, "a.weight")->file, "model-00001-of-00002.safetensors");
		CHECK_CONTAINS(lvd_st_find(st, "z.ids")->file, "model-00002-of-00002.safetensors");
		CHECK(lvd_st_find(st, "a.weight")->dtype == LVD_DT_F32);
		CHECK(lvd_st_find(st, "c.weight")->dtype == LVD_DT_F16);
		lvd_st_close(st);
	}
	/* a diffusers folder: diffusion_pytorch_model.safetensors */
	mkdir(tmp_path("unet"), 0755);
	struct lvd_st_writer *w = lvd_st_writer_new();
	float x[3] = {1, 2, 3};
	REQUIRE(w && lvd_st_writer_add(w, "conv_in.bias", LVD_DT_F32, 1, (int64_t[]){3}, x, &e) == 0);
	CHECK(lvd_st_writer_write(w, tmp_path("unet/diffusion_pytorch_model.safetensors"), &e) == 0);
	lvd_st_writer_free(w);
	int rc = lvd_st_open(&st, tmp_path("unet"), &e);
	CHECKF(rc == 0, "%s", e.msg);
	if (!rc) {
		CHECK(lvd_st_count(st) == 1 && lvd_st_find(st, "conv_in.bias"));
		CHECK_STR(lvd_st_path(st), tmp_path("unet"));
		lvd_st_close(st);
	}
	/* an empty folder names what it looked for */
	mkdir(tmp_path("nothing"), 0755);
	CHECK(lvd_st_open(&st, tmp_path("nothing"), &e) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(e.msg, "no model.safetensors");
	CHECK(st == NULL);
	CHECK(lvd_st_open(&st, tmp_path("missing.safetensors"), &e) == LVD_ERR_IO);
	CHECK_CONTAINS(e.msg, "No such file or directory");
	/* empty file (no tensors) opens */
	rc = lvd_st_open(&st, lvd_test_path(GOLD "empty.safetensors"), &e);
	CHECKF(rc == 0, "%s", e.msg);
	if (!rc) {
		CHECK(lvd_st_count(st) == 0 && lvd_st_find(st, "x") == NULL);
		lvd_st_close(st);
	}
}

/* Reading the Python file and writing its tensors back with the C writer gives the
 * same bytes; the C file reads back with the same values. */
static void test_writer_matches_python(void)
{
	static const char *const files[] = {"dtypes.safetensors", "empty.safetensors",
					     "sharded/model-00001-of-00002.safetensors", "convert.safetensors"};
	for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
		char rel[256];
		snprintf(rel, sizeof rel, GOLD "%s", files[k]);
		struct lvd_error e = {0};
		struct lvd_st *st;
		REQUIRE(lvd_st_open(&st, lvd_test_path(rel), &e) == 0);
		struct lvd_st_writer *w = lvd_st_writer_new();
		REQUIRE(w);
		/* add in reverse order: the writer must sort */
		for (size_t i = lvd_st_count(st); i-- > 0;) {
			const struct lvd_tensor_view *t = lvd_st_at(st, i);
			CHECK(lvd_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &e) == 0);
		}
		if (lvd_st_metadata(st, "format"))
			CHECK(lvd_st_writer_meta(w, "format", lvd_st_metadata(st, "format"), &e) == 0);
		const char *out = tmp_path("rt.safetensors");
		int rc = lvd_st_writer_write(w, out, &e);
		CHECKF(rc == 0, "%s", e.msg);
		lvd_st_writer_free(w);
		unsigned char *a = NULL, *b = NULL;
		size_t na = 0, nb = 0;
		CHECK(read_file(lvd_test_path(rel), &a, &na) == 0);
		CHECK(read_file(out, &b, &nb) == 0);
		CHECKF(na == nb && memcmp(a, b, na) == 0, "%s: C writer bytes differ from Python's (%zu vs %zu bytes)",
		       files[k], nb, na);
		free(a);
		free(b);
		CHECK(access(tmp_path("rt.safetensors.tmp"), F_OK) != 0);
		struct lvd_st *st2;
		REQUIRE(lvd_st_open(&st2, out, &e) == 0);
		CHECK(lvd_st_count(st2) == lvd_st_count(st));
		for (size_t i = 0; i < lvd_st_count(st) && i < lvd_st_count(st2); i++) {
			const struct lvd_tensor_view *x = lvd_st_at(st, i), *y = lvd_st_at(st2, i);
			CHECK_STR(x->name, y->name);
			CHECK(x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes);
			CHECK(x->nbytes == 0 || memcmp(x->data, y->data, x->nbytes) == 0);
		}
		lvd_st_close(st2);
		lvd_st_close(st);
	}
}

static void test_writer_details(void)
{
	struct lvd_error e = {0};
	struct lvd_st_writer *w = lvd_st_writer_new();
	REQUIRE(w);
	uint8_t u[3] = {1, 2, 3};
	double d = 0.25;
	CHECK(lvd_st_writer_add(w, "u", LVD_DT_U8, 1, (int64_t[]){3}, u, &e) == 0);
	CHECK(lvd_st_writer_add(w, "d", LVD_DT_F64, 0, NULL, &d, &e) == 0);
	CHECK(lvd_st_writer_add(w, "u", LVD_DT_U8, 1, (int64_t[]){3}, u, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "tensor 'u' added twice");
	CHECK(lvd_st_writer_add(w, "__metadata__", LVD_DT_U8, 1, (int64_t[]){3}, u, &e) == LVD_ERR_INVALID);
	CHECK(lvd_st_writer_add(w, "neg", LVD_DT_U8, 1, (int64_t[]){-3}, u, &e) == LVD_ERR_INVALID);
	CHECK(lvd_st_writer_add(w, "big", LVD_DT_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, u, &e) == LVD_ERR_INVALID);
	CHECK(lvd_st_writer_add(w, "huge", LVD_DT_F32, 3, (int64_t[]){1LL << 40, 1LL << 40, 1LL << 40}, u, &e) == LVD_ERR_INVALID);
	CHECK(lvd_st_writer_add(w, "null", LVD_DT_F32, 1, (int64_t[]){2}, NULL, &e) == LVD_ERR_INVALID);
	static const char *const bad_utf8[] = {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
					       "\xe0\x80\xaf", "\xf0\x80\x80\xaf"};
	for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
		CHECK(lvd_st_writer_add(w, bad_utf8[i], LVD_DT_U8, 1, (int64_t[]){3}, u, &e) == LVD_ERR_INVALID);
		CHECK_CONTAINS(e.msg, "not valid UTF-8");
		CHECK(lvd_st_writer_meta(w, "k", bad_utf8[i], &e) == LVD_ERR_INVALID);
	}
	CHECK(lvd_st_writer_meta(w, "\xf0\x9f\x98\x80", "\xe2\x82\xac", &e) == 0); /* U+1F600, U+20AC */
	CHECK(lvd_st_writer_add(w, "q\"\\\n\x01/é", LVD_DT_BOOL, 1, (int64_t[]){1}, u, &e) == 0);
	CHECK(lvd_st_writer_meta(w, "zeta", "1", &e) == 0);
	CHECK(lvd_st_writer_meta(w, "alpha", "x", &e) == 0);
	CHECK(lvd_st_writer_meta(w, "alpha", "tab\there", &e) == 0); /* replaces */
	const char *out = tmp_path("details.safetensors");
	REQUIRE(lvd_st_writer_write(w, out, &e) == 0);
	lvd_st_writer_free(w);
	unsigned char *b = NULL;
	size_t nb = 0;
	REQUIRE(read_file(out, &b, &nb) == 0);
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = (hl << 8) | b[i];
	CHECK(hl % 8 == 0 && 8 + hl + 8 + 3 + 1 == nb);
	const char *want = "{\"__metadata__\":{\"alpha\":\"tab\\there\",\"zeta\":\"1\",\"\xf0\x9f\x98\x80\":\"\xe2\x82\xac\"},"
			   "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
			   "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]},"
			   "\"q\\\"\\\\\\n\\u0001/é\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[11,12]}}";
	CHECK(hl >= strlen(want) && memcmp(b + 8, want, strlen(want)) == 0);
	for (size_t i = 8 + strlen(want); i < 8 + hl; i++)
		CHECK(b[i] == ' ');
	free(b);
	struct lvd_st *st;
	REQUIRE(lvd_st_open(&st, out, &e) == 0);
	CHECK_STR(lvd_st_metadata(st, "alpha"), "tab\there");
	CHECK(lvd_st_find(st, "q\"\\\n\x01/é") != NULL);
	float f[3];
	CHECK(lvd_st_load_f32(st, "u", 1, (int64_t[]){3}, f, 3, &e) == 0 && f[2] == 3.0f);
	CHECK(lvd_st_load_f32(st, "d", 0, NULL, f, 1, &e) == 0 && f[0] == 0.25f);
	lvd_st_close(st);
	/* write failure: the folder does not exist; nothing is left behind */
	w = lvd_st_writer_new();
	REQUIRE(w);
	CHECK(lvd_st_writer_write(w, tmp_path("no/such/dir/x.safetensors"), &e) == LVD_ERR_IO);
	CHECK_CONTAINS(e.msg, "x.safetensors.tmp");
	lvd_st_writer_free(w);
}

/* ---- hostile input --------------------------------------------------------------- */

struct bad_case {
	const char *what;
	const char *header;
	uint64_t hlen;   /* UINT64_MAX: the real length */
	size_t nbuf;
	int code;
	const char *msg;
};

static void test_invalid_headers(void)
{
	static const struct bad_case cases[] = {
		{"header length > file", "{}", 100, 0, LVD_ERR_FORMAT, "header length 100 exceeds the file size (10 bytes)"},
		{"header length > limit", "{}", 1ull << 40, 0, LVD_ERR_FORMAT, "exceeds the 100000000-byte limit"},
		{"zero header", "", UINT64_MAX, 4, LVD_ERR_FORMAT, "header is not a JSON object"},
		{"non-JSON", "{not json}", UINT64_MAX, 0, LVD_ERR_FORMAT, "header is not valid JSON"},
		{"truncated JSON", "{\"a\":{\"dtype\":\"F32\"", UINT64_MAX, 0, LVD_ERR_FORMAT, "header is not valid JSON"},
		{"not an object", "[1, 2]", UINT64_MAX, 0, LVD_ERR_FORMAT, "header is not a JSON object"},
		{"trailing junk", "{} x", UINT64_MAX, 0, LVD_ERR_FORMAT, "header is not valid JSON"},
		{"invalid UTF-8", "{\"\xff\":1}", UINT64_MAX, 0, LVD_ERR_FORMAT, "header is not valid JSON"},
		{"entry not object", "{\"x\":[1]}", UINT64_MAX, 0, LVD_ERR_FORMAT, "tensor 'x': entry is not a JSON object"},
		{"missing dtype", "{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4, LVD_ERR_FORMAT,
		 "tensor 'x': missing \"dtype\""},
		{"missing shape", "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", UINT64_MAX, 4, LVD_ERR_FORMAT,
		 "tensor 'x': missing \"shape\""},
		{"missing offsets", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", UINT64_MAX, 4, LVD_ERR_FORMAT,
		 "tensor 'x': missing \"data_offsets\""},
		{"dtype not string", "{\"x\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "\"dtype\" is not a string"},
		{"unknown dtype", "{\"x\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "tensor 'x': unknown dtype 'Q4'"},
		{"unsupported dtype", "{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
		 LVD_ERR_UNSUPPORTED, "tensor 'x': dtype F8_E4M3 is not supported"},
		{"shape not array", "{\"x\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "\"shape\" is not an array"},
		{"shape float", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "shape[0] is not an integer"},
		{"negative dim", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "shape[1] = -1 is negative"},
		{"ndim 9", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
		 LVD_ERR_UNSUPPORTED, "9 dimensions (at most 8)"},
		{"overflow shape",
		 "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}",
		 UINT64_MAX, 4, LVD_ERR_FORMAT, "overflows the size range"},
		{"overflow bytes",
		 "{\"x\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}",
		 UINT64_MAX, 4, LVD_ERR_FORMAT, "overflows the size range"},
		{"huge dim", "{\"x\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
		 UINT64_MAX, 4, LVD_ERR_FORMAT, "header is not valid JSON"},
		{"offsets arity", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "\"data_offsets\" is not an array of two integers"},
		{"offsets strings", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "\"data_offsets\" is not an array of two integers"},
		{"offsets reversed", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "data_offsets [4, 0] are not ordered"},
		{"offsets negative", "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "data_offsets [-4, 0] are not ordered"},
		{"offsets beyond buffer", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "tensor 'x': data_offsets [0, 8] exceed the 4-byte data buffer"},
		{"size mismatch", "{\"unet.x\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", UINT64_MAX, 12,
		 LVD_ERR_FORMAT, "tensor 'unet.x': data_offsets [0, 12] do not match shape [2, 3] x F32 (24 bytes)"},
		{"overlap",
		 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", UINT64_MAX, 12,
		 LVD_ERR_FORMAT, "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"},
		{"same offsets",
		 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		 "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
		 LVD_ERR_FORMAT, "overlap tensor 'a' [0, 4]"},
		{"gap",
		 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", UINT64_MAX, 12,
		 LVD_ERR_FORMAT, "leave a gap: bytes [4, 8) belong to no tensor"},
		{"trailing bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 8,
		 LVD_ERR_FORMAT, "tensors end at byte 4 of a 8-byte data buffer"},
		{"duplicate tensor",
		 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", UINT64_MAX, 8,
		 LVD_ERR_FORMAT, "duplicate object key"},
		{"duplicate field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}",
		 UINT64_MAX, 4, LVD_ERR_FORMAT, "duplicate object key"},
		{"metadata not object", "{\"__metadata__\":[1]}", UINT64_MAX, 0, LVD_ERR_FORMAT,
		 "\"__metadata__\" is not a JSON object"},
		{"metadata value", "{\"__metadata__\":{\"k\":1}}", UINT64_MAX, 0, LVD_ERR_FORMAT,
		 "__metadata__ value for 'k' is not a string"},
		{"deep nesting",
		 "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", UINT64_MAX, 0,
		 LVD_ERR_FORMAT, "nests deeper than 16 levels"},
	};
	struct lvd_error e;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct bad_case *c = &cases[i];
		const char *p = raw_file("bad.safetensors", c->header, c->hlen, c->nbuf);
		struct lvd_st *st = (struct lvd_st *)&e; /* must be reset to NULL */
		lvd_error_clear(&e);
		int rc = lvd_st_open(&st, p, &e);
		CHECKF(rc == c->code, "%s: rc %d (%s), want %d", c->what, rc, e.msg, c->code);
		CHECKF(strstr(e.msg, c->msg) != NULL, "%s: message \"%s\" lacks \"%s\"", c->what, e.msg, c->msg);
		CHECKF(strstr(e.msg, p) == e.msg, "%s: message \"%s\" does not start with the file name", c->what, e.msg);
		CHECK(st == NULL);
		if (rc == 0)
			lvd_st_close(st);
	}
	/* files shorter than the 8-byte length */
	for (size_t n = 0; n < 8; n++) {
		const char *p = tmp_path("short.safetensors");
		write_bytes(p, "\x02\0\0\0\0\0\0\0", n);
		struct lvd_st *st;
		CHECK(lvd_st_open(&st, p, &e) == LVD_ERR_FORMAT);
		CHECK_CONTAINS(e.msg, "too short for a safetensors header");
	}
	/* a folder given where a file is expected inside an index, or as a .safetensors */
	mkdir(tmp_path("dir.safetensors"), 0755);
	struct lvd_st *st;
	CHECK(lvd_st_open(&st, tmp_path("dir.safetensors"), &e) == LVD_ERR_NOTFOUND);
}

static void write_text(const char *path, const char *s)
{
	write_bytes(path, s, strlen(s));
}

static void test_invalid_index(void)
{
	struct lvd_error e;
	struct lvd_st *st;
	mkdir(tmp_path("idx"), 0755);
	raw_file("idx/s1.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4);
	raw_file("idx/s2.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", UINT64_MAX, 4);
	raw_file("idx/bad.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", UINT64_MAX, 4);
	const char *ix = tmp_path("idx/model.safetensors.index.json");
	static const struct {
		const char *what, *json;
		int code;
		const char *msg;
	} cases[] = {
		{"missing shard", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"gone.safetensors\"}}", LVD_ERR_IO,
		 "idx/gone.safetensors': No such file or directory"},
		{"no weight_map", "{\"metadata\":{}}", LVD_ERR_FORMAT, "no \"weight_map\" object"},
		{"not JSON", "{\"weight_map\":", LVD_ERR_FORMAT, "model.safetensors.index.json:1:"},
		{"weight_map value", "{\"weight_map\":{\"a\":1}}", LVD_ERR_FORMAT, "weight_map['a'] is not a string"},
		{"absolute shard", "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", LVD_ERR_FORMAT, "is not a file name inside"},
		{"parent shard", "{\"weight_map\":{\"a\":\"../x.safetensors\"}}", LVD_ERR_FORMAT, "is not a file name inside"},
		{"tensor not in shard", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\"}}",
		 LVD_ERR_FORMAT, "weight_map puts tensor 'b' in 's1.safetensors' but no shard holds it"},
		{"duplicate across shards", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}",
		 LVD_ERR_FORMAT, "tensor 'a' appears in both"},
		{"duplicate key", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"a\":\"s1.safetensors\"}}", LVD_ERR_FORMAT,
		 "duplicate object key"},
		{"bad shard", "{\"weight_map\":{\"a\":\"bad.safetensors\"}}", LVD_ERR_FORMAT,
		 "idx/bad.safetensors: tensor 'a': data_offsets [0, 8] exceed"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_text(ix, cases[i].json);
		lvd_error_clear(&e);
		int rc = lvd_st_open(&st, ix, &e);
		CHECKF(rc == cases[i].code, "%s: rc %d (%s)", cases[i].what, rc, e.msg);
		CHECKF(strstr(e.msg, cases[i].msg) != NULL, "%s: message \"%s\" lacks \"%s\"", cases[i].what, e.msg,
		       cases[i].msg);
		if (rc == 0)
			lvd_st_close(st);
	}
	/* the valid one, through the folder */
	write_text(ix, "{\"metadata\":{\"total_size\":4},\"weight_map\":{\"a\":\"s1.safetensors\"}}");
	int rc = lvd_st_open(&st, tmp_path("idx"), &e);
	CHECKF(rc == 0, "%s", e.msg);
	if (rc == 0) {
		CHECK(lvd_st_count(st) == 1);
		lvd_st_close(st);
	}
}

/* Random byte mutations of a valid file: every outcome is a clean open or an error,
 * never a crash (ASan/UBSan watch the reads). */
static void test_mutation_fuzz(void)
{
	unsigned char *orig = NULL;
	size_t n = 0;
	REQUIRE(read_file(lvd_test_path(GOLD "dtypes.safetensors"), &orig, &n) == 0);
	unsigned char *b = malloc(n);
	uint64_t s = 0x9e3779b97f4a7c15ull;
	int opened = 0, failed = 0;
	const char *p = tmp_path("fuzz.safetensors");
	for (int it = 0; it < 600; it++) {
		memcpy(b, orig, n);
		int k = 1 + (int)(it % 4);
		for (int j = 0; j < k; j++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			size_t pos = (size_t)(s >> 33) % (it % 3 == 0 ? 16 : n < 700 ? n : 700);
			b[pos] = (unsigned char)(s >> 20);
		}
		size_t len = it % 7 == 0 ? (size_t)(s >> 40) % n : n;
		write_bytes(p, b, len);
		struct lvd_st *st;
		struct lvd_error e = {0};
		if (lvd_st_open(&st, p, &e) == 0) {
			opened++;
			float buf[256];
			for (size_t i = 0; i < lvd_st_count(st); i++) {
				const struct lvd_tensor_view *t = lvd_st_at(st, i);
				if (t->numel <= 256)
					CHECK(lvd_tensor_to_f32(t, buf, 256, &e) == 0);
			}
			lvd_st_close(st);
		} else {
			failed++;
			CHECK(e.code != 0 && e.msg[0]);
		}
	}
	CHECK(failed > 300);
	free(b);
	free(orig);
}

static void test_dtype_names(void)
{
	for (int i = 0; i < LVD_DT__COUNT; i++) {
		enum lvd_st_dtype d;
		CHECK(lvd_st_dtype_from_name(lvd_st_dtype_name((enum lvd_st_dtype)i), &d) == 0 && (int)d == i);
	}
	enum lvd_st_dtype d = LVD_DT_F32;
	CHECK(lvd_st_dtype_from_name("f32", &d) == -1 && d == LVD_DT_F32);
	CHECK(lvd_st_dtype_size(LVD_DT_BF16) == 2 && lvd_st_dtype_size(LVD_DT_I64) == 8 && lvd_st_dtype_size(LVD_DT_BOOL) == 1);
	/* specific rounding cases, independent of the golden file */
	CHECK(lvd_f32_to_f16(65504.0f) == 0x7bff);
	CHECK(lvd_f32_to_f16(65519.99f) == 0x7bff);
	CHECK(lvd_f32_to_f16(65520.0f) == 0x7c00);
	CHECK(lvd_f32_to_f16(0x1p-24f) == 0x0001);
	CHECK(lvd_f32_to_f16(0x1p-25f) == 0x0000);          /* tie to even: 0 */
	CHECK(lvd_f32_to_f16(0x1.8p-24f) == 0x0002);        /* 1.5 ulp: tie to even 2 */
	CHECK(lvd_f32_to_f16(-0.0f) == 0x8000);
	CHECK(lvd_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);    /* tie, even stays */
	CHECK(lvd_f32_to_f16(1.0f + 0x1.8p-10f) == 0x3c02);  /* tie, odd rounds up */
	CHECK(lvd_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);
	CHECK(lvd_f32_to_bf16(1.0f + 0x1.8p-7f) == 0x3f82);
	CHECK(lvd_f32_to_bf16(INFINITY) == 0x7f80 && lvd_f32_to_bf16(NAN) == 0x7fc0);
	CHECK(lvd_f16_to_f32(0x0001) == 0x1p-24f && lvd_f16_to_f32(0x7bff) == 65504.0f);
	CHECK(isinf(lvd_f16_to_f32(0xfc00)) && lvd_f16_to_f32(0xfc00) < 0 && isnan(lvd_f16_to_f32(0x7e00)));
	CHECK(lvd_bf16_to_f32(0x3f80) == 1.0f);
}

static void cleanup(void)
{
	if (tmpdir[0])
		rm_tree(tmpdir);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_dtype_names),
		TEST(test_golden_dtypes),
		TEST(test_load_f32_checks),
		TEST(test_half_conversions),
		TEST(test_sharded_and_folder),
		TEST(test_writer_matches_python),
		TEST(test_writer_details),
		TEST(test_invalid_headers),
		TEST(test_invalid_index),
		TEST(test_mutation_fuzz),
		{0},
	};
	atexit(cleanup);
	return lvd_test_main(argc, argv, tests);
}

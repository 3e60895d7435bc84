/* tests/fuzz/fuzz_manifest.c — manifest lines and files (lib/io/manifest.h). Each line
 * goes through lvd_manifest_parse_line and lvd_sample_sd_text for every text field;
 * then the whole input is opened as a manifest file (JSONL, or a JSON array when it
 * starts with '[') and read to the end with lvd_manifest_next. */
#include "fuzz.h"
#include "io/manifest.h"

static void fuzz_manifest_texts(const struct lvd_sample *s)
{
	struct lvd_error err = {0};
	for (int f = LVD_TEXT_AUTO; f <= LVD_TEXT_ALL; f++) {
		char *t = NULL;
		if (lvd_sample_sd_text(s, f, &t, &err) == 0)
			free(t);
	}
}

static int fuzz_manifest(const uint8_t *data, size_t size)
{
	struct lvd_manifest_opts opts = {.max_line = 1 << 16, .max_file = 1 << 20, .id_from_image = (int)(size & 1)};
	struct lvd_sample s = {0};
	struct lvd_error err = {0};
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int blank = 1;
		for (size_t i = 0; i < n; i++)
			if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
				blank = 0;
		if (!blank && lvd_manifest_parse_line("fuzz.jsonl:1", p, n, &opts, &s, &err) == 0)
			fuzz_manifest_texts(&s);
		p += n + 1;
	}
	lvd_sample_clear(&s);

	const char *path = fuzz_file("data.jsonl", data, size);
	struct lvd_manifest *m = NULL;
	if (lvd_manifest_open(&m, path, &opts, &err) == 0) {
		for (int k = 0; k < 10000; k++) {
			int rc = lvd_manifest_next(m, &s, &err);
			if (rc == LVD_MANIFEST_EOF || rc == LVD_ERR_IO || rc == LVD_ERR_NOMEM)
				break;
			if (rc == 0)
				fuzz_manifest_texts(&s);
		}
		lvd_manifest_position(m);
		lvd_manifest_close(m);
	}
	lvd_sample_clear(&s);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_manifest)

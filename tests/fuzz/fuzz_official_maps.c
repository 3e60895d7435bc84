/* tests/fuzz/fuzz_official_maps.c — the official per-word map folder reader
 * (lib/lavender/official_maps.h). The input's first line is tried as a map file name
 * (lvd_official_parse_name, then lvd_official_clean_key on its key); the rest, split at
 * "\n@@\n", gives up to three map files ROOT/x.jpg/lpm_attention/x/attention_dog.png,
 * .../x/attention_Dog_2.jpg and .../y/attention_cat.png (an absent part: no file), and
 * the folder is read. */
#include "fuzz.h"
#include "lavender/official_maps.h"

static void fuzz_official_put(const char *name, const uint8_t *d, size_t n, int present)
{
	if (present)
		fuzz_file(name, d, n);
	else
		unlink(fuzz_path(name));
}

static int fuzz_official_maps(const uint8_t *data, size_t size)
{
	struct lvd_error err = {0};
	const uint8_t *nl = memchr(data, '\n', size);
	size_t ln = nl ? (size_t)(nl - data) : size;
	char name[300], key[LVD_OFFICIAL_MAX_KEY], clean[LVD_OFFICIAL_MAX_KEY];
	if (ln < sizeof name) {
		memcpy(name, data, ln);
		name[ln] = 0;
		if (lvd_official_parse_name(name, key, sizeof key) == 1)
			lvd_official_clean_key(key, clean, sizeof clean, &err);
		lvd_official_piece_key(name, clean, sizeof clean);
	}
	const uint8_t *a, *rest, *b, *c;
	size_t na, nrest, nb, nc;
	fuzz_split(data + (nl ? ln + 1 : ln), size - (nl ? ln + 1 : ln), &a, &na, &rest, &nrest);
	int has_b = rest != a + na;
	fuzz_split(rest, nrest, &b, &nb, &c, &nc);
	int has_c = has_b && c != b + nb;
	fuzz_official_put("om/x.jpg/lpm_attention/x/attention_dog.png", a, na, 1);
	fuzz_official_put("om/x.jpg/lpm_attention/x/attention_Dog_2.jpg", b, nb, has_b);
	fuzz_official_put("om/x.jpg/lpm_attention/y/attention_cat.png", c, nc, has_c);
	struct lvd_official_set set;
	memset(&set, 0, sizeof set);
	if (lvd_official_read(&set, fuzz_path("om"), "x.jpg", &err) == 0) {
		for (size_t i = 0; i < set.n; i++)
			if (!set.maps[i].px || set.w < 1 || set.h < 1)
				abort();
		lvd_official_set_free(&set);
	}
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_official_maps)

/* tests/fuzz/fuzz_safetensors.c — safetensors files and sharded index files
 * (lib/io/safetensors.h). Input starting with '{': an index JSON, then up to two shard
 * files after "\n@@\n" separators, written as model-00001-of-00002.safetensors and
 * model-00002-of-00002.safetensors next to it; otherwise one .safetensors file. Every
 * tensor of an opened file is converted to f32 (small ones) and looked up by name. */
#include "fuzz.h"
#include "io/safetensors.h"

static int fuzz_safetensors(const uint8_t *data, size_t size)
{
	const char *path;
	if (size && data[0] == '{') {
		const uint8_t *a, *b, *b1, *b2;
		size_t na, nb, nb1, nb2;
		fuzz_split(data, size, &a, &na, &b, &nb);
		fuzz_split(b, nb, &b1, &nb1, &b2, &nb2);
		fuzz_file("st/model-00001-of-00002.safetensors", b1, nb1);
		fuzz_file("st/model-00002-of-00002.safetensors", b2, nb2);
		path = fuzz_file("st/model.safetensors.index.json", a, na);
	} else {
		path = fuzz_file("one.safetensors", data, size);
	}
	struct lvd_st *st = NULL;
	struct lvd_error err = {0};
	if (lvd_st_open(&st, path, &err) != 0)
		return 0;
	static float buf[4096];
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		if (lvd_st_find(st, t->name) == NULL)
			abort();
		if (t->numel <= 4096)
			lvd_tensor_to_f32(t, buf, 4096, &err);
	}
	lvd_st_metadata(st, "format");
	lvd_st_close(st);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_safetensors)

/* tests/fuzz/fuzz_container.c — the record container (lib/io/container.h): the bytes
 * as a shard file (header, frames, index, footer), opened with any kind; every record
 * is read (decompressed and checked) and found again by its id. */
#include "fuzz.h"
#include "io/container.h"

static int fuzz_container(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file("shard.lvdm", data, size);
	struct lvd_rec_reader *r = NULL;
	struct lvd_error err = {0};
	if (lvd_rec_open(&r, path, NULL, &err) != 0)
		return 0;
	size_t hl = 0;
	const char *h = lvd_rec_header(r, &hl);
	if (!h || strlen(h) != hl || strlen(lvd_rec_kind(r)) != 4)
		abort();
	for (size_t i = 0; i < lvd_rec_count(r) && i < 1024; i++) {
		const char *id = lvd_rec_id(r, i);
		size_t j;
		if (lvd_rec_find(r, id, &j, &err) != 0)
			abort(); /* every listed id must be found */
		lvd_rec_stored_size(r, i);
		if (lvd_rec_raw_size(r, i) > (64u << 20))
			continue;
		void *buf = NULL;
		size_t len = 0;
		if (lvd_rec_read(r, i, &buf, &len, &err) == 0) {
			if (len != lvd_rec_raw_size(r, i))
				abort();
			free(buf);
		}
	}
	lvd_rec_find(r, "no such id", &hl, &err);
	lvd_rec_close(r);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_container)

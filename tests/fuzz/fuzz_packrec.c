/* tests/fuzz/fuzz_packrec.c — the lvd-pack record payload decoder
 * (lib/lavender/packrec.h). A payload the decoder accepts must encode again to the same
 * bytes (the format has one encoding per record). */
#include "fuzz.h"
#include "lavender/packrec.h"

static int fuzz_packrec(const uint8_t *data, size_t size)
{
	struct lvd_packrec rec;
	memset(&rec, 0, sizeof rec);
	struct lvd_error err = {0};
	if (lvd_packrec_decode(&rec, data, size, "fuzz: record 0", &err) == 0) {
		uint8_t *buf = NULL;
		size_t n = 0;
		if (lvd_packrec_encode(&rec, &buf, &n, &err) != 0)
			abort(); /* decoder accepted what the encoder refuses */
		if (n != size || memcmp(buf, data, n) != 0)
			abort(); /* not a round trip */
		free(buf);
	}
	lvd_packrec_free(&rec);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_packrec)

/* tests/fuzz/fuzz_mapsrec.c — the sd-attnmap record payload decoder
 * (lib/lavender/mapsrec.h). A payload the decoder accepts must encode again (the
 * encoder applies the same rules), and the re-encoded bytes must decode. */
#include "fuzz.h"
#include "lavender/mapsrec.h"

static int fuzz_mapsrec(const uint8_t *data, size_t size)
{
	struct lvd_mapsrec rec = {0};
	struct lvd_error err = {0};
	if (lvd_mapsrec_decode(&rec, data, size, "fuzz: record 0", &err) == 0) {
		uint8_t *buf = NULL;
		size_t n = 0;
		if (lvd_mapsrec_encode(&rec, &buf, &n, &err) != 0)
			abort(); /* decoder accepted what the encoder refuses */
		struct lvd_mapsrec again = {0};
		if (lvd_mapsrec_decode(&again, buf, n, "fuzz: re-encoded", &err) != 0)
			abort();
		lvd_mapsrec_free(&again);
		free(buf);
	}
	lvd_mapsrec_free(&rec);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_mapsrec)

/* tests/fuzz/fuzz_config.c — the model config readers, each from a config.json file:
 * the SD CLIP text encoder, VAE and UNet readers (lib/models/sd/sd_config.h) and
 * lvd_mllama_config_load (lib/models/mllama/mllama.h). The first byte picks the reader
 * (mod 4); the rest is the file. */
#include "fuzz.h"
#include "models/mllama/mllama.h"
#include "models/sd/sd_config.h"

static int fuzz_config(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *path = fuzz_file("config.json", data + 1, size - 1);
	struct lvd_error err = {0};
	switch (data[0] & 3) {
	case 0: {
		struct lvd_sd_clip_cfg k;
		sd_clip_cfg_json(&k, path, &err);
		break;
	}
	case 1: {
		struct lvd_sd_vae_cfg k;
		sd_vae_cfg_json(&k, path, &err);
		break;
	}
	case 2: {
		struct lvd_sd_unet_cfg k;
		sd_unet_cfg_json(&k, path, &err);
		break;
	}
	default: {
		struct lvd_mllama_config cfg;
		lvd_mllama_config_load(&cfg, path, &err);
		break;
	}
	}
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_config)

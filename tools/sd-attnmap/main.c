/* sd-attnmap — Stage 1 of Lavender: run Stable Diffusion over image-text pairs and write per-token cross-attention maps to shards. */
#include "common/cli.h"

static const struct lvd_cli_cmd cmds[] = {
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "sd-attnmap",
			    "Stage 1 of Lavender: run Stable Diffusion over image-text pairs and write per-token cross-attention maps to shards.",
			    cmds);
}

/* lvd-pack — Stage 2 of Lavender: tokenize with the VLM's tokenizer, align words and SD maps to the VLM patch grid, write training shards. */
#include "common/cli.h"

static const struct lvd_cli_cmd cmds[] = {
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "lvd-pack",
			    "Stage 2 of Lavender: tokenize with the VLM's tokenizer, align words and SD maps to the VLM patch grid, write training shards.",
			    cmds);
}

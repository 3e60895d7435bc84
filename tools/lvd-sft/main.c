/* lvd-sft — Stage 3 of Lavender: fine-tune the VLM (LoRA or full) with CE + lambda * attention-alignment loss from packed shards. */
#include "common/cli.h"

static const struct lvd_cli_cmd cmds[] = {
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "lvd-sft",
			    "Stage 3 of Lavender: fine-tune the VLM (LoRA or full) with CE + lambda * attention-alignment loss from packed shards.",
			    cmds);
}

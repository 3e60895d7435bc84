/* lvd-sft — Stage 3 of Lavender: fine-tune the VLM (LoRA or full) with CE + lambda * attention-alignment loss from packed shards. */
#include "common/cli.h"
#include "cmds.h"

static const struct lvd_cli_cmd cmds[] = {
	{"run", "train LoRA (or --full) + Aligner on an lvd-pack folder (resumes from RUN_DIR's checkpoints)", cmd_run},
	{"export", "write a checkpoint's LoRA (PEFT folder; --merge: transformers folder) and Aligner", cmd_export},
	{"inspect", "print a checkpoint (step, cursor, options, tensor norms) as JSON", cmd_inspect},
	{"init", "write a tiny mllama folder with seeded random weights (tests, make demo)", cmd_init},
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "lvd-sft",
			    "Stage 3 of Lavender: fine-tune the VLM (LoRA or full) with CE + lambda * attention-alignment loss from packed shards.",
			    cmds);
}

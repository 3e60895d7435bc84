/* lvd-pack — Stage 2 of Lavender: tokenize with the VLM's tokenizer, align words and SD maps to the VLM patch grid, write training shards. */
#include "common/cli.h"
#include "cmds.h"

static const struct lvd_cli_cmd cmds[] = {
	{"run", "pack manifest + maps + VLM tokenizer into training shards", cmd_run},
	{"ls", "list the shards of pack folders: records, sizes, statistics", cmd_ls},
	{"inspect", "print packed samples as JSON", cmd_inspect},
	{"viz", "write PNGs of targets on the VLM canvas", cmd_viz},
	{"tokenize", "print Llama-3 token ids for text lines", cmd_tokenize},
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "lvd-pack",
			    "Stage 2 of Lavender: tokenize with the VLM's tokenizer, align words and SD maps to the VLM patch grid, write training shards.",
			    cmds);
}

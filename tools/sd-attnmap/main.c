/* sd-attnmap — Stage 1 of Lavender: run Stable Diffusion over image-text pairs and write per-token cross-attention maps to shards. */
#include "common/cli.h"
#include "cmds.h"

static const struct lvd_cli_cmd cmds[] = {
	{"run", "compute SD cross-attention maps for a manifest into shards", cmd_run},
	{"import", "read per-word maps in the official Lavender layout into shards", cmd_import},
	{"export", "write shard maps in the official Lavender per-word layout", cmd_export},
	{"ls", "list the shards of maps folders: records, sizes, parameters", cmd_ls},
	{"inspect", "print shard records as JSON lines", cmd_inspect},
	{"viz", "write PNG heat-map overlays for a record", cmd_viz},
	{"tokenize", "print CLIP token ids for text lines", cmd_tokenize},
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "sd-attnmap",
			    "Stage 1 of Lavender: run Stable Diffusion over image-text pairs and write per-token cross-attention maps to shards.",
			    cmds);
}

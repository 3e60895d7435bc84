/* lvd-eval — Score a VLM on VQA-style benchmarks and on attention alignment with SD maps. */
#include "common/cli.h"

static const struct lvd_cli_cmd cmds[] = {
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "lvd-eval",
			    "Score a VLM on VQA-style benchmarks and on attention alignment with SD maps.",
			    cmds);
}

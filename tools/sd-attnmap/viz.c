/* sd-attnmap viz — placeholder until the command lands; replaced by its implementation. */
#include "cmds.h"
#include "common/cli.h"

int cmd_viz(int argc, char **argv)
{
	(void)argc; (void)argv;
	lvd_cli_usage_error("'viz' is not implemented yet in this build");
	return 1;
}

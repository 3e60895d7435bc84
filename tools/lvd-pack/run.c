/* lvd-pack run — placeholder until the command lands; replaced by its implementation. */
#include "cmds.h"
#include "common/cli.h"

int cmd_run(int argc, char **argv)
{
	(void)argc; (void)argv;
	lvd_cli_usage_error("'run' is not implemented yet in this build");
	return 1;
}

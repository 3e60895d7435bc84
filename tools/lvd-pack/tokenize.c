/* lvd-pack tokenize — placeholder until the command lands; replaced by its implementation. */
#include "cmds.h"
#include "common/cli.h"

int cmd_tokenize(int argc, char **argv)
{
	(void)argc; (void)argv;
	lvd_cli_usage_error("'tokenize' is not implemented yet in this build");
	return 1;
}

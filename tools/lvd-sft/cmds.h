/* tools/lvd-sft/cmds.h — subcommands of lvd-sft. */
#ifndef LVD_SFT_CMDS_H
#define LVD_SFT_CMDS_H

int cmd_run(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_init(int argc, char **argv);

#endif

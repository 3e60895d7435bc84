/* Subcommands of this tool; each lives in its own file (run.c, ls.c, inspect.c, viz.c, tokenize.c). */
#ifndef LVD_TOOL_CMDS_H
#define LVD_TOOL_CMDS_H
int cmd_run(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_viz(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
#endif

/* Subcommands of lvd-eval; each lives in its own file (convert.c, score.c, run.c, align.c). */
#ifndef LVD_EVAL_TOOL_CMDS_H
#define LVD_EVAL_TOOL_CMDS_H
int cmd_convert(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_align(int argc, char **argv);
#endif

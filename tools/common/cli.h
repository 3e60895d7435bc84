/* tools/common/cli.h — option tables, --help, --version and subcommand dispatch for
 * the lvd tools. One static table per command feeds getopt_long and the help text.
 *
 *   static const struct lvd_cli_opt opts[] = {
 *       {"threads", 't', "N", "worker threads (default: cores)"},
 *       {"keep-going", 0, NULL, "skip bad records instead of failing"},
 *       {0}};
 * A zero `key` gets a unique key >= 256 assigned from the option's index:
 * LVD_CLI_KEY(i) == 256 + i. Every command gets -h/--help, -q/--quiet, -v/--verbose
 * for free (handled by lvd_cli_parse: help prints and exits 0). */
#ifndef LVD_TOOLS_CLI_H
#define LVD_TOOLS_CLI_H

#include <stdint.h>
#include <stdio.h>

struct lvd_cli_opt {
	const char *name;  /* long name, without "--" */
	int key;           /* short option char, or 0 for long-only (key = 256 + index) */
	const char *arg;   /* metavar ("N", "PATH") when it takes a value, NULL for a flag */
	const char *help;  /* one line */
};
#define LVD_CLI_KEY(index) (256 + (index))

struct lvd_cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the command name; returns the exit code */
};

/* Callback per option: key (short char or LVD_CLI_KEY(i)), arg (NULL for flags).
 * Return 0 to continue, 2 for a usage error (after printing it with lvd_cli_usage_error). */
typedef int (*lvd_cli_fn)(int key, const char *arg, void *ctx);

/* Parses argv with the table; positional arguments are left in argv[*first_pos..argc).
 * Returns 0 on success, 2 on a usage error (already printed), -1 when --help was shown
 * (the caller returns 0). `usage` is the synopsis line(s), `desc` a paragraph or NULL. */
int lvd_cli_parse(int argc, char **argv, const char *usage, const char *desc,
		  const struct lvd_cli_opt *opts, lvd_cli_fn fn, void *ctx, int *first_pos);

void lvd_cli_help(FILE *out, const char *usage, const char *desc, const struct lvd_cli_opt *opts);

/* "PROG: error: MSG" + "hint: try 'PROG --help'" on stderr; returns 2. */
int lvd_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Option values: parse arg strictly (lib/core/parse.h) as an integer in [min, max] into
 * *out; on failure print the usage error naming the option and return 2, else 0, so a
 * parse callback can `return lvd_cli_int(arg, 1, 1024, "--grid", &o->grid);`. */
int lvd_cli_int(const char *arg, int min, int max, const char *name, int *out);
int lvd_cli_u64(const char *arg, uint64_t min, uint64_t max, const char *name, uint64_t *out);
/* The same for "i/N" (lvd_parse_shard: N >= 1, i < N). */
int lvd_cli_shard(const char *arg, const char *name, uint32_t *i, uint32_t *n);

/* --manifest PATH, which the tools read more than once (hashed, counted, read): "-"
 * (stdin), a pipe (`<(...)`, /dev/stdin) or another non-regular file is read once into
 * memory (lvd_input_spool: at most 4 GiB, lines up to 16 MiB) and *manifest becomes the
 * copy's path (leaked: it lives for the run); *images, when NULL, becomes "." then (a
 * pipe has no folder for relative image paths). A regular file is left as it is.
 * Returns 0, or 1 after printing. */
int lvd_cli_spool_manifest(const char **manifest, const char **images);

/* Prints "PROG VERSION" and the build features to stdout. */
void lvd_cli_version(const char *prog);

/* Top-level main for a tool with subcommands: handles --help/--version and dispatch.
 * `about` is one line describing the tool. */
int lvd_cli_main(int argc, char **argv, const char *prog, const char *about,
		 const struct lvd_cli_cmd *cmds);

#endif

#include "cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/parse.h"
#include "io/fileutil.h"
#include "nn/ctx.h"

#define MAX_OPTS 128

void lvd_cli_help(FILE *out, const char *usage, const char *desc, const struct lvd_cli_opt *opts)
{
	fprintf(out, "usage: %s\n", usage);
	if (desc)
		fprintf(out, "\n%s\n", desc);
	fprintf(out, "\noptions:\n");
	for (const struct lvd_cli_opt *o = opts; o && o->name; o++) {
		char left[96];
		int n = 0;
		if (o->key > 0 && o->key < 256)
			n = snprintf(left, sizeof left, "-%c, --%s", o->key, o->name);
		else
			n = snprintf(left, sizeof left, "    --%s", o->name);
		if (o->arg && n > 0 && (size_t)n < sizeof left)
			snprintf(left + n, sizeof left - (size_t)n, " %s", o->arg);
		fprintf(out, "  %-30s %s\n", left, o->help);
	}
	fprintf(out, "  %-30s %s\n", "-q, --quiet", "only errors on stderr");
	fprintf(out, "  %-30s %s\n", "-v, --verbose", "more detail on stderr (repeat for debug)");
	fprintf(out, "  %-30s %s\n", "-h, --help", "show this help and exit");
}

int lvd_cli_usage_error(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: error: %s\nhint: try '%s --help'\n", lvd_log_prog(), buf, lvd_log_prog());
	return 2;
}

int lvd_cli_parse(int argc, char **argv, const char *usage, const char *desc,
		  const struct lvd_cli_opt *opts, lvd_cli_fn fn, void *ctx, int *first_pos)
{
	struct option lo[MAX_OPTS + 4];
	char shorts[3 * MAX_OPTS + 8];
	int nl = 0, ns = 0;
	shorts[ns++] = ':'; /* report missing arguments as ':' */
	for (int i = 0; opts && opts[i].name; i++) {
		LVD_ASSERTF(i < MAX_OPTS, "too many options");
		int key = opts[i].key ? opts[i].key : LVD_CLI_KEY(i);
		lo[nl++] = (struct option){opts[i].name, opts[i].arg ? required_argument : no_argument, NULL, key};
		if (opts[i].key > 0 && opts[i].key < 256) {
			shorts[ns++] = (char)opts[i].key;
			if (opts[i].arg)
				shorts[ns++] = ':';
		}
	}
	lo[nl++] = (struct option){"help", no_argument, NULL, 'h'};
	lo[nl++] = (struct option){"quiet", no_argument, NULL, 'q'};
	lo[nl++] = (struct option){"verbose", no_argument, NULL, 'v'};
	lo[nl] = (struct option){0, 0, 0, 0};
	memcpy(shorts + ns, "hqv", 4);

	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		if (c == 'h') {
			lvd_cli_help(stdout, usage, desc, opts);
			return -1;
		} else if (c == 'q') {
			lvd_log_set_level(LVD_LOG_ERROR);
		} else if (c == 'v') {
			lvd_log_set_level(lvd_log_level() + 1);
		} else if (c == '?') {
			if (optopt)
				return lvd_cli_usage_error("unknown option '-%c'", optopt);
			return lvd_cli_usage_error("unknown option '%s'", argv[optind - 1]);
		} else if (c == ':') {
			return lvd_cli_usage_error("option '%s' needs a value", argv[optind - 1]);
		} else {
			int rc = fn ? fn(c, optarg, ctx) : 0;
			if (rc)
				return rc;
		}
	}
	*first_pos = optind;
	return 0;
}

int lvd_cli_u64(const char *arg, uint64_t min, uint64_t max, const char *name, uint64_t *out)
{
	struct lvd_error err = {0};
	if (lvd_parse_u64(arg, min, max, out, name, &err))
		return lvd_cli_usage_error("%s", err.msg);
	return 0;
}

int lvd_cli_shard(const char *arg, const char *name, uint32_t *i, uint32_t *n)
{
	struct lvd_error err = {0};
	if (lvd_parse_shard(arg, i, n, name, &err))
		return lvd_cli_usage_error("%s", err.msg);
	return 0;
}

int lvd_cli_int(const char *arg, int min, int max, const char *name, int *out)
{
	uint64_t v;
	LVD_ASSERT(min >= 0 && min <= max);
	int rc = lvd_cli_u64(arg, (uint64_t)min, (uint64_t)max, name, &v);
	if (!rc)
		*out = (int)v;
	return rc;
}

void lvd_cli_version(const char *prog)
{
	printf("%s %s\n", prog, LVD_VERSION);
	printf("features: CUDA=%s NCCL=%s cuDNN=%s MPI=%s OpenBLAS=%s\n",
	       LVD_HAVE_CUDA ? "yes" : "no", LVD_HAVE_NCCL ? "yes" : "no",
	       LVD_HAVE_CUDNN ? "yes" : "no", LVD_HAVE_MPI ? "yes" : "no", LVD_HAVE_OPENBLAS ? "yes" : "no");
}

static void main_help(FILE *out, const char *prog, const char *about, const struct lvd_cli_cmd *cmds)
{
	fprintf(out, "usage: %s <command> [options]\n       %s --help | --version\n\n%s\n\ncommands:\n",
		prog, prog, about);
	for (const struct lvd_cli_cmd *c = cmds; c->name; c++)
		fprintf(out, "  %-12s %s\n", c->name, c->summary);
	fprintf(out, "\nRun '%s <command> --help' for a command's options.\n", prog);
}

int lvd_cli_main(int argc, char **argv, const char *prog, const char *about,
		 const struct lvd_cli_cmd *cmds)
{
	lvd_log_set_prog(prog);
	lvd_blas_policy_init(); /* before any thread exists: it calls setenv */
	if (argc < 2) {
		main_help(stderr, prog, about, cmds);
		return 2;
	}
	const char *a = argv[1];
	if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help")) {
		main_help(stdout, prog, about, cmds);
		return 0;
	}
	if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
		lvd_cli_version(prog);
		return 0;
	}
	for (const struct lvd_cli_cmd *c = cmds; c->name; c++)
		if (!strcmp(a, c->name))
			return c->run(argc - 1, argv + 1);
	if (a[0] == '-')
		return lvd_cli_usage_error("unknown option '%s' (a command comes first)", a);
	return lvd_cli_usage_error("unknown command '%s'", a);
}

int lvd_cli_spool_manifest(const char **manifest, const char **images)
{
	struct lvd_error err = {0};
	char *p = NULL;
	if (lvd_input_spool(*manifest, (uint64_t)4 << 30, (size_t)16 << 20, &p, &err)) {
		lvd_error_log("--manifest: %s", err.msg);
		return 1;
	}
	if (!strcmp(p, *manifest)) {
		free(p);
		return 0;
	}
	/* the copy's path ("/proc/self/fd/N") lives as long as the process, as the copy does */
	static char spooled[64];
	snprintf(spooled, sizeof spooled, "%s", p);
	free(p);
	lvd_info("--manifest %s: read into memory (%s)", *manifest, spooled);
	*manifest = spooled;
	if (!*images)
		*images = ".";
	return 0;
}

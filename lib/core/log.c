#include "log.h"

#include <stdarg.h>
#include <stdio.h>

static const char *log_prog = "lvd";
static int log_level = LVD_LOG_INFO;

void lvd_log_set_prog(const char *prog) { log_prog = prog ? prog : "lvd"; }
const char *lvd_log_prog(void) { return log_prog; }
void lvd_log_set_level(int level) { log_level = level; }
int lvd_log_level(void) { return log_level; }

void lvd_log(int level, const char *fmt, ...)
{
	if (level > log_level)
		return;
	const char *tag = level == LVD_LOG_ERROR ? "error: " : level == LVD_LOG_WARN ? "warning: " : "";
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* one fprintf so concurrent threads do not interleave within a line */
	fprintf(stderr, "%s: %s%s\n", log_prog, tag, buf);
}

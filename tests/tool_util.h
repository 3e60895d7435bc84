/* tests/tool_util.h — helpers for C tests that run the built tools (header-only; include
 * after harness.h): the path of a tool in $BUILD and running it with its output captured. */
#ifndef LVD_TEST_TOOL_UTIL_H
#define LVD_TEST_TOOL_UTIL_H

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

/* $BUILD/name ($BUILD absolute, else relative to the source tree; default "build"). The
 * result lives in one of 4 rotating static buffers. */
static inline const char *lvd_test_tool(const char *name)
{
	static char bufs[4][4096];
	static int k;
	char *buf = bufs[k++ & 3];
	const char *b = getenv("BUILD");
	if (b && b[0] == '/')
		snprintf(buf, 4096, "%s/%s", b, name);
	else
		snprintf(buf, 4096, "%s/%s", lvd_test_path(b && *b ? b : "build"), name);
	return buf;
}

/* Runs argv (argv[0] a path) with stderr to the file `log` and stdout to /dev/null;
 * returns its exit status, -1 when it did not exit normally. */
static inline int lvd_test_run_tool(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int st = -1;
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0)
		waitpid(pid, &st, 0);
	posix_spawn_file_actions_destroy(&fa);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif

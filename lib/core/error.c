#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lvd_error_set(struct lvd_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->code = code;
	err->transient = code == LVD_ERR_NOMEM;
	return code;
}

/* errno values that say the machine failed, not the input (struct lvd_error.transient) */
static int errno_transient(int e)
{
	switch (e) {
	case EIO: case ENOSPC: case EDQUOT: case EINTR: case EAGAIN: case ENFILE: case EMFILE: case ENOMEM:
	case ETIMEDOUT:
		return 1;
	default:
		return 0;
	}
}

int lvd_error_errno(struct lvd_error *err, int code, const char *fmt, ...)
{
	int saved = errno;
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof err->msg)
		snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(saved));
	err->code = code;
	err->transient = code == LVD_ERR_NOMEM || errno_transient(saved);
	return code;
}

int lvd_error_prefix(struct lvd_error *err, const char *fmt, ...)
{
	if (!err)
		return LVD_ERR_INVALID;
	char head[LVD_ERROR_MSG_MAX];
	char old[LVD_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	snprintf(err->msg, sizeof err->msg, "%s%s", head, old);
	return err->code;
}

void lvd_error_clear(struct lvd_error *err)
{
	if (!err)
		return;
	err->code = LVD_OK;
	err->msg[0] = '\0';
	err->transient = 0;
}

const char *lvd_err_name(int code)
{
	static const char *const names[LVD_ERR__COUNT] = {
		[LVD_OK] = "ok",
		[LVD_ERR_IO] = "I/O error",
		[LVD_ERR_FORMAT] = "format error",
		[LVD_ERR_INVALID] = "invalid value",
		[LVD_ERR_NOMEM] = "out of memory",
		[LVD_ERR_UNSUPPORTED] = "unsupported",
		[LVD_ERR_NOTFOUND] = "not found",
	};
	if (code < 0 || code >= LVD_ERR__COUNT)
		return "unknown error";
	return names[code];
}

void lvd_panic(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "lvd: fatal: %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* lib/core/log.h — leveled logging to stderr.
 *
 * The only output channel of lib/: everything goes to stderr, prefixed with the
 * program name set by the tool ("lvd-pack: warning: ..."). The level is the one
 * mutable global we allow (-q lowers it, -v raises it). In multi-rank runs the
 * tool sets the level to LVD_LOG_ERROR on ranks other than 0. */
#ifndef LVD_CORE_LOG_H
#define LVD_CORE_LOG_H

enum lvd_log_level {
	LVD_LOG_ERROR = 0,
	LVD_LOG_WARN = 1,
	LVD_LOG_INFO = 2,
	LVD_LOG_DEBUG = 3,
};

/* Program name used as the message prefix; the string is borrowed (keep it alive). */
void lvd_log_set_prog(const char *prog);
const char *lvd_log_prog(void);
void lvd_log_set_level(int level);
int lvd_log_level(void);

/* printf-style; a newline is appended. ERROR and WARN carry "error: "/"warning: ". */
void lvd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define lvd_error_log(...) lvd_log(LVD_LOG_ERROR, __VA_ARGS__)
#define lvd_warn(...) lvd_log(LVD_LOG_WARN, __VA_ARGS__)
#define lvd_info(...) lvd_log(LVD_LOG_INFO, __VA_ARGS__)
#define lvd_debug(...) lvd_log(LVD_LOG_DEBUG, __VA_ARGS__)

#endif

/* Error reporting for library code: return a negative code, fill lt_err. */
#ifndef LT_ERR_H
#define LT_ERR_H

enum {
	LT_OK = 0,
	LT_ENOMEM = -1,   /* allocation failed */
	LT_EIO = -2,      /* the operating system refused a read/write/open */
	LT_EFORMAT = -3,  /* a file is malformed */
	LT_EINVAL = -4,   /* an argument or option is invalid */
	LT_ERANGE = -5,   /* a size or index overflows a limit */
	LT_ENOTSUP = -6,  /* valid but not supported (e.g. no graph) */
	LT_ECANCEL = -7,  /* the caller cancelled the work */
};

#define LT_ERR_MSG_MAX 512

/* A readable sentence saying what went wrong; code is the LT_E* value. */
typedef struct lt_err {
	int code;
	char msg[LT_ERR_MSG_MAX];
} lt_err;

/* Fill err (may be NULL) with code and a printf-style message; returns code
 * so callers can write `return lt_err_set(err, LT_EINVAL, "...")`. */
int lt_err_set(lt_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix err's message with "WHAT: " (keeps the code). Returns err->code. */
int lt_err_prefix(lt_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clear err to LT_OK with an empty message. */
void lt_err_clear(lt_err *err);

#endif

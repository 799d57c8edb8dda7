#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int lt_err_set(lt_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

int lt_err_prefix(lt_err *err, const char *fmt, ...)
{
	if (!err)
		return LT_EINVAL;
	/* Build in a buffer big enough for both parts, then cut to size. */
	char joined[2 * LT_ERR_MSG_MAX + 2];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(joined, LT_ERR_MSG_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n >= LT_ERR_MSG_MAX)
		n = LT_ERR_MSG_MAX - 1;
	memcpy(joined + n, ": ", 2);
	memcpy(joined + n + 2, err->msg, strnlen(err->msg, LT_ERR_MSG_MAX - 1) + 1);
	memcpy(err->msg, joined, LT_ERR_MSG_MAX - 1);
	err->msg[LT_ERR_MSG_MAX - 1] = '\0';
	return err->code;
}

void lt_err_clear(lt_err *err)
{
	if (err) {
		err->code = LT_OK;
		err->msg[0] = '\0';
	}
}

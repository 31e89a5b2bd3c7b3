/* test_error.c — the error convention: gw_errf and gw_err_prefix. */
#include <errno.h>

#include "../tap.h"
#include "engine/error.h"

static void test_errf_formats_and_returns_code(void)
{
	struct gw_err e;

	CHECK_INT_EQ(gw_errf(&e, -EBADMSG, "\"%s\": bad %d", "x.json", 3), -EBADMSG);
	CHECK_STR_EQ(e.msg, "\"x.json\": bad 3");
	CHECK_INT_EQ(gw_errf(NULL, -EINVAL, "ignored"), -EINVAL);
}

static void test_prefix(void)
{
	struct gw_err e;

	gw_errf(&e, -EIO, "read failed");
	CHECK_INT_EQ(gw_err_prefix(&e, -EIO, "layer %d", 4), -EIO);
	CHECK_STR_EQ(e.msg, "layer 4: read failed");
}

static void test_long_message_truncated(void)
{
	struct gw_err e;
	char big[2000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	gw_errf(&e, -EINVAL, "%s", big);
	CHECK_INT_EQ(strlen(e.msg), GW_ERR_MAX - 1);
}

static const struct tap_test tests[] = {
	{ "errf_formats_and_returns_code", test_errf_formats_and_returns_code },
	{ "prefix", test_prefix },
	{ "long_message_truncated", test_long_message_truncated },
	{ NULL, NULL },
};
TAP_MAIN(tests)

/* test_endpoint.c — the endpoint forms the config accepts and the loopback
 * test that the config reader and the publisher share (endpoint.h). */
#include <errno.h>

#include "../tap.h"
#include "endpoint.h"

static void test_is_local(void)
{
	CHECK(endpoint_is_local("tcp://127.0.0.1:5557"));
	CHECK(endpoint_is_local("tcp://127.1.2.3:1"));
	CHECK(endpoint_is_local("tcp://[::1]:5557"));
	CHECK(endpoint_is_local("tcp://localhost:5557"));
	CHECK(endpoint_is_local("ipc:///run/grokwatch.sock"));
	CHECK(endpoint_is_local("inproc://x"));
	CHECK(!endpoint_is_local("tcp://*:5557"));
	CHECK(!endpoint_is_local("tcp://0.0.0.0:5557"));
	CHECK(!endpoint_is_local("tcp://eth0:5557"));
	CHECK(!endpoint_is_local("tcp://127.example.com:5557"));
	CHECK(!endpoint_is_local("tcp://192.168.1.2:5557"));
	CHECK(!endpoint_is_local("tcp://127.0.0.1"));
	CHECK(!endpoint_is_local("udp://127.0.0.1:1"));
}

static void test_check(void)
{
	struct gw_err e = { "" };

	CHECK_INT_EQ(endpoint_check("tcp://127.0.0.1:5557", &e), 0);
	CHECK_INT_EQ(endpoint_check("tcp://*:*", &e), 0);
	CHECK_INT_EQ(endpoint_check("ipc:///run/g.sock", &e), 0);
	CHECK_INT_EQ(endpoint_check("tcp://127.0.0.1", &e), -EINVAL);
	CHECK_STR_EQ(e.msg, "\"tcp://127.0.0.1\" is not a tcp://HOST:PORT or ipc://PATH endpoint");
	CHECK_INT_EQ(endpoint_check("ipc://", &e), -EINVAL);
	CHECK_INT_EQ(endpoint_check("tcp://", &e), -EINVAL);
	CHECK_INT_EQ(endpoint_check("inproc://x", &e), -EINVAL);
}

static const struct tap_test tests[] = {
	{ "is_local", test_is_local },
	{ "check", test_check },
	{ NULL, NULL },
};

TAP_MAIN(tests)

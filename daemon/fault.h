/*
 * fault.h — faults on purpose, for the tests: named crash points.
 *
 * A crash point is a place in a checkpoint's life where a crash matters
 * (after the computation, before the journal write, after publishing, ...).
 * With GROKWATCHD_TEST_CRASH_AT=NAME (or NAME:K, the K-th time the point is
 * reached, K >= 1) in the environment, the process writes
 * "grokwatchd: crash point NAME" to stderr and kills itself with SIGKILL
 * there, as kill -9 would: no handler, no flush, no clean-up.  It waits
 * 200 ms first, so that messages ZeroMQ's I/O thread was sending before
 * the point reach the subscribers, as they would before a later crash.  Without the
 * variable a point costs one branch.  The tests kill at each point, restart
 * and compare with a run that was not killed (tests/integration).
 *
 * GROKWATCHD_TEST_SYSCALL_FAULT=CALL:ERRNO:NTH[:COUNT] installs a fault
 * of engine/sys.h's seam (ERRNO KILL: kill -9 just before the NTH call,
 * e.g. rename:KILL:3 before the rename of a state file).
 *
 * The names in use are listed in fault_points (fault.c), so a test asking
 * for a point that does not exist is refused at start-up instead of never
 * crashing.
 *
 * Threads: fault_init on the main thread before any other thread starts;
 * fault_point from any thread.
 */
#ifndef GW_DAEMON_FAULT_H
#define GW_DAEMON_FAULT_H

#include "engine/error.h"

/* Read GROKWATCHD_TEST_CRASH_AT.  0, or -EINVAL (message names the
 * variable and the fault) for an unknown point or a bad count. */
int fault_init(struct gw_err *err);

/* Crash here if this is the point (and the count) asked for. */
void fault_point(const char *name);

#endif

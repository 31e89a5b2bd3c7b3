/*
 * fuzz_trainer_state.c — libFuzzer target for trainer_state.json as the
 * engine reads it (engine/step.c): the step (step_from_trainer_state) and
 * the trainer's log (step_trainer_log), over text as Python's json module
 * writes it (NaN and Infinity included).
 *
 * Input: 8 bytes little-endian of the step asked for (masked to 0..2^40),
 * then the file's text, written to DIR/trainer_state.json in a scratch
 * directory made once.  Besides "never crash", it checks:
 *  - each call returns 0, -ENOENT or -EBADMSG, and -EBADMSG names the file;
 *  - a log found lies at or before the step asked for, with finite values,
 *    and at least one of loss and learning rate;
 *  - asking for a later step never loses what an earlier one found.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/step.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], path[128];

static void setup(void)
{
	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/fuzz_trainer_state.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/trainer_state.json", dir);
}

static void check_code(int r, const struct gw_err *e)
{
	if (r != 0 && r != -ENOENT && r != -EBADMSG)
		abort();
	if (r == -EBADMSG && (strncmp(e->msg, "\"", 1) != 0 || !strstr(e->msg, "trainer_state.json")))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_err e = { "" };
	struct trainer_log t, later;
	uint64_t step = 0;
	int64_t gs;
	FILE *f;
	int r, r2;

	setup();
	if (size < 8)
		return 0;
	for (int i = 0; i < 8; i++)
		step |= (uint64_t)data[i] << (8 * i);
	step &= (UINT64_C(1) << 40) - 1;
	f = fopen(path, "wb");
	if (!f || fwrite(data + 8, 1, size - 8, f) != size - 8 || fclose(f) != 0)
		abort();

	check_code(step_from_trainer_state(dir, &gs, &e), &e);
	r = step_trainer_log(dir, (int64_t)step, &t, &e);
	check_code(r, &e);
	if (r == 0) {
		if (t.loss_step < 0 && t.lr_step < 0)
			abort();
		if (t.loss_step > (int64_t)step || t.lr_step > (int64_t)step)
			abort();
		if ((t.loss_step >= 0 && !isfinite(t.loss)) || (t.lr_step >= 0 && !isfinite(t.lr)))
			abort();
		r2 = step_trainer_log(dir, (int64_t)step + 1, &later, &e);
		if (r2 != 0 || (t.loss_step >= 0 && later.loss_step < t.loss_step) ||
		    (t.lr_step >= 0 && later.lr_step < t.lr_step))
			abort();
	}
	return 0;
}

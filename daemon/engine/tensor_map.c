/*
 * tensor_map.c — stored tensor names to the Hugging Face names the model
 * asks for (see tensor_map.h): strip the wrapper prefixes of
 * torch.compile and DDP, then add the "model." the base model's own
 * state_dict() lacks.
 */
#include "engine/tensor_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Prefixes that wrappers put in front of every parameter name. */
static const char *const wrappers[] = { "_orig_mod.", "module." };

static bool starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

int tmap_canonical(const char *name, char *buf, size_t len)
{
	const char *s = name;
	bool again = true;
	int n;

	while (again) {
		again = false;
		for (size_t i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++)
			if (starts(s, wrappers[i]) && s[strlen(wrappers[i])]) {
				s += strlen(wrappers[i]);
				again = true;
			}
	}
	if (starts(s, "model.") || starts(s, "lm_head."))
		n = snprintf(buf, len, "%s", s);
	else
		n = snprintf(buf, len, "model.%s", s);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * foreign.c — other trainers' checkpoint formats, by their file names
 * (foreign.h): small directory helpers, then the detection in an order
 * that tells the nested and combined layouts from the plain ones, then the
 * words of the refusal.
 */
#include "engine/foreign.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/file.h"

/* ---- names in a directory --------------------------------------------- */

static bool exists(const char *dir, const char *name)
{
	char *p = gw_join(dir, '/', name);
	struct stat st;
	bool r = stat(p, &st) == 0;

	free(p);
	return r;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

enum want { FILE_SUFFIX, FILE_PREFIX, DIR_PREFIX };

/* Whether dir has an entry whose name has this prefix or suffix (and, for
 * DIR_PREFIX, is a directory): the first such name into ret (the caller
 * frees) when ret is not NULL. */
static bool has_entry(const char *dir, enum want how, const char *s, char **ret)
{
	DIR *dp = opendir(dir);
	struct dirent *d;
	bool found = false;
	size_t seen = 0;

	if (!dp)
		return false;
	while (!found && (d = readdir(dp)) && seen++ < FOREIGN_SCAN_MAX) {
		const char *n = d->d_name;

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		switch (how) {
		case FILE_SUFFIX:
			found = ends_with(n, s) && strlen(n) > strlen(s);
			break;
		case FILE_PREFIX:
			found = !strncmp(n, s, strlen(s));
			break;
		case DIR_PREFIX:
			if (!strncmp(n, s, strlen(s))) {
				char *p = gw_join(dir, '/', n);
				struct stat st;

				found = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
				free(p);
			}
			break;
		}
		if (found && ret)
			*ret = gw_strdup(n);
	}
	closedir(dp);
	return found;
}

static bool is_dcp(const char *dir)
{
	return exists(dir, ".metadata") || has_entry(dir, FILE_SUFFIX, ".distcp", NULL);
}

static bool has_model_states(const char *dir)
{
	return has_entry(dir, FILE_SUFFIX, "_model_states.pt", NULL);
}

/* ---- detection --------------------------------------------------------- */

enum foreign_kind foreign_detect(const char *dir)
{
	enum foreign_kind k = FOREIGN_NONE;
	char *sub = NULL, *p = NULL;

	if (is_dcp(dir)) {
		k = exists(dir, "common.pt") || exists(dir, "metadata.json") ? FOREIGN_MEGATRON_TD
									    : FOREIGN_DCP;
		goto out;
	}
	p = gw_join(dir, '/', "model_and_optim");
	if (is_dcp(p)) {
		k = FOREIGN_OLMO_CORE;
		goto out;
	}
	if (has_entry(dir, DIR_PREFIX, "mp_rank_", NULL)) {
		k = FOREIGN_MEGATRON;
		goto out;
	}
	if (has_model_states(dir)) {
		k = FOREIGN_DEEPSPEED;
		goto out;
	}
	if (has_entry(dir, DIR_PREFIX, "global_step", &sub)) {
		free(p);
		p = gw_join(dir, '/', sub);
		if (has_model_states(p)) {
			k = FOREIGN_DEEPSPEED_HF;
			goto out;
		}
	}
	if (exists(dir, "pytorch_model.bin") || exists(dir, "pytorch_model.bin.index.json"))
		k = FOREIGN_PICKLE;
out:
	free(sub);
	free(p);
	return k;
}

/* ---- words ------------------------------------------------------------- */

const char *foreign_what(enum foreign_kind k)
{
	switch (k) {
	case FOREIGN_DCP:
		return "a PyTorch DCP checkpoint (.metadata and *.distcp, as torchtitan writes)";
	case FOREIGN_OLMO_CORE:
		return "an OLMo-core checkpoint (model_and_optim/ in PyTorch DCP)";
	case FOREIGN_MEGATRON:
		return "a Megatron-LM checkpoint (mp_rank_*/)";
	case FOREIGN_MEGATRON_TD:
		return "a Megatron-LM checkpoint (torch_dist: .metadata, *.distcp and common.pt)";
	case FOREIGN_DEEPSPEED:
		return "a DeepSpeed checkpoint (*_model_states.pt)";
	case FOREIGN_DEEPSPEED_HF:
		return "a DeepSpeed checkpoint (global_step*/*_model_states.pt, without the model's "
		       "safetensors)";
	case FOREIGN_PICKLE:
		return "PyTorch pickle weights only (pytorch_model.bin), which grokwatch does not "
		       "load";
	case FOREIGN_NONE:
		break;
	}
	return "not a checkpoint";
}

int foreign_refuse(const char *dir, enum foreign_kind k, struct gw_err *err)
{
	return gw_errf(err, -ENOTSUP, "\"%s\": %s, not a Hugging Face checkpoint; grokwatch cannot "
		       "read it: save Hugging Face safetensors (save_pretrained: config.json and "
		       "model.safetensors), or write routing files with grokwatch.trace", dir,
		       foreign_what(k));
}

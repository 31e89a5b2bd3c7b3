/*
 * tensor_map.h — the one rule that maps a stored tensor name to the
 * Hugging Face name the model asks for (SPEC §2), whichever trainer saved
 * it.
 *
 * Training jobs save the same weights under several spellings:
 *   - "model.layers.0...." as save_pretrained does;
 *   - without the "model." prefix, when the inner model's state_dict() was
 *     saved ("layers.0....", "embed_tokens.weight", "norm.weight");
 *   - with "_orig_mod." in front (a torch.compile'd module) and/or
 *     "module." (DistributedDataParallel), in either order, any number of
 *     times.
 * tmap_canonical strips the wrapper prefixes and adds "model." to a name
 * that is neither under "model." nor "lm_head.", so every spelling of a
 * tensor gives the same canonical name.  Two stored tensors with one
 * canonical name are ambiguous; the checkpoint refuses them (naming both)
 * only where the model needs that tensor.
 *
 * Pure and thread-safe.
 */
#ifndef GW_ENGINE_TENSOR_MAP_H
#define GW_ENGINE_TENSOR_MAP_H
#include <stddef.h>

/*
 * The canonical name of stored tensor `name` into buf (len bytes).  0, or
 * -ENAMETOOLONG when it does not fit (buf then holds a truncated string).
 */
int tmap_canonical(const char *name, char *buf, size_t len);

#endif

/* lib/models/llama_rope.c — the rotary settings of a Hugging Face Llama config (see
 * llama_rope.h). */
#include <string.h>

#include "models/llama_rope.h"

int lvd_llama_rope_load(struct lvd_llama_rope *r, const struct lvd_json *t, const char *path, const char *what,
			struct lvd_error *err)
{
	struct lvd_json rp = { 0 };
	int rc = 0;
	memset(r, 0, sizeof *r);
	const char *rpk = json_is_object(lvd_json_find(t, "rope_parameters")) ? "rope_parameters" : "rope_scaling";
	int have_rp = json_is_object(lvd_json_find(t, rpk));
	if (have_rp && (rc = lvd_json_object(t, rpk, &rp, err)))
		return rc;
	if ((rc = lvd_json_get_positive_or(have_rp && lvd_json_has(&rp, "rope_theta") ? &rp : t, "rope_theta", 500000.0,
					   &r->theta, err)))
		goto out;
	if (have_rp) {
		const char *ty;
		if ((rc = lvd_json_get_string_or(&rp, lvd_json_has(&rp, "rope_type") ? "rope_type" : "type", "default",
						 &ty, err)))
			goto out;
		if (strcmp(ty, "llama3") == 0)
			r->llama3 = 1;
		else if (strcmp(ty, "default") != 0) {
			rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: %s rope type '%s' (llama3 or default)", path, what,
					   ty);
			goto out;
		}
		if ((rc = lvd_json_get_positive_or(&rp, "factor", 8.0, &r->factor, err)) ||
		    (rc = lvd_json_get_positive_or(&rp, "low_freq_factor", 1.0, &r->low, err)) ||
		    (rc = lvd_json_get_positive_or(&rp, "high_freq_factor", 4.0, &r->high, err)) ||
		    (rc = lvd_json_get_positive_or(&rp, "original_max_position_embeddings", 8192, &r->orig_max, err)))
			goto out;
	}
out:
	lvd_json_release(&rp);
	return rc;
}

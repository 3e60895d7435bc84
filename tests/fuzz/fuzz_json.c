/* tests/fuzz/fuzz_json.c — the JSON reader and its typed getters (lib/io/json.h): the
 * bytes are parsed as a document and every getter is asked about the keys a config
 * reader asks for, on the top level and on one nested object. */
#include "fuzz.h"
#include "io/json.h"

static void fuzz_json_getters(const struct lvd_json *j)
{
	static const char *const keys[] = {"a", "n", "x", "hidden_size", "name", "list", "sub", ""};
	struct lvd_error err = {0};
	for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
		const char *key = keys[k];
		int64_t i64, ia[8];
		double d, da[8];
		int b, i32, i32a[8];
		const char *s, *sa[8];
		json_t *arr;
		size_t n;
		lvd_json_has(j, key);
		lvd_json_get_int(j, key, &i64, &err);
		lvd_json_get_int_or(j, key, 3, &i64, &err);
		lvd_json_get_int_range(j, key, -5, 5, &i64, &err);
		lvd_json_get_double(j, key, &d, &err);
		lvd_json_get_double_or(j, key, 0.5, &d, &err);
		lvd_json_get_bool(j, key, &b, &err);
		lvd_json_get_bool_or(j, key, 1, &b, &err);
		lvd_json_get_string(j, key, &s, &err);
		lvd_json_get_string_or(j, key, "d", &s, &err);
		lvd_json_get_i32(j, key, -100, 100, &i32, &err);
		lvd_json_get_i32_or(j, key, 1, 0, 10, &i32, &err);
		lvd_json_get_array(j, key, &arr, &err);
		lvd_json_get_int_array(j, key, ia, 8, &n, &err);
		lvd_json_get_double_array(j, key, da, 8, &n, &err);
		lvd_json_get_i32_array(j, key, 0, 1000, i32a, 8, &n, &err);
		lvd_json_get_string_array(j, key, sa, 8, &n, &err);
	}
}

static int fuzz_json(const uint8_t *data, size_t size)
{
	struct lvd_json doc = {0};
	struct lvd_error err = {0};
	if (lvd_json_parse(&doc, "fuzz.json", (const char *)data, size, &err) == 0) {
		fuzz_json_getters(&doc);
		struct lvd_json sub = {0};
		if (lvd_json_object(&doc, "sub", &sub, &err) == 0)
			fuzz_json_getters(&sub);
		lvd_json_release(&sub);
	}
	lvd_json_release(&doc);
	return 0;
}

LVD_FUZZ_ENTRY(fuzz_json)

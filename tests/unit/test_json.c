/* Tests for lib/io/json: typed getters, defaults, dotted paths, error messages naming
 * file and key, parse errors with line/column, and a real diffusers config. */
#include <stdint.h>
#include <unistd.h>

#include "harness.h"
#include "core/error.h"
#include "io/json.h"

static const char cfg[] =
	"{\n"
	"  \"hidden_size\": 4096,\n"
	"  \"rms_norm_eps\": 1e-05,\n"
	"  \"scale\": 2,\n"
	"  \"tie\": false,\n"
	"  \"act\": \"silu\",\n"
	"  \"nothing\": null,\n"
	"  \"block_out_channels\": [320, 640, 1280, 1280],\n"
	"  \"mixed\": [1, 2.5, \"x\"],\n"
	"  \"mean\": [0.5, 1, -2e3],\n"
	"  \"types\": [\"A\", \"B\"],\n"
	"  \"big\": 9223372036854775807,\n"
	"  \"vision_config\": {\"hidden_size\": 1280, \"patch\": {\"size\": 14}, \"name\": \"vit\"}\n"
	"}\n";

static void test_getters(void)
{
	struct lvd_json j;
	struct lvd_error e = {0};
	REQUIRE(lvd_json_parse(&j, "mllama/config.json", cfg, sizeof cfg - 1, &e) == 0);
	int64_t i = 0;
	double d = 0;
	int b = -1;
	const char *s = NULL;
	CHECK(lvd_json_get_int(&j, "hidden_size", &i, &e) == 0 && i == 4096);
	CHECK(lvd_json_get_int(&j, "big", &i, &e) == 0 && i == INT64_MAX);
	CHECK(lvd_json_get_int(&j, "vision_config.hidden_size", &i, &e) == 0 && i == 1280);
	CHECK(lvd_json_get_int(&j, "vision_config.patch.size", &i, &e) == 0 && i == 14);
	CHECK(lvd_json_get_double(&j, "rms_norm_eps", &d, &e) == 0 && d == 1e-05);
	CHECK(lvd_json_get_double(&j, "scale", &d, &e) == 0 && d == 2.0); /* integers are numbers */
	CHECK(lvd_json_get_bool(&j, "tie", &b, &e) == 0 && b == 0);
	CHECK(lvd_json_get_string(&j, "act", &s, &e) == 0 && s && !strcmp(s, "silu"));
	CHECK(lvd_json_get_string(&j, "vision_config.name", &s, &e) == 0 && s && !strcmp(s, "vit"));
	/* defaults: absent or null */
	CHECK(lvd_json_get_int_or(&j, "absent", 7, &i, &e) == 0 && i == 7);
	CHECK(lvd_json_get_int_or(&j, "nothing", 8, &i, &e) == 0 && i == 8);
	CHECK(lvd_json_get_int_or(&j, "hidden_size", 8, &i, &e) == 0 && i == 4096);
	CHECK(lvd_json_get_double_or(&j, "absent", 0.25, &d, &e) == 0 && d == 0.25);
	CHECK(lvd_json_get_bool_or(&j, "absent", 1, &b, &e) == 0 && b == 1);
	CHECK(lvd_json_get_string_or(&j, "nothing", "dflt", &s, &e) == 0 && !strcmp(s, "dflt"));
	CHECK(lvd_json_get_int_or(&j, "vision_config.absent", 3, &i, &e) == 0 && i == 3);
	CHECK(lvd_json_has(&j, "act") && !lvd_json_has(&j, "nothing") && !lvd_json_has(&j, "absent"));
	CHECK(lvd_json_find(&j, "nothing") != NULL && lvd_json_find(&j, "act.x") == NULL);
	CHECK(lvd_json_get_int_range(&j, "hidden_size", 1, INT32_MAX, &i, &e) == 0 && i == 4096);
	/* arrays */
	int64_t ch[4];
	size_t n = 0;
	CHECK(lvd_json_get_int_array(&j, "block_out_channels", ch, 4, &n, &e) == 0 && n == 4);
	CHECK(ch[0] == 320 && ch[1] == 640 && ch[3] == 1280);
	double mean[3];
	CHECK(lvd_json_get_double_array(&j, "mean", mean, 3, &n, &e) == 0 && n == 3);
	CHECK(mean[0] == 0.5 && mean[1] == 1.0 && mean[2] == -2000.0);
	const char *ty[2];
	CHECK(lvd_json_get_string_array(&j, "types", ty, 2, &n, &e) == 0 && n == 2 && !strcmp(ty[1], "B"));
	/* nested views keep the path for messages */
	struct lvd_json v, p;
	REQUIRE(lvd_json_object(&j, "vision_config", &v, &e) == 0);
	CHECK(lvd_json_get_int(&v, "hidden_size", &i, &e) == 0 && i == 1280);
	REQUIRE(lvd_json_object(&v, "patch", &p, &e) == 0);
	CHECK(lvd_json_get_string(&p, "size", &s, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "mllama/config.json: key 'vision_config.patch.size': expected a string, got an integer");
	lvd_json_release(&p);
	lvd_json_release(&v);
	lvd_json_release(&j);
	lvd_json_release(&j); /* safe twice */
}

static void test_errors(void)
{
	struct lvd_json j;
	struct lvd_error e = {0};
	REQUIRE(lvd_json_parse(&j, "unet/config.json", cfg, sizeof cfg - 1, &e) == 0);
	int64_t i = 123, arr[4];
	double d;
	int b;
	const char *s;
	size_t n = 99;
	CHECK(lvd_json_get_int(&j, "absent", &i, &e) == LVD_ERR_NOTFOUND);
	CHECK_STR(e.msg, "unet/config.json: key 'absent': missing (expected an integer)");
	CHECK(i == 123);
	CHECK(lvd_json_get_int(&j, "nothing", &i, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "unet/config.json: key 'nothing': expected an integer, got null");
	CHECK(lvd_json_get_int(&j, "rms_norm_eps", &i, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "expected an integer, got a real number");
	CHECK(lvd_json_get_int_or(&j, "act", 1, &i, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "key 'act': expected an integer, got a string");
	CHECK(lvd_json_get_double(&j, "act", &d, &e) == LVD_ERR_INVALID);
	CHECK(lvd_json_get_bool(&j, "scale", &b, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "expected a boolean, got an integer");
	CHECK(lvd_json_get_string(&j, "block_out_channels", &s, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "got an array");
	CHECK(lvd_json_get_int_array(&j, "act", arr, 4, &n, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "unet/config.json: key 'act': expected an array of integers, got a string");
	CHECK(lvd_json_get_int_array(&j, "mixed", arr, 4, &n, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "unet/config.json: key 'mixed': expected an array of integers (element 1 is a real number)");
	CHECK(n == 99);
	CHECK(lvd_json_get_int_array(&j, "block_out_channels", arr, 3, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "has 4 elements, at most 3 expected");
	CHECK(lvd_json_get_int_array(&j, "absent", arr, 3, &n, &e) == LVD_ERR_NOTFOUND);
	const char *ss[3];
	CHECK(lvd_json_get_string_array(&j, "mixed", ss, 3, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "element 0 is an integer");
	CHECK(lvd_json_get_int_range(&j, "hidden_size", 1, 1024, &i, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "unet/config.json: key 'hidden_size': 4096 is out of range [1, 1024]");
	CHECK(lvd_json_get_int(&j, "vision_config.absent", &i, &e) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(e.msg, "key 'vision_config.absent': missing");
	CHECK(lvd_json_get_int(&j, "act.sub", &i, &e) == LVD_ERR_NOTFOUND);
	struct lvd_json v;
	CHECK(lvd_json_object(&j, "act", &v, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "expected an object, got a string");
	CHECK(lvd_json_object(&j, "absent", &v, &e) == LVD_ERR_NOTFOUND);
	lvd_json_release(&j);
}

static void test_parse_errors(void)
{
	struct lvd_json j;
	struct lvd_error e = {0};
	static const struct {
		const char *text, *msg;
		int code;
	} cases[] = {
		{"{\n  \"a\": 1,\n  \"b\": }\n", "cfg.json:3:", LVD_ERR_FORMAT},
		{"{\"a\": 1, \"a\": 2}", "duplicate object key", LVD_ERR_FORMAT},
		{"[1, 2]", "cfg.json: the top level is not a JSON object", LVD_ERR_FORMAT},
		{"", "cfg.json:", LVD_ERR_FORMAT},
		{"{\"a\": 1} trailing", "end of file expected", LVD_ERR_FORMAT},
		{"{\"a\": \"\xff\"}", "cfg.json:1:", LVD_ERR_FORMAT},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		lvd_error_clear(&e);
		int rc = lvd_json_parse(&j, "cfg.json", cases[k].text, strlen(cases[k].text), &e);
		CHECKF(rc == cases[k].code, "case %zu: rc %d (%s)", k, rc, e.msg);
		CHECKF(strstr(e.msg, cases[k].msg) != NULL, "case %zu: \"%s\" lacks \"%s\"", k, e.msg, cases[k].msg);
		CHECK(j.root == NULL);
		lvd_json_release(&j);
	}
	/* line/column through a file */
	char path[256];
	snprintf(path, sizeof path, "%s/lvd-json-%d.json", getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		 (int)getpid());
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	fputs("{\n  \"x\": [1, 2,\n  \"y\": 3\n}\n", f);
	fclose(f);
	CHECK(lvd_json_load(&j, path, &e) == LVD_ERR_FORMAT);
	char want[300];
	snprintf(want, sizeof want, "%s:3:", path);
	CHECK_CONTAINS(e.msg, want);
	unlink(path);
	CHECK(lvd_json_load(&j, path, &e) == LVD_ERR_IO);
	CHECK_CONTAINS(e.msg, "No such file or directory");
	CHECK(lvd_json_load(&j, "/", &e) == LVD_ERR_IO);
	CHECK_CONTAINS(e.msg, "cannot read '/': Is a directory");
	lvd_json_release(&j);
}

/* A real diffusers UNet config from ../shared/data. */
static void test_real_config(void)
{
	const char *sd = lvd_test_shared_data();
	if (!sd)
		SKIP("shared data not present (set LVD_SHARED_DATA)");
	char path[4200];
	snprintf(path, sizeof path, "%s/sd15_configs/unet_config.json", sd);
	struct lvd_json j;
	struct lvd_error e = {0};
	int rc = lvd_json_load(&j, path, &e);
	CHECKF(rc == 0, "%s", e.msg);
	REQUIRE(rc == 0);
	int64_t ch[8], v;
	size_t n;
	const char *types[8], *s;
	double eps;
	CHECK(lvd_json_get_int_array(&j, "block_out_channels", ch, 8, &n, &e) == 0 && n == 4 && ch[3] == 1280);
	CHECK(lvd_json_get_string_array(&j, "down_block_types", types, 8, &n, &e) == 0 && n == 4);
	CHECK_STR(types[0], "CrossAttnDownBlock2D");
	CHECK_STR(types[3], "DownBlock2D");
	CHECK(lvd_json_get_int(&j, "cross_attention_dim", &v, &e) == 0 && v == 768);
	CHECK(lvd_json_get_double(&j, "norm_eps", &eps, &e) == 0 && eps == 1e-5);
	CHECK(lvd_json_get_int_or(&j, "num_class_embeds", -1, &v, &e) == 0 && v == -1);
	CHECK(lvd_json_get_string(&j, "act_fn", &s, &e) == 0 && !strcmp(s, "silu"));
	CHECK(lvd_json_get_bool(&j, "use_linear_projection", &rc, &e) == 0 && rc == 0);
	CHECK(lvd_json_get_int(&j, "transformer_layers_per_block", &v, &e) == LVD_ERR_NOTFOUND);
	CHECK_CONTAINS(e.msg, "sd15_configs/unet_config.json: key 'transformer_layers_per_block': missing");
	lvd_json_release(&j);
}

/* The int-typed getters used for struct fields (sd_load, geometry, mllama). */
static void test_i32(void)
{
	struct lvd_json j;
	struct lvd_error e = {0};
	REQUIRE(lvd_json_parse(&j, "cfg.json", cfg, sizeof cfg - 1, &e) == 0);
	int v = -7;
	CHECK(lvd_json_get_i32(&j, "hidden_size", 1, 65536, &v, &e) == 0 && v == 4096);
	CHECK(lvd_json_get_i32(&j, "vision_config.patch.size", 14, 14, &v, &e) == 0 && v == 14);
	v = -7;
	CHECK(lvd_json_get_i32(&j, "hidden_size", 1, 4095, &v, &e) == LVD_ERR_INVALID && v == -7);
	CHECK_STR(e.msg, "cfg.json: key 'hidden_size': 4096 is out of range [1, 4095]");
	CHECK(lvd_json_get_i32(&j, "big", 0, INT32_MAX, &v, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "cfg.json: key 'big': 9223372036854775807 is out of range [0, 2147483647]");
	CHECK(lvd_json_get_i32(&j, "absent", 0, 1, &v, &e) == LVD_ERR_NOTFOUND);
	CHECK(lvd_json_get_i32(&j, "nothing", 0, 1, &v, &e) == LVD_ERR_INVALID);
	CHECK(lvd_json_get_i32(&j, "scale", 0, 1, &v, &e) == LVD_ERR_INVALID); /* range after type */
	CHECK(lvd_json_get_i32(&j, "rms_norm_eps", 0, 1, &v, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "expected an integer, got a real number");
	/* _or: the default is stored unchecked for absent and null, a present value is checked */
	CHECK(lvd_json_get_i32_or(&j, "absent", -5, 1, 2, &v, &e) == 0 && v == -5);
	CHECK(lvd_json_get_i32_or(&j, "nothing", 9, 1, 2, &v, &e) == 0 && v == 9);
	CHECK(lvd_json_get_i32_or(&j, "scale", 9, 1, 2, &v, &e) == 0 && v == 2);
	CHECK(lvd_json_get_i32_or(&j, "scale", 9, 3, 4, &v, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "cfg.json: key 'scale': 2 is out of range [3, 4]");
	CHECK(lvd_json_get_i32_or(&j, "act", 9, 1, 2, &v, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "key 'act': expected an integer, got a string");
	/* arrays with an element range */
	int ch[4] = {0};
	size_t n = 99;
	CHECK(lvd_json_get_i32_array(&j, "block_out_channels", 1, 65536, ch, 4, &n, &e) == 0 && n == 4);
	CHECK(ch[0] == 320 && ch[1] == 640 && ch[2] == 1280 && ch[3] == 1280);
	n = 99;
	CHECK(lvd_json_get_i32_array(&j, "block_out_channels", 1, 1000, ch, 4, &n, &e) == LVD_ERR_INVALID && n == 99);
	CHECK_STR(e.msg, "cfg.json: key 'block_out_channels': element 2 is 1280, out of range [1, 1000]");
	CHECK(lvd_json_get_i32_array(&j, "block_out_channels", 1, 65536, ch, 3, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "has 4 elements, at most 3 expected");
	CHECK(lvd_json_get_i32_array(&j, "mixed", 0, 10, ch, 4, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "expected an array of integers (element 1 is a real number)");
	CHECK(lvd_json_get_i32_array(&j, "scale", 0, 10, ch, 4, &n, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "expected an array of integers, got an integer");
	CHECK(lvd_json_get_i32_array(&j, "absent", 0, 10, ch, 4, &n, &e) == LVD_ERR_NOTFOUND);
	/* raw arrays and views of objects parsed elsewhere */
	json_t *a = NULL;
	CHECK(lvd_json_get_array(&j, "mixed", &a, &e) == 0 && json_array_size(a) == 3);
	CHECK(lvd_json_get_array(&j, "act", &a, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "cfg.json: key 'act': expected an array, got a string");
	CHECK(lvd_json_get_array(&j, "absent", &a, &e) == LVD_ERR_NOTFOUND);
	struct lvd_json vw;
	lvd_json_view(&vw, lvd_json_find(&j, "vision_config"), "rec 3");
	CHECK(lvd_json_get_i32(&vw, "hidden_size", 1, 2048, ch, &e) == 0 && ch[0] == 1280);
	CHECK(lvd_json_get_int(&vw, "name", &(int64_t){0}, &e) == LVD_ERR_INVALID);
	CHECK_STR(e.msg, "rec 3: key 'name': expected an integer, got a string");
	lvd_json_release(&vw);
	lvd_json_release(&j);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_getters),
		TEST(test_errors),
		TEST(test_parse_errors),
		TEST(test_i32),
		TEST(test_real_config),
		{0},
	};
	return lvd_test_main(argc, argv, tests);
}

/* lvd-eval — Score a VLM on VQA-style benchmarks and on attention alignment with SD maps.
 * Today: `convert` (benchmark files into lvd-eval's JSONL form), `score` (rescore a
 * predictions file as VLMEvalKit scores it) and `align` (per-word attention maps against
 * a pack's SD targets, with pictures). `run` needs generation (issue #14). */
#include "cmds.h"
#include "common/cli.h"

static const struct lvd_cli_cmd cmds[] = {
	{"convert", "turn MMBench/VLMEvalKit TSV, POPE, TextVQA or DocVQA files into a benchmark JSONL", cmd_convert},
	{"align", "score the VLM's per-word attention maps against a pack's SD targets (and --viz pictures)", cmd_align},
	{"score", "score a predictions JSONL as VLMEvalKit does (no model, no LLM judge)", cmd_score},
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "lvd-eval",
			    "Score a VLM on VQA-style benchmarks and on attention alignment with SD maps.",
			    cmds);
}

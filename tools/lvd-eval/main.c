/* lvd-eval — Score a VLM on VQA-style benchmarks and on attention alignment with SD maps.
 * Today: `convert` (benchmark files into lvd-eval's JSONL form) and `score` (rescore a
 * predictions file as VLMEvalKit scores it). `run` and `align` need the model (issue #14). */
#include "cmds.h"
#include "common/cli.h"

static const struct lvd_cli_cmd cmds[] = {
	{"convert", "turn MMBench/VLMEvalKit TSV, POPE, TextVQA or DocVQA files into a benchmark JSONL", cmd_convert},
	{"score", "score a predictions JSONL as VLMEvalKit does (no model, no LLM judge)", cmd_score},
	{"run", "answer a benchmark JSONL with the VLM (+ adapter) and score it: predictions.jsonl, scores.json", cmd_run},
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "lvd-eval",
			    "Score a VLM on VQA-style benchmarks and on attention alignment with SD maps.",
			    cmds);
}

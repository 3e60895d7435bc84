/* lvd-eval — Score a VLM on VQA-style benchmarks and on attention alignment with SD maps.
 * `convert` (benchmark files into lvd-eval's JSONL form), `run` (answer a benchmark with
 * the model and score it), `score` (rescore a predictions file as VLMEvalKit scores it)
 * and `align` (per-word attention maps against a pack's SD targets, with pictures). */
#include "cmds.h"
#include "common/cli.h"

static const struct lvd_cli_cmd cmds[] = {
	{"convert", "turn MMBench/VLMEvalKit TSV, POPE, TextVQA or DocVQA files into a benchmark JSONL", cmd_convert},
	{"run", "answer a benchmark JSONL with the VLM (+ adapter) and score it: predictions.jsonl, scores.json", cmd_run},
	{"score", "score a predictions JSONL as VLMEvalKit does (no model, no LLM judge)", cmd_score},
	{"align", "score the VLM's per-word attention maps against a pack's SD targets (and --viz pictures)", cmd_align},
	{0, 0, 0},
};

int main(int argc, char **argv)
{
	return lvd_cli_main(argc, argv, "lvd-eval",
			    "Score a VLM on VQA-style benchmarks and on attention alignment with SD maps.",
			    cmds);
}

#!/bin/sh
# mllama training step on the GPU vs transformers + PEFT on the same GPU (issue #20 bench),
# one call of tests/gpu/run.sh (its step mllama_bench). Prepared; it has not run yet.
#   model   Llama-3.2-11B-Vision dimensions (tests/golden/mllama/config-11b: text 4096
#           wide, 32 heads / 8 kv heads, MLP 14336, vocabulary 128256; vision 1280 wide,
#           4 tiles of 560²) with fewer layers so full fine-tuning fits one 80 GB card:
#           TEXT_LAYERS (default 8, cross-attention layers at 3 and 7), VISION_LAYERS local
#           (default 8) + VISION_GLOBAL (default 2), 5 intermediate vision outputs as the
#           real model (projector 7680 → 4096); random weights on both sides
#   sample  one image of 4 tiles and T = 512 text tokens (batch 1)
#   modes   lora (r 8, alpha 16 on q_proj,v_proj: PEFT's suffix match, so the vision
#           tower's too) and full (every parameter trained, AdamW)
#   ours    build/gpu/bench_mllama_train: fp32 weights and activations on the device (no
#           bf16 path yet), step = zero grads + forward + backward + AdamW; median of ITERS
#   peer    tests/gpu/mllama_train_peer.py: MllamaForConditionalGeneration in bf16 with SDPA
#           (+ PEFT for lora), the same sample, AdamW; when PY has torch with CUDA,
#           transformers and peft; SKIP otherwise
# Reports per mode: step time, tokens/s, text-decoder TFLOP/s and MFU (of PEAK_TFLOPS,
# default 989: dense bf16 of H100 SXM / H200), peak memory (ours: device used; the
# planner's prediction beside it), and the ratio peer/ours (goal >= 1.5) and MFU (goal
# >= 0.40). Last line "mllama-train-gpu: ...".
# Env: BUILD (build), PY (.venv-ref/bin/python), ITERS (5), T (512), TEXT_LAYERS,
#      VISION_LAYERS, VISION_GLOBAL, PEAK_TFLOPS, LVD_DWS_GIB (device workspace, 8).
set -u
BUILD=${BUILD:-build}
PY=${PY:-.venv-ref/bin/python}
ITERS=${ITERS:-5}
T=${T:-512}
TEXT_LAYERS=${TEXT_LAYERS:-8}
VISION_LAYERS=${VISION_LAYERS:-8}
VISION_GLOBAL=${VISION_GLOBAL:-2}
PEAK=${PEAK_TFLOPS:-989}
export PEAK_TFLOPS=$PEAK
BIN=$BUILD/gpu/bench_mllama_train
SRC=tests/golden/mllama/config-11b/config.json
[ -x "$BIN" ] || { echo "mllama-train-gpu: $BIN not built (make CUDA=1 all)"; exit 1; }
T_DIR=$(mktemp -d)
trap 'rm -rf "$T_DIR"' EXIT
mkdir -p "$T_DIR/cfg"
# the reduced config (python3 standard library only)
python3 - "$SRC" "$T_DIR/cfg/config.json" "$TEXT_LAYERS" "$VISION_LAYERS" "$VISION_GLOBAL" <<'PYEOF' || { echo "mllama-train-gpu: config failed"; exit 1; }
import json, sys
src, dst, tl, vl, vg = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
c = json.load(open(src))
t, v = c["text_config"], c["vision_config"]
t["num_hidden_layers"] = tl
t["cross_attention_layers"] = [l for l in range(3, tl, 4)]
v["num_hidden_layers"] = vl
v["num_global_layers"] = vg
idx = sorted(set(min(i, vl - 1) for i in (1, 3, max(vl // 2, 4), vl - 2, vl - 1)))
while len(idx) < 5:
    idx = sorted(set(idx) | {max(set(range(vl)) - set(idx))})
v["intermediate_layers_indices"] = idx[:5]
json.dump(c, open(dst, "w"), indent=1)
PYEOF
REPORT=""
for MODE in lora full; do
	ours=$("$BIN" "$T_DIR/cfg" "$MODE" "$ITERS" "$T" 2>"$T_DIR/ours_$MODE.log")
	rc=$?
	tail -n 20 "$T_DIR/ours_$MODE.log"
	echo "ours $MODE: $ours"
	[ "$rc" -eq 0 ] || { REPORT="$REPORT $MODE ours FAILED (exit $rc);"; continue; }
	peer=""
	if "$PY" -c "import torch, transformers, peft; assert torch.cuda.is_available()" 2>/dev/null; then
		peer=$("$PY" tests/gpu/mllama_train_peer.py "$T_DIR/cfg" "$MODE" "$ITERS" "$T" 2>"$T_DIR/peer_$MODE.log" | tail -n 1)
		[ -n "$peer" ] || tail -n 20 "$T_DIR/peer_$MODE.log"
		echo "peer $MODE: $peer"
	else
		echo "peer $MODE: SKIP ($PY without torch+CUDA+transformers+peft)"
	fi
	line=$(python3 - "$ours" "$peer" "$PEAK" <<'PYEOF'
import json, sys
a, peak = json.loads(sys.argv[1]), float(sys.argv[3])
b = json.loads(sys.argv[2]) if sys.argv[2] else {}
if "skip" in a:
    print("ours SKIP (%s)" % a["skip"]); sys.exit(0)
s = "%s: ours %.3fs/step %.0f tok/s text %.1f TFLOP/s MFU %.1f%% mem %.1f GiB (plan %.1f GiB)" % (
    a["mode"], a["median_s"], a["tokens_per_s"], a["text_tflops"], 100 * a["mfu"], a["device_used_mb"] / 1024,
    a["plan_peak_mb"] / 1024)
if "median_s" in b:
    s += "; peer %.3fs/step text MFU %.1f%% mem %.1f GiB; peer/ours %.2f (goal >= 1.5)" % (
        b["median_s"], 100 * a["text_tflop"] / b["median_s"] / peak, b["peak_mb"] / 1024, b["median_s"] / a["median_s"])
print(s)
PYEOF
)
	echo "$line"
	REPORT="$REPORT $line;"
done
echo "mllama-train-gpu:$REPORT"

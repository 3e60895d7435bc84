#!/bin/sh
# make demo: the whole pipeline as far as it exists, on 6 real photos from
# ../shared/data/images with a tiny random-weight SD 1.x (tests/golden/sd/diffusers, the
# architecture of SD 1.5 at toy width; its maps are not meaningful pictures, the
# plumbing is real) and the real CLIP and Llama-3 tokenizers:
#   sd-attnmap run -> inspect -> viz -> lvd-pack run -> inspect -> viz
# Output goes to demo/ (git-ignored). Re-running resumes (nothing is recomputed).
set -eu
BUILD=${BUILD:-build}
SHARED=${LVD_SHARED_DATA:-../shared/data}
OUT=${DEMO_DIR:-demo}
SD=tests/golden/sd/diffusers
for f in "$SHARED/images/skimage_chelsea.png" "$SHARED/clip/vocab.json" "$SHARED/llama3/tokenizer.model"; do
	[ -f "$f" ] || { echo "demo: $f not found (set LVD_SHARED_DATA to the shared data folder)" >&2; exit 1; }
done
mkdir -p "$OUT/img" "$OUT/model"
for f in skimage_astronaut.png skimage_chelsea.png skimage_coffee.png skimage_rocket.png \
	COCO_val2014_000000438915.png p2p_gnochi_mirror.png; do
	cp "$SHARED/images/$f" "$OUT/img/"
done
# The VLM side needs only the tokenizer and the image geometry of Llama-3.2-Vision.
cp "$SHARED/llama3/tokenizer.model" "$OUT/model/"
printf '{"model_type": "mllama", "image_token_index": 128256, "vision_config": {"image_size": 560, "patch_size": 14, "max_num_tiles": 4}}\n' >"$OUT/model/config.json"
cat >"$OUT/data.jsonl" <<'JSONL'
{"id": "astronaut", "image": "skimage_astronaut.png", "caption": "a portrait of an astronaut with the American flag"}
{"id": "chelsea", "image": "skimage_chelsea.png", "caption": "a facial photo of a tabby cat"}
{"id": "coffee", "image": "skimage_coffee.png", "caption": "a cup of coffee on a saucer"}
{"id": "rocket", "image": "skimage_rocket.png", "conversations": [{"role": "user", "content": "<image>\nWhat is in the picture?"}, {"role": "assistant", "content": "a rocket standing on a launchpad"}]}
{"id": "dog", "image": "COCO_val2014_000000438915.png", "caption": "a dog that is on a black skateboard"}
{"id": "mirror", "image": "p2p_gnochi_mirror.png", "caption": "a cat sitting next to a mirror"}
JSONL

say() { printf '\n== %s\n' "$*" >&2; }
say "stage 1: sd-attnmap run (tiny SD, 256 px, 4 timesteps)"
"$BUILD/sd-attnmap" run --sd "$SD" --tokenizer "$SHARED/clip" --fold-vocab --resolution 256 \
	--manifest "$OUT/data.jsonl" --images "$OUT/img" --out "$OUT/maps"
say "sd-attnmap inspect (first record, without values)"
"$BUILD/sd-attnmap" inspect "$OUT/maps" --id chelsea | cut -c1-400
"$BUILD/sd-attnmap" viz "$OUT/maps" --id chelsea --out "$OUT/viz-maps" --images "$OUT/img"
say "stage 2: lvd-pack run (Llama-3 tokenizer, Llama-3.2-Vision tiling)"
"$BUILD/lvd-pack" run --manifest "$OUT/data.jsonl" --images "$OUT/img" --maps "$OUT/maps" \
	--model "$OUT/model" --out "$OUT/pack"
say "lvd-pack inspect (matched words in [[brackets]])"
"$BUILD/lvd-pack" inspect "$OUT/pack/train-00000.lvdp" --model "$OUT/model" --id chelsea | cut -c1-600
"$BUILD/lvd-pack" viz "$OUT/pack/train-00000.lvdp" --out "$OUT/viz-pack" --id chelsea
say "done"
cat >&2 <<MSG
  maps:      $OUT/maps/attn-00000.lvdm (+ run.json)
  pack:      $OUT/pack/train-00000.lvdp (+ pack.json)
  pictures:  $OUT/viz-maps/ (SD map per word) and $OUT/viz-pack/ (targets on the VLM canvas)
  next:      lvd-sft and lvd-eval are not implemented yet.
MSG

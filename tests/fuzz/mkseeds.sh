#!/bin/sh
# tests/fuzz/mkseeds.sh — (re)builds the seed corpora tests/fuzz/corpus/<target>/ from
# tests/golden and small hand-made inputs. Text seeds come from here (python3 from the
# system, no packages); the binary record seeds from tests/fuzz/mkseeds.c, which this
# `make fuzz-seeds` builds as $BUILD/fuzz-seeds/mkseeds first. Run from the source root. The
# output is checked in; rerun only when a format or a fixture changes.
set -eu
BUILD=${BUILD:-build}
C=tests/fuzz/corpus
G=tests/golden
rm -rf "$C"
for t in bench clip_tok config container image json llama_tok manifest mapsrec official_maps packrec safetensors; do
	mkdir -p "$C/$t"
done
sep() { printf '\n@@\n'; }

# safetensors: single files, and an index + its two shards
cp $G/safetensors/dtypes.safetensors $G/safetensors/empty.safetensors "$C/safetensors/"
S=$G/safetensors/sharded
{ cat $S/model.safetensors.index.json; sep; cat $S/model-00001-of-00002.safetensors; sep
  cat $S/model-00002-of-00002.safetensors; } >"$C/safetensors/sharded"

# json and config: the configs of the test models (config: first byte picks the reader)
cp $G/sd/diffusers/unet/config.json "$C/json/unet.json"
cp $G/sd/diffusers/model_index.json "$C/json/model_index.json"
cp $G/mllama/model/generation_config.json "$C/json/generation_config.json"
printf '{"a": 1, "n": -3, "x": 2.5, "name": "s", "list": [1, 2, 3], "sub": {"a": true, "list": ["x", "y"]}}' \
	>"$C/json/getters.json"
{ printf '\000'; cat $G/sd/diffusers/text_encoder/config.json; } >"$C/config/clip"
{ printf '\001'; cat $G/sd/diffusers/vae/config.json; } >"$C/config/vae"
{ printf '\002'; cat $G/sd/diffusers/unet/config.json; } >"$C/config/unet"
{ printf '\003'; cat $G/mllama/model/config.json; } >"$C/config/mllama"

# manifests: the golden cases, the attnmap manifest, a JSON array
cp $G/manifest/cases.jsonl "$C/manifest/cases.jsonl"
cp $G/attnmap/manifest.jsonl "$C/manifest/attnmap.jsonl"
printf '[{"id": "a", "image": "a.png", "caption": "a dog"}, {"image": "b.jpg", "conversations": [{"from": "human", "value": "<image>\\nWhat?"}, {"from": "gpt", "value": "A cat."}]}]\n' \
	>"$C/manifest/array.json"

# images: the small PNG/JPEG sources of the image tests (the last 4 bytes are read as
# options by the harness; a real file's last bytes are fine for that)
for f in $G/images/*.png $G/images/*.jpg; do
	[ "$(wc -c <"$f")" -le 8192 ] && cp "$f" "$C/image/"
done

# eval: first byte picks the converter (0 mmbench-tsv, 1 pope, 2 textvqa, 3 docvqa,
# 4 vlmevalkit-tsv); the rest is also read as JSONL items and as a Python list
png=$(base64 -w0 "$C/image/$(ls "$C/image" | grep png | head -n 1)" 2>/dev/null || true)
{ printf '\000index\tquestion\thint\tA\tB\tC\tanswer\tcategory\timage\tl2-category\tsplit\n'
  printf '1\tWhich animal?\tnan\tcat\tdog\tbird\tB\tattr\t%s\tfine\tdev\n' "$png"
  printf '2\tWhat colour?\tLook\tred\tblue\tnan\tA\tattr\t1\tfine\tdev\n'; } >"$C/bench/mmbench.tsv"
{ printf '\004index\tquestion\tanswer\timage\tcategory\n'
  printf '1\tIs there a dog?\tYes\t%s\texistence\n' "$png"; } >"$C/bench/vlmevalkit.tsv"
{ printf '\001'
  printf '{"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}\n'
  printf '{"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a dog in the image?", "label": "no"}\n'; } \
	>"$C/bench/pope.jsonl"
{ printf '\002'; cat $G/eval/textvqa_sample.json; } >"$C/bench/textvqa.json"
{ printf '\003'; cat $G/eval/docvqa_sample.json; } >"$C/bench/docvqa.json"
{ printf '\001'; head -c 4000 $G/eval/predictions.jsonl | sed '$d'; } >"$C/bench/predictions.jsonl"
{ printf '\000'; printf "['a', \"b\", 'it\\\\'s', '']"; } >"$C/bench/pylist"

# tokenizers: a trimmed tokenizer.json (bytes + a few merges + specials), its string-merge
# form, a tiktoken file; CLIP vocab.json/merges.txt pairs (a full CLIP merge list is
# 48894 lines, too big for a seed: these reach the merge parser and its errors)
python3 - "$G/tokenizer/small/tokenizer.json" "$C/llama_tok" <<'PY'
import base64, json, sys
src, out = sys.argv[1], sys.argv[2]
d = json.load(open(src))
m = d["model"]
inv = {v: k for k, v in m["vocab"].items()}
keep = {inv[i]: i for i in range(256) if i in inv}
merges = []
for a, b in m["merges"]:
    if a in keep and b in keep and a + b in m["vocab"]:
        keep[a + b] = m["vocab"][a + b]
        merges.append([a, b])
    if len(merges) >= 24:
        break
m2 = dict(m, vocab=keep, merges=merges)
mini = {"added_tokens": d["added_tokens"][:4], "pre_tokenizer": d["pre_tokenizer"], "model": m2}
json.dump(mini, open(out + "/mini.json", "w"), ensure_ascii=False, separators=(",", ":"))
m3 = dict(m2, merges=[a + " " + b for a, b in merges], ignore_merges=False)
json.dump({"added_tokens": d["added_tokens"][:2], "model": m3}, open(out + "/strmerges.json", "w"),
          ensure_ascii=False, separators=(",", ":"))
# tiktoken: byte-level strings back to bytes (GPT-2 byte map)
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
dec = {chr(c): b for b, c in zip(bs, cs)}
with open(out + "/tiktoken.model", "w") as f:
    for s, i in sorted(keep.items(), key=lambda kv: kv[1]):
        f.write(base64.b64encode(bytes(dec[ch] for ch in s)).decode() + " " + str(i) + "\n")
PY
# CLIP: a vocab.json of bytes (+</w>) and a few merges, then merges.txt
python3 - "$C/clip_tok" <<'PY'
import json, sys
out = sys.argv[1]
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
chars = [chr(c) for c in sorted(cs)]
vocab = {}
for c in chars:
    vocab[c] = len(vocab)
for c in chars:
    vocab[c + "</w>"] = len(vocab)
merges = ["d o", "do g</w>", "c a", "ca t</w>", "t h", "th e</w>"]
for mg in merges:
    a, b = mg.split(" ")
    vocab[a + b] = len(vocab)
vocab["<|startoftext|>"] = len(vocab)
vocab["<|endoftext|>"] = len(vocab)
with open(out + "/pair", "w") as f:
    f.write(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")))
    f.write("\n@@\n#version: 0.2\n" + "\n".join(merges) + "\n")
with open(out + "/merges-only", "w") as f:
    f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
PY

gzip -9n -c "$C/clip_tok/merges-only" >"$C/clip_tok/merges.gz"

# records: container shards and payloads (tests/fuzz/mkseeds.c)
rm -rf "$BUILD/fuzz-seeds/tmp"
"$BUILD/fuzz-seeds/mkseeds" "$BUILD/fuzz-seeds/tmp"
rm -rf "$BUILD/fuzz-seeds/tmp"
du -sh "$C"

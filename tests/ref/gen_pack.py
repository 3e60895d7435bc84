"""Golden data for lvd-pack (lib/lavender/geometry.c, labels).

Writes tests/golden/pack/geometry.json: for a list of image sizes, the mllama layout that
transformers' MllamaImageProcessor computes (tiles high/wide, aspect_ratio_id, resized
extent), taken from the functions the processor calls and confirmed by running the PIL
image processor itself on synthetic images (pixel tile count, aspect id, and where the
zero padding starts).

Writes tests/golden/pack/labels.json: conversations (manifest form) rendered with the
Mllama chat template through transformers' apply_chat_template (full Llama-3 vocabulary
built from ../shared/data/llama3/tokenizer.model the way gen_tokenizer.py does), and the
labels as llama-recipes builds them (tokenize_dialogs in ocrvqa_dataset.py: mask every
<|eot_id|>-terminated segment holding a system/user header, the assistant header
triples, pad and image tokens). The C side builds labels per message instead; the two
rules must agree. Each case also holds ids_official / labels_official: what the official
Lavender Flickr30k collator (AstraZeneca/vlm, llama_finetune/src/llama_recipes/datasets/
flickr30k_dataset.py, Flickr30kDataCollator; ../shared/reference/lavender.md §3.1 "Prompt
and label construction") feeds: the text of processor.apply_chat_template through
transformers' MllamaProcessor (a right-padded batch of all cases with a 560x560 image
each, the tokenizer with the published Llama-3.2-Vision post-processor that prepends
<|begin_of_text|>, hence two BOS), and its label rules re-implemented here
(official_flickr_labels; lvd-pack run --labels official).

Run with the reference venv: .venv-ref/bin/python tests/ref/gen_pack.py
"""
import json
import os
import random

import numpy as np
from PIL import Image
from transformers.models.mllama import image_processing_pil_mllama as mp

OUT = os.path.join(os.path.dirname(__file__), "..", "golden", "pack")


def geometry():
    random.seed(7)
    sizes = [
        (560, 560), (1, 1), (1, 4000), (4000, 1), (100, 100), (559, 561), (561, 559),
        (560, 1120), (1120, 560), (480, 640), (640, 480), (427, 640), (640, 427),
        (375, 500), (500, 375), (512, 512), (2240, 560), (560, 2240), (1680, 560),
        (560, 1680), (1120, 1120), (3000, 4000), (4000, 3000), (300, 1200), (1200, 300),
        (2000, 500), (500, 2000), (33, 97), (97, 33), (560, 1119), (1121, 561),
        (1024, 768), (768, 1024), (720, 1280), (1280, 720), (1080, 1920), (1920, 1080),
    ]
    for _ in range(60):
        sizes.append((random.randint(1, 5000), random.randint(1, 5000)))
    for _ in range(20):
        h = random.randint(100, 3000)
        sizes.append((h, h * random.randint(1, 5)))
        sizes.append((h * random.randint(1, 5), h))
    aspects = mp.get_all_supported_aspect_ratios(4)
    cases = []
    for (h, w) in sizes:
        ch, cw = mp.get_optimal_tiled_canvas(h, w, 4, 560)
        nh, nw = mp.get_image_size_fit_to_canvas(h, w, ch, cw, 560)
        th, tw = int(ch) // 560, int(cw) // 560
        cases.append({"h": h, "w": w, "tiles_h": th, "tiles_w": tw,
                      "aspect_id": aspects.index((th, tw)) + 1,
                      "new_h": int(nh), "new_w": int(nw)})
    # Confirm with the processor itself on a few real-size images: the image is white,
    # the padding is zero before normalisation, so the first padded row/column shows up
    # as a jump to -mean/std in channel 0.
    proc = mp.MllamaImageProcessorPil(size={"height": 560, "width": 560}, max_image_tiles=4)
    for c in cases[:20]:
        if c["h"] * c["w"] > 4000 * 4000 or min(c["h"], c["w"]) < 2:
            continue
        img = Image.fromarray(np.full((c["h"], c["w"], 3), 255, np.uint8))
        out = proc(images=[[img]], return_tensors="np")
        pv = out["pixel_values"][0, 0]
        assert int(out["num_tiles"][0][0]) == c["tiles_h"] * c["tiles_w"], c
        assert int(out["aspect_ratio_ids"][0, 0]) == c["aspect_id"], c
        canvas = np.zeros((c["tiles_h"] * 560, c["tiles_w"] * 560), np.float32)
        for t in range(c["tiles_h"] * c["tiles_w"]):
            r, q = divmod(t, c["tiles_w"])
            canvas[r * 560:(r + 1) * 560, q * 560:(q + 1) * 560] = pv[t, 0]
        mean, std = proc.image_mean[0], proc.image_std[0]
        mid = ((0 - mean) / std + (1 - mean) / std) / 2  # between pad (0) and white (1)
        rows = np.where((canvas > mid).any(axis=1))[0]
        cols = np.where((canvas > mid).any(axis=0))[0]
        assert rows.max() + 1 == c["new_h"] and cols.max() + 1 == c["new_w"], (c, rows.max(), cols.max())
    return {"tile_size": 560, "patch_size": 14, "max_tiles": 4,
            "aspects": [list(a) for a in aspects], "cases": cases}


def manifest_to_messages(conv):
    """Manifest conversation -> chat messages: the image goes first in the first user
    turn, replacing a leading "<image>" (and one newline after it)."""
    msgs, seen_image = [], False
    for turn in conv:
        role = {"human": "user", "gpt": "assistant"}.get(turn.get("role", turn.get("from")),
                                                          turn.get("role", turn.get("from")))
        text = turn.get("content", turn.get("value"))
        if role == "user" and not seen_image:
            if text.startswith("<image>"):
                text = text[len("<image>"):]
                if text.startswith("\n"):
                    text = text[1:]
            msgs.append({"role": role, "content": [{"type": "image"}, {"type": "text", "text": text}]})
            seen_image = True
        else:
            msgs.append({"role": role, "content": text})
    return msgs


def llama_recipes_labels(ids, pad_id, image_id):
    labels = list(ids)
    eot = [i for i, n in enumerate(labels) if n == 128009]
    last = 0
    prompt_headers = [[128006, 9125, 128007], [128006, 882, 128007]]

    def has_header(seq):
        return any(seq[i:i + 3] in prompt_headers for i in range(len(seq) - 3))

    for idx in eot:
        if has_header(labels[last:idx + 1]):
            labels[last:idx + 1] = [-100] * (idx - last + 1)
        else:
            last = idx + 1
    for i in range(len(labels) - 3):
        if labels[i:i + 3] == [128006, 78191, 128007]:
            labels[i:i + 3] = [-100, -100, -100]
    return [-100 if x in (pad_id, image_id) else x for x in labels]


def official_flickr_labels(ids, tok, image_id):
    """The Flickr30k collator's label rules, as its code behaves (re-implemented, not
    copied): (1) per <|eot_id|>-terminated segment, mask it when a system/user header
    "is in" it -- the test is `list_of_3_ids in list_of_ints`, which is never true, so
    nothing is masked here; (2) mask every [<|start_header_id|>, "assistant",
    <|end_header_id|>] id triple; (3) mask the pad and image token ids."""
    labels = list(ids)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    prompt_headers = [tok.convert_tokens_to_ids(["<|start_header_id|>", r, "<|end_header_id|>"])
                      for r in ("system", "user")]
    assistant = tok.convert_tokens_to_ids(["<|start_header_id|>", "assistant", "<|end_header_id|>"])
    assert assistant == [128006, 78191, 128007], assistant
    start = 0
    for e in [i for i, t in enumerate(labels) if t == eot]:
        seg = labels[start:e + 1]
        hit = any(h in seg for h in prompt_headers)  # the official membership test
        assert not hit
        if hit:
            labels[start:e + 1] = [-100] * (e + 1 - start)
        else:
            start = e + 1
    for i in range(len(labels) - len(assistant) + 1):
        if labels[i:i + len(assistant)] == assistant:
            labels[i:i + len(assistant)] = [-100] * len(assistant)
    return [-100 if t in (tok.pad_token_id, image_id) else t for t in labels]


def official_batch(ltok, template, msgs_list):
    """ids and labels as the official Flickr30k collator builds them for msgs_list (one
    right-padded batch), each cut to its unpadded length (pad labels checked to be -100)."""
    import copy
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.models.mllama.processing_mllama import MllamaProcessor
    t = copy.deepcopy(ltok)
    # the post-processor of the published Llama-3.2-11B-Vision(-Instruct) tokenizer.json
    t.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", 128000)])])
    ft = PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                 pad_token="<|finetune_right_pad_id|>")
    ft.padding_side = "right"
    proc = MllamaProcessor(mp.MllamaImageProcessorPil(size={"height": 560, "width": 560}, max_image_tiles=4),
                           ft, chat_template=template)
    texts = proc.apply_chat_template(msgs_list)
    img = Image.fromarray(np.full((560, 560, 3), 128, np.uint8))
    batch = proc(images=[[img] for _ in msgs_list], text=texts, padding=True)
    out = []
    for ids, am in zip(batch["input_ids"], batch["attention_mask"]):
        ids = list(ids)
        labels = official_flickr_labels(ids, ft, proc.image_token_id)
        n = int(sum(am))
        assert all(x == ft.pad_token_id for x in ids[n:]) and all(x == -100 for x in labels[n:])
        out.append((ids[:n], labels[:n]))
    return out


def labels_golden():
    import importlib.util
    from transformers import PreTrainedTokenizerFast
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("gen_tokenizer", os.path.join(here, "gen_tokenizer.py"))
    gt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gt)
    st = json.load(open(os.path.join(gt.SHARED, "llama3", "special_tokens.json"), encoding="utf-8"))
    ranks = gt.load_tiktoken(os.path.join(gt.SHARED, "llama3", "tokenizer.model"))
    ltok = gt.build_llama(ranks, st["pattern"], gt.mllama_specials(st))
    ft = PreTrainedTokenizerFast(tokenizer_object=ltok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                 pad_token="<|finetune_right_pad_id|>")
    ft.chat_template = st["chat_template_mllama_instruct"]["template"]
    convs = []
    ocr = json.load(open(os.path.join(gt.SHARED, "vqa", "lavender_finetune_format", "ocrvqa30k_first20.json")))
    for rec in ocr[:3]:
        convs.append(rec["conversations"])
    prompt = "Describe the image in a single sentence as a caption."
    with open(os.path.join(gt.SHARED, "images", "captions.jsonl")) as f:
        for k, line in enumerate(f):
            if k >= 3:
                break
            cap = json.loads(line)["caption"]
            convs.append([{"role": "user", "content": "<image>\n" + prompt}, {"role": "assistant", "content": cap}])
    convs.append([{"from": "human", "value": "What is in the picture? <b>naïve</b> 🦙"},
                  {"from": "gpt", "value": "  Two llamas.\n"},
                  {"from": "human", "value": "Colours?"},
                  {"from": "gpt", "value": "Brown and white; one is \"café au lait\"."}])
    cases = []
    for conv in convs:
        msgs = manifest_to_messages(conv)
        ids = ft.apply_chat_template(msgs, tokenize=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        ids = list(ids)
        labels = llama_recipes_labels(ids, ft.pad_token_id, 128256)
        cases.append({"conversations": conv, "ids": ids, "labels": labels})
    # the official collator: every user turn as content items (text and image)
    off_msgs = []
    for conv in convs:
        msgs = manifest_to_messages(conv)
        off_msgs.append([m if not isinstance(m["content"], str) else
                         {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in msgs])
    for c, (ids, labels) in zip(cases, official_batch(ltok, ft.chat_template, off_msgs)):
        assert ids == [128000] + c["ids"], "official ids = one more BOS"
        c["ids_official"] = ids
        c["labels_official"] = labels
    return {"about": "Mllama chat template ids (transformers) + llama-recipes labels; ids_official/labels_official: "
                     "MllamaProcessor + the official Flickr30k collator's label rules; see gen_pack.py",
            "cases": cases}


def main():
    os.makedirs(OUT, exist_ok=True)
    g = geometry()
    cases = g.pop("cases")
    with open(os.path.join(OUT, "geometry.json"), "w") as f:
        head = json.dumps(g)[:-1]
        f.write(head + ', "cases": [\n' + ",\n".join(json.dumps(c) for c in cases) + "\n]}\n")
    lab = labels_golden()
    with open(os.path.join(OUT, "labels.json"), "w", encoding="utf-8") as f:
        f.write('{"about": %s, "cases": [\n' % json.dumps(lab["about"]))
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in lab["cases"]) + "\n]}\n")


if __name__ == "__main__":
    main()

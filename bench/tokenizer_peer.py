"""Peer for bench/tokenizer.sh: Hugging Face `tokenizers` (single thread) on the same
file, one line per sequence, with the fast tokenizer built from Meta's
tokenizer.model exactly as tests/ref/gen_tokenizer.py builds it.
usage: tokenizer_peer.py TOKENIZER_MODEL SPECIAL_TOKENS_JSON FILE RUNS"""
import json
import os
import statistics
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import gen_tokenizer as g  # noqa: E402

CHUNK = 1  # one line per sequence


def chunks(data):
    out, p, n = [], 0, len(data)
    while p < n:
        e = min(p + CHUNK, n)
        while e < n and data[e - 1] != 0x0A:
            e += 1
        out.append(data[p:e].decode("utf-8"))
        p = e
    return out


def main():
    model, special, path, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t0 = time.perf_counter()
    st = json.load(open(special, encoding="utf-8"))
    tok = g.build_llama(g.load_tiktoken(model), st["pattern"], g.mllama_specials(st))
    load = time.perf_counter() - t0
    data = open(path, "rb").read()
    parts = chunks(data)
    times, ntok = [], 0
    for _ in range(runs):
        a = time.perf_counter()
        enc = tok.encode_batch(parts, add_special_tokens=False)
        times.append(time.perf_counter() - a)
        ntok = sum(len(e.ids) for e in enc)
    med = statistics.median(times)
    print(json.dumps({"impl": "hf-tokenizers", "bytes": len(data), "tokens": ntok, "median_s": round(med, 4),
                      "mb_per_s": round(len(data) / med / 1e6, 2), "tokens_per_s": round(ntok / med),
                      "load_s": round(load, 3), "runs": runs}))


if __name__ == "__main__":
    main()

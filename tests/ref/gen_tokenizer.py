"""Golden data for lib/text (CLIP BPE, Llama-3 BPE, Mllama chat template).

Writes tests/golden/tokenizer/:
  corpus.json      {"lines": [...]}: captions + shared tokenizer-case strings + a seeded
                   multilingual / emoji / whitespace-edge corpus
  clip.json        per line: ids of HF CLIPTokenizer (transformers 5 = tokenizers backend)
                   on html.unescape(html.unescape(line)) (OpenAI basic_clean's step, which
                   HF lacks), with BOS/EOS, untruncated
  llama.json       per line: ids from a `tokenizers` fast tokenizer built from Meta's
                   tokenizer.model exactly as transformers' TikTokenConverter does
                   (ignore_merges, Split regex isolated, ByteLevel), specials allowed,
                   no BOS
  small/tokenizer.json + small.json   a small HF tokenizer.json (first 4000 ranks of the
                   same vocabulary + the Mllama special tokens) and its ids on 400 lines
  chat.json        Mllama chat-template renders (string + ids) from transformers'
                   apply_chat_template with the template in special_tokens.json

Run with the reference venv: .venv-ref/bin/python tests/ref/gen_tokenizer.py
Needs ../shared/data (clip/, llama3/, images/captions.jsonl, tokenizer_tests/).
"""
import base64
import html
import json
import os
import random
import unicodedata

import regex
from tokenizers import Tokenizer, Regex, AddedToken
from tokenizers import models, pre_tokenizers, decoders
from transformers import CLIPTokenizer, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("LVD_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
OUT = os.path.join(ROOT, "tests", "golden", "tokenizer")
random.seed(1234)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()


def tok_str(b):
    return "".join(BYTE_ENC[x] for x in b)


# ---------------------------------------------------------------- corpus
def build_corpus():
    lines = []
    with open(os.path.join(SHARED, "images", "captions.jsonl"), encoding="utf-8") as f:
        for ln in f:
            r = json.loads(ln)
            if r.get("caption"):
                lines.append(r["caption"])
            for c in r.get("all_captions", []) or []:
                lines.append(c)
    cases = json.load(open(os.path.join(SHARED, "tokenizer_tests", "tokenizer_cases.json"), encoding="utf-8"))["cases"]
    for c in cases:
        if "text" in c and c["text"] not in lines:
            lines.append(c["text"])
    words = ("a the cat dog sitting next to mirror red blue photo of an astronaut with American flag "
             "running jumping quickly Hello WORLD can't won't I'm you'LL he'S we've they'D o'clock "
             "rock'n'roll naïve café résumé Straße ǅemal İstanbul ΣΊΣΥΦΟΣ ΟΔΟΣ σοφός Москва привет "
             "мир Ελληνικά עברית العربية हिन्दी नमस्ते ภาษาไทย 日本語 東京タワー ひらがな カタカナ 中文 生活的真谛是 "
             "한국어 안녕하세요 Ꙋ ǈ ﬁ ﬃ Å Å é é ñ ñ ½ ² ٣ ४ 12 345 6789 1234567 3.14159 1,000,000 "
             "$5 €10 ¥6 #hashtag @user http://x.org/a?b=c&d=e foo_bar foo-bar x86_64 C++ e-mail "
             "&amp; &lt;tag&gt; &quot;q&quot; &#39;x&#39; &nbsp; ... !!! ?! ;) :-) (parens) [brackets] {braces} "
             "“quotes” ‘single’ — – … • © ® ™ ° ± × ÷ → ← ∀ ∑ √ ∞ "
             "😂 👍 🤣 ❤️ 👁️ 👱🏻 🕵‍♂️ 🧑‍🤝‍🧑 👩‍❤‍💋‍👨 🇺🇸 🇯🇵 🦙 🎉 ✨ ☕ "
             "<|begin_of_text|> <|eot_id|> <|image|> <|endoftext|> <|startoftext|> <|not_special|>").split(" ")
    spaces = [" ", " ", " ", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\xa0", "\u3000",
              "\u2028", "\x85", "\x0b", "\x0c", "\x1c", "\u200b", "\u2009", "\u202f", "\u180e", " \t "]
    gen = []
    for i in range(2400):
        n = random.randint(1, 14)
        parts = []
        for _ in range(n):
            w = random.choice(words)
            r = random.random()
            if r < 0.1:
                w = w.upper()
            elif r < 0.15:
                w = w.capitalize()
            parts.append(w)
            parts.append(random.choice(spaces) if random.random() < 0.35 else " ")
        s = "".join(parts)
        r = random.random()
        if r < 0.1:
            s = " " + s
        elif r < 0.2:
            s = s.rstrip()
        elif r < 0.25:
            s = unicodedata.normalize("NFD", s)
        gen.append(s)
    # whitespace / edge lines
    gen += ["", " ", "  ", "\n", "\t\t", "a", "A", "'s", "'S", "''", "'", "aaaa" * 50, "1" * 40,
            "!" * 30, " " * 40 + "x", "x" + " " * 40, "ab" * 100, "\u00e9" * 20, "😀" * 10,
            "ΣΑΣ ΟΔΟΣ. Σ", "İİ iİ", "ǅ ǈ ǋ", "word's words' 'quoted' don't", "x\u0301y\u0308z"]
    return lines + gen


# ---------------------------------------------------------------- CLIP


def clip_ids(tok, text):
    """HF CLIPTokenizer (transformers 5: the `tokenizers` backend: NFC, \\s+ -> ' ', lowercase,
    CLIP split regex, BPE with </w>) applied after OpenAI basic_clean's html.unescape x2."""
    u = html.unescape(html.unescape(text))
    return tok(u, add_special_tokens=True, truncation=False)["input_ids"], u != text


# ---------------------------------------------------------------- Llama 3
def load_tiktoken(path):
    ranks = {}
    with open(path, "rb") as f:
        for ln in f:
            if not ln.strip():
                continue
            b64, r = ln.split()
            ranks[base64.b64decode(b64)] = int(r)
    return ranks


def mllama_specials(st):
    names = st["naming_schemes"]["hf_mllama_llama3_2_vision"]["tokens"]
    return [(n, 128000 + i) for i, n in enumerate(names)]


def build_llama(ranks, pattern, specials, keep=None):
    """Fast tokenizer as transformers' TikTokenConverter builds it (optionally only ranks < keep)."""
    if keep is not None:
        ranks = {b: r for b, r in ranks.items() if r < keep}
    vocab = {tok_str(b): r for b, r in ranks.items()}
    merges = []
    for b, r in ranks.items():
        if len(b) == 1:
            continue
        local = []
        for i in range(1, len(b)):
            l, rr = b[:i], b[i:]
            if l in ranks and rr in ranks:
                local.append((l, rr, r))
        local.sort(key=lambda x: (ranks[x[0]], ranks[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda x: x[2])
    merges = [(tok_str(a), tok_str(b)) for a, b, _ in merges]
    t = Tokenizer(models.BPE(vocab, merges, fuse_unk=False, byte_fallback=False, ignore_merges=True))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    # ids must be added in order; HF assigns the next free id, so pad the model vocab first
    t.add_special_tokens([AddedToken(n, special=True, normalized=False) for n, _ in specials])
    return t


def main():
    os.makedirs(os.path.join(OUT, "small"), exist_ok=True)
    corpus = build_corpus()
    json.dump({"lines": corpus}, open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8"), ensure_ascii=False)

    # CLIP
    ctok = CLIPTokenizer.from_pretrained(os.path.join(SHARED, "clip"))
    clip_rows = []
    n_agree = 0
    for s in corpus:
        ids, unesc = clip_ids(ctok, s)
        n_agree += unesc
        clip_rows.append({"ids": ids, "html_unescaped": unesc})
    json.dump({"about": "HF CLIPTokenizer ids after html.unescape x2 (see gen_tokenizer.py)", "rows": clip_rows},
              open(os.path.join(OUT, "clip.json"), "w"), separators=(",", ":"))
    print(f"clip: {len(clip_rows)} lines, {n_agree} changed by html.unescape")

    # Llama 3 (full vocab from tokenizer.model)
    st = json.load(open(os.path.join(SHARED, "llama3", "special_tokens.json"), encoding="utf-8"))
    pattern = st["pattern"]
    ranks = load_tiktoken(os.path.join(SHARED, "llama3", "tokenizer.model"))
    specials = mllama_specials(st)
    ltok = build_llama(ranks, pattern, specials)
    assert ltok.token_to_id("<|image|>") == 128256, ltok.token_to_id("<|image|>")
    rows = []
    for s in corpus:
        e = ltok.encode(s, add_special_tokens=False)
        rows.append({"ids": e.ids, "decoded": ltok.decode(e.ids, skip_special_tokens=False)})
    json.dump({"about": "HF tokenizers fast Llama-3 ids, specials allowed, no BOS", "rows": rows},
              open(os.path.join(OUT, "llama.json"), "w", encoding="utf-8"), separators=(",", ":"), ensure_ascii=False)
    print(f"llama: {len(rows)} lines")

    # small tokenizer.json
    keep = 4000
    stok = build_llama(ranks, pattern, [], keep=keep)
    stok.add_special_tokens([AddedToken(n, special=True, normalized=False) for n, _ in specials])
    path = os.path.join(OUT, "small", "tokenizer.json")
    stok.save(path)
    # HF numbers the added tokens from len(vocab): here 4000..4256 (<|image|> = 4256)
    stok = Tokenizer.from_file(path)
    assert stok.token_to_id("<|image|>") == keep + 256
    srows = []
    for s in corpus[:400]:
        srows.append({"ids": stok.encode(s, add_special_tokens=False).ids})
    json.dump({"about": "ids of small/tokenizer.json on corpus lines 0..399", "rows": srows},
              open(os.path.join(OUT, "small.json"), "w"), separators=(",", ":"))

    # chat template
    ft = PreTrainedTokenizerFast(tokenizer_object=ltok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                 pad_token="<|finetune_right_pad_id|>")
    ft.chat_template = st["chat_template_mllama_instruct"]["template"]
    img = {"type": "image"}
    dialogs = [
        [{"role": "user", "content": "This is a test sentence."}],
        [{"role": "user", "content": [img, {"type": "text", "text": "Describe this image in two sentences"}]}],
        [{"role": "user", "content": [img, {"type": "text", "text": "What is written on the cover?"}]},
         {"role": "assistant", "content": "The Art of War."}],
        [{"role": "system", "content": "You are helpful."},
         {"role": "user", "content": "Hi there\n"},
         {"role": "assistant", "content": " Hello! How can I help?"},
         {"role": "user", "content": "\nTell me about 🦙 llamas, naïvely."},
         {"role": "assistant", "content": [{"type": "text", "text": "Llamas are camelids.\n\n"}]}],
        [{"role": "user", "content": [{"type": "text", "text": "Look: "}, img, {"type": "text", "text": " and this"}]},
         {"role": "assistant", "content": ""}],
        [{"role": "user", "content": [img, {"type": "text", "text": "Who wrote this book?\nAnswer briefly."}]},
         {"role": "assistant", "content": "Stephen King"},
         {"role": "user", "content": "Is this a comic book?"},
         {"role": "assistant", "content": "No"}],
    ]
    chats = []
    for msgs in dialogs:
        for gen in (False, True):
            text = ft.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            ids = ft.apply_chat_template(msgs, tokenize=True, add_generation_prompt=gen)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            ids = list(ids)
            assert ids == ltok.encode(text, add_special_tokens=False).ids
            chats.append({"messages": msgs, "add_generation_prompt": gen, "text": text, "ids": ids})
    json.dump({"about": "transformers apply_chat_template, Mllama template from special_tokens.json", "cases": chats},
              open(os.path.join(OUT, "chat.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=0)
    print(f"chat: {len(chats)} cases")


if __name__ == "__main__":
    main()

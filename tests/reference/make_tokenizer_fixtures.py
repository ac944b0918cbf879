#!/usr/bin/env python3
"""Golden token ids from transformers' CLIPTokenizer for awkward strings:
tests/fixtures/tokenizer.json, read by tests/test-tokenizer.c.

    ~/.cache/sdcl-venv/bin/python tests/reference/make_tokenizer_fixtures.py

The tokenizer is transformers 5's (tokenizers backend: NFC, white space
runs to one space, lower case one character at a time). transformers 5 has
no ftfy path: with or without ftfy installed there is no HTML unescaping,
no quote uncurling, no ligature or width folding (OpenAI's and open_clip's
tokenizers, and transformers 4's slow CLIPTokenizer with ftfy, do those)."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_vocab import clip_tokenizer  # noqa: E402

STRINGS = [
    "", " ", "   ", "\t\n", "a", "A", "a photograph of an astronaut riding a horse",
    "A Photograph Of An ASTRONAUT", "hello world", "hello   world", "hello\tworld\nagain",
    " leading and trailing spaces  ", "café", "cafe\u0301", "naïve résumé", "Ångström",
    "straße", "İstanbul", "ΑΘΗΝΑ", "москва", "東京タワーの夜景", "中文提示词，高质量",
    "한국어 프롬프트", "مرحبا بالعالم", "שלום", "हिन्दी", "ไทย", "🙂", "🐱‍👤 ninja cat",
    "👍🏽 thumbs", "👨‍👩‍👧‍👦", "🇯🇵 flag", "12345", "3.14159", "1,000,000", "2024-11-25",
    "x86_64", "!!!???", "...", "…", "--", "—em dash—", "a,b,c", "a, b, c", "(masterpiece)",
    "[[low quality]]", "(word:1.3)", "it's", "I'LL", "don't", "they're we've I'm you'd",
    "it’s curly", "\"quoted\"", "'single'", "<|startoftext|>", "<|endoftext|> after",
    "x <|startoftext|> y <|endoftext|>", "<|STARTOFTEXT|>", "&amp;amp;", "a&b", "#hashtag",
    "@mention", "email@example.com", "https://example.com/path?q=1", "C++ & C#",
    "supercalifragilisticexpialidocious" * 4, "a" * 120, "aaaa bbbb aaaa bbbb",
    "the the the the", "non\u00a0breaking\u3000space", "zero\u200bwidth", "tab\u000bvt",
    "ctrl\u0001char", "mixed CASE Words", "ﬁ ligature", "½ ⅓ ²", "Ⅻ roman", "$100 €50 ¥20",
    "a+b=c", "under_score", "slash/back\\slash", "~tilde~", "{braces}", "<angle>",
    "masterpiece, best quality, 1girl, solo, looking at viewer", "<||||> <|> |>", "Ⓐ circled Ⅳ",
    "<|EndOfText|> mixed",
    # Σ lowers to σ everywhere (no final ς); U+180E is not white space; Python's
    # and Oniguruma's separators; digits of other scripts split one by one
    "ΟΔΥΣΣΕΥΣ ΣΟΦΙΑ Σ", "mongolian\u180evowel", "nel\u0085line \u001cfile\u001dsep",
    "x\u0301 lone mark", "١٢٣ ٤.٥ digits", "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ", "I'M YOU'D WE'VE THEY'RE",
    "3.14", "don’t “smart” quotes", "e\u0301\u0301 two marks", "ǅungla ǈ",
    # a long prompt: 300+ tokens
    ", ".join(["a highly detailed matte painting of an ancient castle on a cliff at sunset",
               "dramatic volumetric lighting", "trending on artstation", "8k uhd",
               "by greg rutkowski and alphonse mucha"] * 8),
]

# the vocabulary is right: OpenAI's ids for a plain sentence
SENTENCE = ("a photograph of an astronaut riding a horse",
            [320, 8853, 539, 550, 18376, 6765, 320, 4558])


def main():
    work = tempfile.mkdtemp()
    tok = clip_tokenizer(work)
    assert tok(SENTENCE[0]).input_ids == [49406] + SENTENCE[1] + [49407]
    cases = [{"text": s, "ids": tok(s, add_special_tokens=False).input_ids} for s in STRINGS]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                       "tokenizer.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()

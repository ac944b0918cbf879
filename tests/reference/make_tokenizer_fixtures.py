#!/usr/bin/env python3
"""Golden token ids from transformers' CLIPTokenizer for awkward strings:
tests/fixtures/tokenizer.json, read by tests/test-tokenizer.c.

    ~/.cache/sdcl-venv/bin/python tests/reference/make_tokenizer_fixtures.py

The tokenizer is transformers 5's (tokenizers backend: NFC, white space
runs to one space, lower case; no ftfy, no HTML unescaping)."""
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
]


def main():
    work = tempfile.mkdtemp()
    tok = clip_tokenizer(work)
    cases = [{"text": s, "ids": tok(s, add_special_tokens=False).input_ids} for s in STRINGS]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                       "tokenizer.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()

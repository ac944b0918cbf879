"""The reference CLIP tokenizer, built offline from the merges file in
models/ (OpenAI's bpe_simple_vocab_16e6.txt.gz) the way OpenAI's CLIP
builds its vocabulary; transformers' CLIPTokenizer then behaves as the one
of openai/clip-vit-large-patch14."""
import gzip
import json
import os

from transformers import CLIPTokenizer

MERGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models",
                      "bpe_simple_vocab_16e6.txt.gz")


def clip_tokenizer(workdir):
    merges = gzip.open(MERGES).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = [chr(c) for c in cs]
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(workdir, "vocab.json"), "w") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f)
    with open(os.path.join(workdir, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(os.path.join(workdir, "vocab.json"), os.path.join(workdir, "merges.txt"),
                         pad_token="<|endoftext|>")

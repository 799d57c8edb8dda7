#!/usr/bin/env python3
"""Write a weights-only safetensors file with the tensor shapes of BERT-base
(about 109 M parameters) for the workbench benchmarks: opening time, key
latency while spectra are computed, and how fast a spectrum is cancelled.

    big_model.py OUT.safetensors [--wide N]

--wide N adds one N x N matrix (`wide.weight`): its spectrum takes seconds,
so the benchmarks can cancel it in the middle of LAPACK. Values are seeded
Gaussian noise (numpy only); the file is not committed.
"""
import json
import struct
import sys

import numpy as np


def shapes(wide):
    hidden, inter, vocab, layers = 768, 3072, 30522, 12
    out = [("embeddings.word_embeddings.weight", (vocab, hidden)),
           ("embeddings.position_embeddings.weight", (512, hidden)),
           ("embeddings.token_type_embeddings.weight", (2, hidden)),
           ("embeddings.LayerNorm.weight", (hidden,)),
           ("embeddings.LayerNorm.bias", (hidden,))]
    for i in range(layers):
        p = "encoder.layer.%d." % i
        for part in ("query", "key", "value"):
            out += [(p + "attention.self.%s.weight" % part, (hidden, hidden)),
                    (p + "attention.self.%s.bias" % part, (hidden,))]
        out += [(p + "attention.output.dense.weight", (hidden, hidden)),
                (p + "attention.output.dense.bias", (hidden,)),
                (p + "attention.output.LayerNorm.weight", (hidden,)),
                (p + "attention.output.LayerNorm.bias", (hidden,)),
                (p + "intermediate.dense.weight", (inter, hidden)),
                (p + "intermediate.dense.bias", (inter,)),
                (p + "output.dense.weight", (hidden, inter)),
                (p + "output.dense.bias", (hidden,)),
                (p + "output.LayerNorm.weight", (hidden,)),
                (p + "output.LayerNorm.bias", (hidden,))]
    out += [("pooler.dense.weight", (hidden, hidden)), ("pooler.dense.bias", (hidden,))]
    if wide:
        out.append(("wide.weight", (wide, wide)))
    return out


def main():
    args = sys.argv[1:]
    wide = 0
    if "--wide" in args:
        k = args.index("--wide")
        wide = int(args[k + 1])
        del args[k:k + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    rng = np.random.default_rng(1)
    header, offset = {}, 0
    for name, shape in shapes(wide):
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(args[0], "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for name, shape in shapes(wide):
            std = 0.02 if len(shape) > 1 else 1.0
            f.write((rng.standard_normal(shape, dtype=np.float32) * std).astype("<f4").tobytes())


if __name__ == "__main__":
    main()

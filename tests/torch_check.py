#!/usr/bin/python3
"""Check that a safetensors file loads in PyTorch.

usage: /usr/bin/python3 tests/torch_check.py FILE.safetensors [REFERENCE.safetensors]

Reads FILE with a strict reader that follows the safetensors format and makes
a torch tensor of each entry (torch.frombuffer with the matching dtype,
bfloat16 and float16 included), then prints "ok N tensors".  Anything not per
the format is rejected.

With REFERENCE, also checks that every tensor of REFERENCE is in FILE with the
same dtype, shape and bitwise-identical data, and that the two files' metadata
are equal (a missing __metadata__ counts as empty).

Exit status: 0 on success, 1 (with a message on stderr) on a bad file or a
mismatch, 2 on a usage error.
"""

import json
import struct
import sys

import torch

MAX_HEADER = 100 * 1000 * 1000

DTYPES = {  # name -> (torch dtype, bytes per element)
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}


class Bad(Exception):
    pass


def _pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise Bad("duplicate key %r in header" % k)
        d[k] = v
    return d


def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def load(path):
    """Return (list of (name, dtype string, tensor) in offset order, metadata dict or None)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Bad(str(e))
    if len(raw) < 8:
        raise Bad("file shorter than 8 bytes")
    n = struct.unpack("<Q", raw[:8])[0]
    if n == 0 or n > MAX_HEADER:
        raise Bad("header length %d out of range" % n)
    if 8 + n > len(raw):
        raise Bad("header length %d runs past the end of the file (%d bytes)" % (n, len(raw)))
    if (8 + n) % 8 != 0:
        raise Bad("header not padded so that 8 + N (%d) is a multiple of 8" % (8 + n))
    hb = raw[8:8 + n]
    if hb[:1] != b"{":
        raise Bad("header does not start with '{'")
    if not hb.rstrip(b" ").endswith(b"}"):
        raise Bad("header padding is not spaces after the JSON object")
    try:
        text = hb.decode("utf-8")
    except UnicodeDecodeError:
        raise Bad("header is not UTF-8")
    try:
        header = json.loads(text, object_pairs_hook=_pairs)
    except ValueError as e:
        raise Bad("header is not valid JSON: %s" % e)
    if not isinstance(header, dict):
        raise Bad("header is not a JSON object")

    meta = header.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict):
            raise Bad("__metadata__ is not an object")
        for k, v in meta.items():
            if not isinstance(v, str):
                raise Bad("__metadata__[%r] is not a string" % k)

    data = raw[8 + n:]
    entries = []
    for name, e in header.items():
        if not isinstance(e, dict):
            raise Bad("%s: entry is not an object" % name)
        if set(e) != {"dtype", "shape", "data_offsets"}:
            raise Bad("%s: entry keys %s, expected dtype, shape, data_offsets"
                      % (name, sorted(e)))
        dt = e["dtype"]
        if dt not in DTYPES:
            raise Bad("%s: unknown dtype %r" % (name, dt))
        shape = e["shape"]
        if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
            raise Bad("%s: bad shape %r" % (name, shape))
        offs = e["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_uint(o) for o in offs)
                or offs[0] > offs[1]):
            raise Bad("%s: bad data_offsets %r" % (name, offs))
        count = 1
        for d in shape:
            count *= d
        size = DTYPES[dt][1]
        if offs[1] - offs[0] != count * size:
            raise Bad("%s: %s%s needs %d bytes, data_offsets give %d"
                      % (name, dt, shape, count * size, offs[1] - offs[0]))
        entries.append((offs[0], offs[1], name, dt, shape))

    entries.sort()
    pos = 0
    for b, en, name, _, _ in entries:
        if b != pos:
            raise Bad("%s: data starts at %d, expected %d (hole or overlap)" % (name, b, pos))
        pos = en
    if pos != len(data):
        raise Bad("data buffer is %d bytes, tensors cover %d" % (len(data), pos))

    if sys.byteorder != "little":
        raise Bad("this checker assumes a little-endian host")
    out = []
    for b, en, name, dt, shape in entries:
        tdt = DTYPES[dt][0]
        if en == b:
            t = torch.empty(shape, dtype=tdt)
        else:
            chunk = bytearray(data[b:en])
            if dt == "BOOL" and any(x > 1 for x in chunk):
                raise Bad("%s: BOOL byte other than 0 or 1" % name)
            t = torch.frombuffer(chunk, dtype=tdt).reshape(shape)
        out.append((name, dt, t))
    return out, meta


def raw_bytes(t):
    if t.numel() == 0:
        return b""
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: torch_check.py FILE.safetensors [REFERENCE.safetensors]\n")
        return 2
    try:
        got, gmeta = load(argv[1])
    except Bad as e:
        sys.stderr.write("%s: %s\n" % (argv[1], e))
        return 1
    print("ok %d tensors" % len(got))
    if len(argv) == 2:
        return 0
    try:
        ref, rmeta = load(argv[2])
    except Bad as e:
        sys.stderr.write("%s: %s\n" % (argv[2], e))
        return 1
    have = {name: (dt, t) for name, dt, t in got}
    bad = []
    for name, dt, t in ref:
        if name not in have:
            bad.append("%s: missing" % name)
            continue
        gdt, gt = have[name]
        if gdt != dt:
            bad.append("%s: dtype %s, reference %s" % (name, gdt, dt))
        elif list(gt.shape) != list(t.shape):
            bad.append("%s: shape %s, reference %s" % (name, list(gt.shape), list(t.shape)))
        elif raw_bytes(gt) != raw_bytes(t):
            diff = (gt.reshape(-1).double() != t.reshape(-1).double()).nonzero()
            where = int(diff[0]) if diff.numel() else -1
            bad.append("%s: values differ (first differing element %d)" % (name, where))
    if (gmeta or {}) != (rmeta or {}):
        keys = sorted(set(gmeta or {}) ^ set(rmeta or {}) |
                      {k for k in set(gmeta or {}) & set(rmeta or {}) if gmeta[k] != rmeta[k]})
        bad.append("metadata differs (keys %s)" % ", ".join(keys))
    if bad:
        for b in bad:
            sys.stderr.write("%s: %s\n" % (argv[1], b))
        return 1
    print("ok matches %s (%d tensors, metadata equal)" % (argv[2], len(ref)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

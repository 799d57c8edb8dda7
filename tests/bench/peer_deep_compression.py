#!/usr/bin/python3
"""PyTorch peer of lathe's Deep Compression pipeline (recipes/deep_compression.lua).

usage:
  /usr/bin/python3 peer_deep_compression.py MODEL.safetensors DATA_DIR THREADS [--quick]

The same pipeline as the recipe with its default parameters, written as a
PyTorch user would write it (torch.nn.utils.prune, numpy k-means, autograd
for the shared values):

1. Load the model (peer.py's reader and builder: the architecture and the
   preprocessing come from the file's __metadata__ "lathe.arch") and
   Fashion-MNIST from DATA_DIR, split as lathe splits it: training = the
   first 55,000 training images, validation = the last 5,000, test = t10k.
2. Prune every layer to the paper's share of weights kept (LeNet-300-100:
   fc1 8 %, fc2 9 %, fc3 26 %; LeNet-5: conv1 66 %, conv2 12 %, fc1 8 %,
   fc2 19 %) in 4 steps on the cubic schedule (sparsity final*(1-(1-k/4)^3)
   at step k) with prune.l1_unstructured (masks only grow), one epoch of
   Adam (lr 2e-3, batch 128) after each step; then 8 more epochs, epoch e at
   lr 2e-3*(1+cos(pi*(e-1)/8))/2 (lathe.schedule.cosine), each kept only if
   the validation accuracy improved (else the weights from before it are
   put back).
3. Weight sharing per layer over the kept weights (LeNet-300-100: 6 bits;
   LeNet-5: 8 bits conv, 5 bits fc): k-means from linspace(min, max, k),
   Lloyd steps (np.searchsorted on the midpoints, np.bincount for the
   means; a value on a midpoint goes to the lower cluster) until the
   assignments stop changing.
4. Fine-tune the shared values: 3 epochs of Adam, lr 1e-4 (the biases train
   too, as in lathe). Each layer keeps its k shared values as an
   nn.Parameter and rebuilds its weight from them before every forward
   pass, so autograd gives each shared value the summed gradient of the
   weights that share it. An epoch is kept only if the validation accuracy
   improved.
5. Biases to 8 bits, affine per tensor (MinMaxObserver quint8 and
   fake_quantize_per_tensor_affine: the values stay float).
6. Size, estimated (no file is written): per weight tensor, Huffman-coded
   relative indices (the gap width b in 2..10 that gives the smallest size;
   a gap of 2^b - 1 or more is bridged by filler symbols 2^b - 1, which
   take no code), Huffman-coded codes and the codebook (k float32 values);
   per bias, one byte a value plus a float32 scale and an int32 zero
   point. Huffman sizes are exact (heapq), plus one byte per alphabet
   symbol for the code-length table. Unlike the file lathe writes, no
   header or architecture text is counted.

A fresh Adam optimiser is made for every epoch, as each lathe.finetune call
in the recipe makes one. Shuffles are seeded like lathe's calls (steps 2..5,
then 6..13, shared values 101..103); lathe's generator is its own, so the
orders differ.

Prints one JSON line: seconds (wall time of steps 2-5: data loading, the
test evaluations and the size estimate are not timed), the time of each
stage, test accuracy before and after, packed_bytes and ratio (the size
of MODEL, float32, over packed_bytes). --quick trains on the first 2,000
training images per epoch and runs 1 final pruning epoch instead of 8 (a
check that the peer works, not a measurement).

THREADS is applied with torch.set_num_threads and openblas_set_num_threads,
as in peer.py. There is no time budget: the pipeline runs whole (about a
minute for lenet300 here, several for lenet5).

Exit status 0 on success, 1 on a bad model or data set, 2 on a usage error,
3 if torch cannot be imported.
"""

import heapq
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402 (exits 3 when torch is missing)
from peer import Bad, Usage  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch.nn.utils.prune as prune  # noqa: E402
from torch import nn  # noqa: E402

# The paper's settings (lua/lathe/paper.lua) and the recipe's defaults.
KEEP = {
    "LeNet-300-100": {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26},
    "LeNet-5": {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19},
}
BITS = {
    "LeNet-300-100": {"fc1": 6, "fc2": 6, "fc3": 6},
    "LeNet-5": {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5},
}
STEPS, EPOCHS, FINAL_EPOCHS, LR = 4, 1, 8, 2e-3
SHARE_EPOCHS, SHARE_LR = 3, 1e-4
BIAS_BITS = 8
BATCH = 128
VAL_SIZE = 5000
QUICK_LIMIT = 2000
EVAL_BATCH = 1000
MAX_LLOYD = 100000  # as lathe's LT_KMEANS_MAX_ITER
GAP_BITS = range(2, 11)


# ---- model and data ------------------------------------------------------

def weighted_layers(model, arch):
    """{name: module} of the layers with weights, in architecture order."""
    mods = model if isinstance(model, nn.Sequential) else model.layers
    out = {}
    for layer, m in zip(arch["layers"], mods):
        if layer.get("op") in ("linear", "conv2d"):
            out[layer["name"]] = m
    return out


def detect(layers):
    for net, keep in KEEP.items():
        if set(keep) == set(layers):
            return net
    raise Bad("expected LeNet-300-100 (fc1..fc3) or LeNet-5 (conv1, conv2, fc1, fc2), got %s"
              % ", ".join(layers))


def load_data(dir_, arch):
    pix = peer.read_idx(dir_, "train-images-idx3-ubyte")
    lab = peer.read_idx(dir_, "train-labels-idx1-ubyte").long()
    if pix.shape[0] != lab.shape[0] or pix.shape[0] <= VAL_SIZE:
        raise Bad("%s: %d training images, %d labels" % (dir_, pix.shape[0], lab.shape[0]))
    x = peer.preprocess(pix, arch)
    n = x.shape[0] - VAL_SIZE
    tx = peer.preprocess(peer.read_idx(dir_, "t10k-images-idx3-ubyte"), arch)
    ty = peer.read_idx(dir_, "t10k-labels-idx1-ubyte").long()
    return (x[:n], lab[:n]), (x[n:], lab[n:]), (tx, ty)


def accuracy(model, data):
    x, y = data
    model.eval()
    hits = 0
    with torch.inference_mode():
        for i in range(0, x.shape[0], EVAL_BATCH):
            hits += int((model(x[i:i + EVAL_BATCH]).argmax(dim=1) == y[i:i + EVAL_BATCH]).sum())
    return hits / x.shape[0]


def train_epoch(model, data, lr, seed, limit):
    """One epoch of Adam (a fresh optimiser, as each lathe.finetune call)."""
    x, y = data
    if limit:
        x, y = x[:limit], y[:limit]
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator()
    gen.manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=gen)
    for i in range(0, x.shape[0], BATCH):
        idx = perm[i:i + BATCH]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x.index_select(0, idx)), y.index_select(0, idx)).backward()
        opt.step()


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def keep_if_better(model, train, val, best, lr, seed, limit):
    """Train one epoch; keep it if the validation accuracy rose, else put
    the weights back. Returns (best, kept)."""
    saved = snapshot(model)
    train_epoch(model, train, lr, seed, limit)
    acc = accuracy(model, val)
    if acc > best:
        return acc, True
    model.load_state_dict(saved)
    return best, False


# ---- 2. pruning ------------------------------------------------------------

def agp_target(final, k, steps):
    """lathe.schedule.agp_steps with initial 0."""
    if k >= steps:
        return final
    r = 1 - k / steps
    return final + (0.0 - final) * (r * r * r)


def prune_stage(model, layers, net, train, val, limit, final_epochs):
    keep = KEEP[net]
    for k in range(1, STEPS + 1):
        for name, m in layers.items():
            n = m.weight.numel()
            want = round(n * agp_target(1 - keep[name], k, STEPS))  # half to even, as torch
            have = int((m.weight_mask == 0).sum()) if hasattr(m, "weight_mask") else 0
            # the amount counts among the weights still present: the mask grows
            prune.l1_unstructured(m, "weight", amount=want - have)
        train_epoch(model, train, LR, k + 1, limit)
    best = accuracy(model, val)
    kept = []
    for e in range(1, final_epochs + 1):
        t = e - 1
        lr = LR * (1 + math.cos(math.pi * t / final_epochs)) / 2 if t > 0 else LR
        best, ok = keep_if_better(model, train, val, best, lr, STEPS + 1 + e, limit)
        if ok:
            kept.append(e)
    masks = {}
    for name, m in layers.items():
        masks[name] = m.weight_mask.detach().numpy().astype(bool).ravel()
        prune.remove(m, "weight")
    return masks, kept


# ---- 3. weight sharing -------------------------------------------------------

def kmeans_1d(v, k):
    """Lloyd's k-means of the float64 values v from linspace(min, max, k);
    returns (centroids float64 sorted, codes int64, steps)."""
    c = np.linspace(v.min(), v.max(), k)
    codes = None
    for step in range(1, MAX_LLOYD + 1):
        new = np.searchsorted((c[:-1] + c[1:]) / 2, v, side="left")
        if codes is not None and np.array_equal(new, codes):
            return c, codes, step
        codes = new
        count = np.bincount(codes, minlength=k)
        total = np.bincount(codes, weights=v, minlength=k)
        full = count > 0
        c[full] = total[full] / count[full]  # an empty cluster keeps its centroid
        if np.any(c[1:] < c[:-1]):
            c.sort()
            codes = None  # the codes no longer match the order
    return c, np.searchsorted((c[:-1] + c[1:]) / 2, v, side="left"), MAX_LLOYD


def rebuild_weight(module, inputs):
    """Forward pre-hook: the weight from the shared values, zero where pruned."""
    w = torch.zeros(module.numel_w, dtype=module.centroids.dtype)
    w = w.index_put((module.where,), module.centroids[module.codes])
    module.weight = w.view(module.shape_w)


def share_stage(layers, net, masks):
    info = {}
    for name, m in layers.items():
        bits = BITS[net][name]
        k = 1 << bits
        w = m.weight.detach()
        where = np.flatnonzero(masks[name])
        c, codes, steps = kmeans_1d(w.numpy().ravel()[where].astype(np.float64), k)
        table = c.astype(np.float32)
        shape = tuple(w.shape)
        del m.weight  # the parameter; the hook sets a plain tensor
        m.register_parameter("centroids", nn.Parameter(torch.from_numpy(table)))
        m.register_buffer("codes", torch.from_numpy(codes.astype(np.int64)))
        m.register_buffer("where", torch.from_numpy(where.astype(np.int64)))
        m.shape_w, m.numel_w = shape, int(np.prod(shape))
        m.register_forward_pre_hook(rebuild_weight)
        rebuild_weight(m, None)
        info[name] = {"k": k, "present": int(where.size), "lloyd_steps": steps}
    return info


# ---- 5. biases ---------------------------------------------------------------

def quantize_biases(layers):
    qp = {}
    for name, m in layers.items():
        if m.bias is None:
            continue
        obs = torch.ao.quantization.MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
        with torch.no_grad():
            obs(m.bias)
            scale, zp = obs.calculate_qparams()
            m.bias.copy_(torch.fake_quantize_per_tensor_affine(
                m.bias, float(scale), int(zp), 0, (1 << BIAS_BITS) - 1))
        qp[name] = (float(scale), int(zp))
    return qp


# ---- 6. size -----------------------------------------------------------------

def huffman_bits(counts):
    """Bits of the symbols Huffman coded (sum of count * code length): the
    total of the merged weights; one bit each when there is one symbol."""
    heap = [int(c) for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    bits = 0
    while len(heap) > 1:
        s = heapq.heappop(heap) + heapq.heappop(heap)
        bits += s
        heapq.heappush(heap, s)
    return bits


def huffman_bytes(counts, alphabet):
    return (huffman_bits(counts) + 7) // 8 + alphabet  # + a code-length table


def index_bytes(where):
    """Relative indices: (bytes, b) for the best gap width b."""
    gaps = np.diff(where, prepend=-1) - 1  # absent elements before each present one
    best = None
    for b in GAP_BITS:
        fill = (1 << b) - 1
        counts = np.bincount(gaps % fill, minlength=fill + 1)
        counts[fill] = int((gaps // fill).sum())  # filler symbols
        size = huffman_bytes(counts, fill + 1)
        if best is None or size < best[0]:
            best = (size, b)
    return best


def packed_size(layers):
    parts = {"index": 0, "codes": 0, "codebook": 0, "bias": 0}
    gap_bits = {}
    for name, m in layers.items():
        idx, b = index_bytes(m.where.numpy())
        k = m.centroids.numel()
        parts["index"] += idx
        parts["codes"] += huffman_bytes(np.bincount(m.codes.numpy(), minlength=k), k)
        parts["codebook"] += 4 * k
        if m.bias is not None:
            parts["bias"] += m.bias.numel() + 4 + 4  # u8 values, f32 scale, i32 zero point
        gap_bits[name] = b
    return sum(parts.values()), parts, gap_bits


# ---- the run -------------------------------------------------------------------

def run(argv):
    quick = "--quick" in argv
    args = [a for a in argv if a != "--quick"]
    if len(args) != 3 or any(a.startswith("-") for a in args):
        raise Usage()
    path, data_dir = args[0], args[1]
    (threads,) = peer.ints(args[2:3])
    limit = QUICK_LIMIT if quick else 0
    final_epochs = 1 if quick else FINAL_EPOCHS
    lib = peer.set_threads(threads)
    torch.manual_seed(0)
    np.random.seed(0)

    model, arch = peer.build_model(path)
    layers = weighted_layers(model, arch)
    net = detect(layers)
    train, val, test = load_data(data_dir, arch)
    acc0 = accuracy(model, test)

    c0 = time.process_time()
    t0 = time.perf_counter()
    masks, kept = prune_stage(model, layers, net, train, val, limit, final_epochs)
    t1 = time.perf_counter()
    share = share_stage(layers, net, masks)
    t2 = time.perf_counter()
    best = accuracy(model, val)
    share_kept = []
    for e in range(1, SHARE_EPOCHS + 1):
        best, ok = keep_if_better(model, train, val, best, SHARE_LR, 100 + e, limit)
        if ok:
            share_kept.append(e)
    t3 = time.perf_counter()
    quantize_biases(layers)
    t4 = time.perf_counter()
    c4 = time.process_time()

    acc1 = accuracy(model, test)
    size, parts, gap_bits = packed_size(layers)
    fp32 = os.path.getsize(path)
    res = {"engine": "torch", "model": os.path.basename(path).split(".")[0], "net": net,
           "threads": threads, "seconds": round(t4 - t0, 3),
           "stages": {"prune": round(t1 - t0, 3), "share": round(t2 - t1, 3),
                      "finetune_shared": round(t3 - t2, 3), "biases": round(t4 - t3, 4)},
           "test_accuracy_before": round(acc0, 4), "test_accuracy_after": round(acc1, 4),
           "val_accuracy": round(best, 4),
           "packed_bytes": size, "fp32_bytes": fp32, "ratio": round(fp32 / size, 2),
           "bytes": parts, "gap_bits": gap_bits,
           "layers": {n: dict(share[n], bits=BITS[net][n]) for n in layers},
           "prune_epochs_kept": kept, "share_epochs_kept": share_kept,
           "cpu_util": round((c4 - c0) / (t4 - t0), 2)}
    if quick:
        res["quick"] = {"limit": limit, "final_epochs": final_epochs}
    info = peer.env_info(lib)
    res["core"] = info.pop("blas_core", "unknown")
    res.update(info)
    print(json.dumps(res))


USAGE = "usage: peer_deep_compression.py MODEL.safetensors DATA_DIR THREADS [--quick]\n"


def main(argv):
    try:
        run(argv)
    except Usage:
        sys.stderr.write(USAGE)
        return 2
    except (Bad, KeyError, TypeError, ValueError, RuntimeError, OSError) as e:
        sys.stderr.write("peer_deep_compression.py: %s: %s\n" % (type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""PyTorch training peer for lathe's benchmark (`make bench`).

usage:
  /usr/bin/python3 peer_train.py ARCH.json DATA_DIR EPOCHS THREADS

Builds the architecture in ARCH.json (lathe's JSON form) as a torch model
with PyTorch's default initialisation (seed 0), reads the 60,000
Fashion-MNIST training images from DATA_DIR and preprocesses them the way
lathe does ((pixel/scale - mean)/std in float32, from the arch's
"preprocess"), then trains the model as bench_train does: Adam, lr 1e-3,
batch 128, cross-entropy, model.train(), a fresh shuffle each epoch (index
tensors, no DataLoader).  It prints one JSON line with the time of each
epoch and their median.  Reading and preprocessing the data is not timed;
shuffling, gathering the minibatches and the steps are.

EPOCHS may be a fraction below 1 (e.g. 0.1), for quick checks: one epoch is
started, stopped after that fraction of its minibatches, and its time is
extrapolated to the whole epoch ("partial": the fraction run).

Time budget: the run keeps to $LATHE_PEER_BUDGET_S (default 20 s, as
peer.py), a few warm-up steps included.  If the first epoch has not ended
when the budget is spent, it is stopped there (after at least 20
minibatches) and its time extrapolated, marked "partial" in the output;
later epochs are only started when the last one's time still fits, else the
output has fewer "epoch_s" than "epochs_asked".  Minibatches take the same
time all through an epoch, so the figure per epoch stays comparable; only
its noise grows.

THREADS is applied with torch.set_num_threads and openblas_set_num_threads,
as in peer.py (whose model builder, IDX reader and thread control this
reuses).

Exit status 0 on success, 1 on a bad architecture or data set, 2 on a usage
error, 3 if torch cannot be imported.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer  # noqa: E402 (exits 3 when torch is missing)
from peer import Bad, Usage  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

BATCH = 128
LR = 1e-3
SEED = 0
WARMUP_STEPS = 3
MIN_PARTIAL_BATCHES = 20


def build_from_arch(arch):
    """A freshly initialised torch model for a lathe architecture dict."""
    modules, sources, names = [], [], {}
    for i, layer in enumerate(arch["layers"]):
        m, _ = peer.make_layer(layer)  # PyTorch's default initialisation
        src = i  # the previous layer's output
        if "inputs" in layer:
            want = layer["inputs"][0]
            src = 0 if want == "input" else names[want] + 1
        names[layer.get("name", "%s%d" % (layer["op"], i + 1))] = i
        modules.append(m)
        sources.append(src)
    if all(src == i for i, src in enumerate(sources)):
        return nn.Sequential(*modules)
    return peer.Graph(modules, sources)


def load_train(dir_, arch):
    """(x float32 [N, *input], y int64 [N]): the full training split,
    preprocessed exactly as peer.py (and lathe) do."""
    pix = peer.read_idx(dir_, "train-images-idx3-ubyte")
    labels = peer.read_idx(dir_, "train-labels-idx1-ubyte")
    if labels.shape[0] != pix.shape[0]:
        raise Bad("%s: %d images but %d labels" % (dir_, pix.shape[0], labels.shape[0]))
    return peer.preprocess(pix, arch), labels.long()


def fresh(arch):
    torch.manual_seed(SEED)
    model = build_from_arch(arch)
    model.train()
    return model, torch.optim.Adam(model.parameters(), lr=LR)


def step(model, opt, xb, yb):
    opt.zero_grad(set_to_none=True)
    out = model(xb)
    loss = F.cross_entropy(out, yb)
    loss.backward()
    opt.step()
    return loss, out


def bench(argv):
    arch_path, data_dir = argv[0], argv[1]
    try:
        epochs_arg = float(argv[2])
        threads = int(argv[3])
    except ValueError:
        raise Usage()
    if not (0 < epochs_arg <= 1000) or (epochs_arg > 1 and epochs_arg != int(epochs_arg)) or threads < 1:
        raise Usage()
    try:
        budget = float(os.environ.get("LATHE_PEER_BUDGET_S", "20"))
    except ValueError:
        budget = 20.0
    lib = peer.set_threads(threads)
    try:
        with open(arch_path, "rb") as f:
            arch = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise Bad("%s: %s" % (arch_path, e))
    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list) or "input" not in arch:
        raise Bad("%s: not a lathe architecture (needs \"input\" and \"layers\")" % arch_path)
    x, y = load_train(data_dir, arch)
    n = x.shape[0]
    batches = (n + BATCH - 1) // BATCH
    epochs_asked = 1 if epochs_arg < 1 else int(epochs_arg)
    stop_at = batches
    if epochs_arg < 1:
        stop_at = min(batches, max(1, int(epochs_arg * batches + 0.5)))

    # A few untimed steps (first-call allocations, kernel selection), then a
    # fresh model and optimiser, so that the timed run starts from the init.
    t_start = time.perf_counter()
    model, opt = fresh(arch)
    for i in range(min(WARMUP_STEPS, batches)):
        step(model, opt, x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH])
    model, opt = fresh(arch)

    gen = torch.Generator()
    gen.manual_seed(SEED)
    epoch_s, cpu, partial = [], [], None
    loss_sum, hits, seen = 0.0, 0, 0
    for e in range(epochs_asked):
        if e > 0 and time.perf_counter() - t_start + epoch_s[-1] > budget:
            break  # the next epoch would not fit
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(n, generator=gen)
        loss_sum, hits, seen = 0.0, 0, 0
        done = 0
        for b in range(stop_at):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            loss, out = step(model, opt, xb, yb)
            loss_sum += float(loss) * yb.shape[0]
            hits += int((out.argmax(dim=1) == yb).sum())
            seen += yb.shape[0]
            done = b + 1
            if (e == 0 and done < stop_at and done >= MIN_PARTIAL_BATCHES
                    and time.perf_counter() - t_start > budget):
                break  # out of time in the first epoch: extrapolate
        t1, c1 = time.perf_counter(), time.process_time()
        cpu.append((c1 - c0) / (t1 - t0))
        if done < batches:
            partial = done / batches
            epoch_s.append((t1 - t0) / partial)
            break
        epoch_s.append(t1 - t0)

    med = peer.median(epoch_s)
    res = {"engine": "pytorch", "model": os.path.basename(arch_path).split(".")[0] or arch_path,
           "batch": BATCH, "opt": "adam", "images": n,
           "epoch_s": [round(t, 3) for t in epoch_s], "median_epoch_s": round(med, 3),
           "images_per_s": round(n / med, 1)}
    if partial is not None:
        res["partial"] = round(partial, 4)
    if len(epoch_s) != epochs_asked:
        res["epochs_asked"] = epochs_asked
    res.update({"loss": round(loss_sum / seen, 4), "train_acc": round(hits / seen, 4),
                "threads": threads, "cpu_util": round(peer.median(cpu), 2)})
    info = peer.env_info(lib)
    res["core"] = info.pop("blas_core", "unknown")
    res.update(info)
    print(json.dumps(res))


USAGE = "usage: peer_train.py ARCH.json DATA_DIR EPOCHS THREADS\n"


def main(argv):
    try:
        if len(argv) != 4 or argv[0].startswith("-"):
            raise Usage()
        bench(argv)
    except Usage:
        sys.stderr.write(USAGE)
        return 2
    except (Bad, KeyError, TypeError, ValueError, RuntimeError, OSError) as e:
        sys.stderr.write("peer_train.py: %s: %s\n" % (type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

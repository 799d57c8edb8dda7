#!/usr/bin/python3
"""PyTorch peer for lathe's benchmark (`make bench`).

usage:
  /usr/bin/python3 peer.py MODEL.safetensors DATA_DIR BATCH IMAGES REPEATS THREADS
  /usr/bin/python3 peer.py --sgemm M K N THREADS REPEATS
  /usr/bin/python3 peer.py --conv C H W OC K STRIDE PAD BATCH THREADS REPEATS

The first form builds a torch model from the architecture lathe stores in the
file's __metadata__ ("lathe.arch"), loads the weights, puts it in eval mode,
preprocesses the first IMAGES Fashion-MNIST test images the way lathe does
((pixel/scale - mean)/std in float32), then runs the forward pass over them
at batch size BATCH once to warm up and REPEATS more times, timed.  It prints
one JSON line with the median time over the repeats.

Each measurement keeps to a time budget ($LATHE_PEER_BUDGET_S, default 20 s):
on a crowded machine, where a pass can take many times longer than usual,
the warm-up stops after a fifth of the budget and the timed passes are
fitted into the rest, first by running fewer repeats (at least 3), then by
timing fewer images (whole batches).  The output then says how many were
run ("images", "repeats") and how many were asked ("images_asked",
"repeats_asked").  The speed figures stay per image, so they are still
comparable; only their noise grows.

The second form times torch.mm of float32 [M,K] x [K,N] (the operands filled
like bench_sgemm's) and prints one JSON line with the median GFLOP/s.

The third form times torch.nn.functional.conv2d on BATCH images [C, H, W]
with OC square K x K filters (operands filled like bench_conv's) and prints
one JSON line with the median seconds and the rate in multiply-accumulates
of the plain convolution (GMAC/s), like bench_conv.

THREADS is applied with torch.set_num_threads (ATen/OpenMP/oneDNN) and, when
OpenBLAS is loaded in the process, with openblas_set_num_threads as well:
this PyTorch does its matrix products through the system OpenBLAS, which
ignores torch.set_num_threads, so without it a "1 thread" run would still do
its linear layers on every core.  The environment (OPENBLAS_CORETYPE,
OMP_NUM_THREADS, ...) is not touched; it is reported in the output.

Exit status 0 on success, 1 on a bad model or data set, 2 on a usage error,
3 if torch cannot be imported.
"""

import ctypes
import gzip
import json
import os
import struct
import sys
import time

try:
    import torch
    from torch import nn
except ImportError as e:  # run.sh turns this into "peer unavailable"
    sys.stderr.write("peer.py: cannot import torch: %s\n" % e)
    sys.exit(3)


class Bad(Exception):
    pass


class Usage(Exception):
    pass


def ints(args, lo=1):
    try:
        v = [int(a) for a in args]
    except ValueError:
        raise Usage()
    if min(v) < lo:
        raise Usage()
    return v


# ---- safetensors ---------------------------------------------------------

DTYPES = {  # safetensors name -> (torch dtype, bytes per element)
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


def read_safetensors(path):
    """Return ({name: tensor}, metadata dict)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Bad(str(e))
    if len(raw) < 8:
        raise Bad("%s: not a safetensors file (shorter than 8 bytes)" % path)
    (hlen,) = struct.unpack("<Q", raw[:8])
    if hlen == 0 or 8 + hlen > len(raw):
        raise Bad("%s: header length %d does not fit the file" % (path, hlen))
    try:
        header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Bad("%s: bad header: %s" % (path, e))
    if not isinstance(header, dict):
        raise Bad("%s: header is not a JSON object" % path)
    meta = header.pop("__metadata__", None) or {}
    data = memoryview(raw)[8 + hlen:]
    tensors = {}
    for name, e in header.items():
        try:
            tdt, size = DTYPES[e["dtype"]]
            shape = [int(d) for d in e["shape"]]
            b, end = (int(o) for o in e["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise Bad("%s: tensor %r: bad or unsupported entry %r" % (path, name, e))
        count = 1
        for d in shape:
            count *= d
        if not (0 <= b <= end <= len(data)) or end - b != count * size:
            raise Bad("%s: tensor %r: data_offsets %r do not match %s%s"
                      % (path, name, e["data_offsets"], e["dtype"], shape))
        if count == 0:
            t = torch.empty(shape, dtype=tdt)
        else:
            t = torch.frombuffer(bytearray(data[b:end]), dtype=tdt).reshape(shape)
        tensors[name] = t
    return tensors, meta


# ---- architecture --------------------------------------------------------

def pair(layer, key, default=None):
    v = layer.get(key, default)
    if v is None:
        raise Bad("layer %r: missing %r" % (layer.get("name", layer.get("op")), key))
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return (v[0], v[1])
    raise Bad("layer %r: %r must be an integer or a pair" % (layer.get("name"), key))


def make_layer(layer):
    """Return (module, parameter slots to fill: {slot: tensor name})."""
    op = layer.get("op")
    name = layer.get("name")
    if op in ("linear", "conv2d", "batchnorm1d", "batchnorm2d") and not name:
        raise Bad("%s layer without a name" % op)
    if op == "linear":
        bias = layer.get("bias", True)
        m = nn.Linear(layer["in_features"], layer["out_features"], bias=bias)
        slots = ["weight"] + (["bias"] if bias else [])
    elif op == "conv2d":
        bias = layer.get("bias", True)
        m = nn.Conv2d(layer["in_channels"], layer["out_channels"], pair(layer, "kernel_size"),
                      stride=pair(layer, "stride", 1), padding=pair(layer, "padding", 0), bias=bias)
        slots = ["weight"] + (["bias"] if bias else [])
    elif op in ("maxpool2d", "avgpool2d"):
        k = pair(layer, "kernel_size")
        s = pair(layer, "stride", list(k))  # stride defaults to the kernel
        p = pair(layer, "padding", 0)
        m = (nn.MaxPool2d if op == "maxpool2d" else nn.AvgPool2d)(k, stride=s, padding=p)
        slots = []
    elif op in ("batchnorm1d", "batchnorm2d"):
        cls = nn.BatchNorm1d if op == "batchnorm1d" else nn.BatchNorm2d
        m = cls(layer["num_features"], eps=layer.get("eps", 1e-5), momentum=layer.get("momentum", 0.1))
        slots = ["weight", "bias", "running_mean", "running_var"]
    elif op == "relu":
        m, slots = nn.ReLU(), []
    elif op == "tanh":
        m, slots = nn.Tanh(), []
    elif op == "sigmoid":
        m, slots = nn.Sigmoid(), []
    elif op == "flatten":
        m, slots = nn.Flatten(), []
    elif op == "softmax":
        m, slots = nn.Softmax(dim=layer.get("dim", 1)), []
    elif op == "dropout":
        m, slots = nn.Dropout(layer.get("p", 0.5)), []
    else:
        raise Bad("unknown op %r" % op)
    return m, {s: "%s.%s" % (name, s) for s in slots}


class Graph(nn.Module):
    """Layers that name their input ("inputs": ["conv1"]) rather than all
    reading the previous one; value 0 is the model input, value i+1 the
    output of layer i."""

    def __init__(self, layers, sources):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.sources = sources

    def forward(self, x):
        values = [x]
        for m, src in zip(self.layers, self.sources):
            values.append(m(values[src]))
        return values[-1]


def build_model(path):
    tensors, meta = read_safetensors(path)
    if "lathe.arch" not in meta:
        raise Bad("%s: no \"lathe.arch\" in __metadata__ (weights-only file)" % path)
    try:
        arch = json.loads(meta["lathe.arch"])
    except ValueError as e:
        raise Bad("%s: lathe.arch is not JSON: %s" % (path, e))
    modules, sources, names = [], [], {}
    for i, layer in enumerate(arch["layers"]):
        m, slots = make_layer(layer)
        for slot, tname in slots.items():
            if tname not in tensors:
                raise Bad("%s: missing tensor %s" % (path, tname))
            t = tensors[tname].to(torch.float32)
            cur = getattr(m, slot)
            if tuple(cur.shape) != tuple(t.shape):
                raise Bad("%s: %s has shape %s, the layer needs %s"
                          % (path, tname, list(t.shape), list(cur.shape)))
            with torch.no_grad():
                cur.copy_(t)
        src = i  # the previous layer's output
        if "inputs" in layer:
            want = layer["inputs"][0]
            src = 0 if want == "input" else names[want] + 1
        names[layer.get("name", "%s%d" % (layer["op"], i + 1))] = i
        modules.append(m)
        sources.append(src)
    if all(src == i for i, src in enumerate(sources)):
        model = nn.Sequential(*modules)
    else:
        model = Graph(modules, sources)
    model.eval()
    return model, arch


# ---- data ----------------------------------------------------------------

def read_idx(dir_, stem):
    for name in (stem, stem + ".gz"):  # plain preferred, as lathe does
        path = os.path.join(dir_, name)
        if os.path.exists(path):
            break
    else:
        raise Bad("%s: no %s[.gz]" % (dir_, stem))
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise Bad("%s: not an unsigned-byte IDX file" % path)
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    count = 1
    for d in dims:
        count *= d
    body = raw[4 + 4 * ndim:]
    if len(body) != count:
        raise Bad("%s: %d data bytes, dims %s need %d" % (path, len(body), list(dims), count))
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def preprocess(pix, arch):
    """float32 inputs [N, *input] from u8 images, with the same float32
    lookup table as lathe: (v/scale - mean[c]) / std[c]."""
    n = pix.shape[0]
    shape = [int(d) for d in arch["input"]]
    numel = 1
    for d in shape:
        numel *= d
    if n and pix[0].numel() != numel:
        raise Bad("model input %s has %d values, the images have %d" % (shape, numel, pix[0].numel()))
    u8 = pix.reshape([n] + shape)
    pre = arch.get("preprocess") or {}
    f32 = torch.float32
    scale = torch.tensor(float(pre.get("scale", 255.0)), dtype=f32)
    mean, std = pre.get("mean"), pre.get("std")
    if mean is None:
        mean, std = [0.0], [1.0]
    if not isinstance(mean, list):
        mean, std = [mean], [std]
    levels = torch.arange(256, dtype=f32)
    channels = shape[0] if len(shape) == 3 else 1
    if len(mean) > 1:
        if len(mean) != channels:
            raise Bad("%d normalisation values for %d channels" % (len(mean), channels))
        x = torch.empty(u8.shape, dtype=f32)
        for c in range(channels):
            lut = (levels / scale - torch.tensor(mean[c], dtype=f32)) / torch.tensor(std[c], dtype=f32)
            x[:, c] = lut[u8[:, c].long()]
    else:
        lut = (levels / scale - torch.tensor(mean[0], dtype=f32)) / torch.tensor(std[0], dtype=f32)
        x = lut[u8.long()]
    return x.contiguous()


def load_images(dir_, arch, images):
    pix = read_idx(dir_, "t10k-images-idx3-ubyte")
    try:
        labels = read_idx(dir_, "t10k-labels-idx1-ubyte")
    except Bad:
        labels = None
    n = min(images, pix.shape[0])
    return preprocess(pix[:n], arch), (labels[:n].long() if labels is not None else None)


# ---- threads and reporting -----------------------------------------------

def openblas():
    """The OpenBLAS this process loaded (through torch's libblas), or None."""
    for name in ("libopenblas.so.0", "libopenblas.so"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_num_threads.restype = ctypes.c_int
            return lib
        except (OSError, AttributeError):
            pass
    return None


def set_threads(threads):
    torch.set_num_threads(threads)
    lib = openblas()
    if lib is not None:
        lib.openblas_set_num_threads(threads)
    return lib


def env_info(lib):
    info = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if lib is not None:
        info["blas_core"] = lib.openblas_get_corename().decode("ascii", "replace")
        info["blas_threads"] = lib.openblas_get_num_threads()
    env = {k: v for k, v in os.environ.items()
           if k.startswith("OPENBLAS_") or k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if env:
        info["env"] = env
    return info


# Time allowed for one measurement (warm-up plus timed passes), so that a
# crowded machine cannot stretch `make bench` without bound.
try:
    BUDGET_S = float(os.environ.get("LATHE_PEER_BUDGET_S", "20"))
except ValueError:
    BUDGET_S = 20.0
MIN_REPS = 3


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]  # upper median for even counts, as bench_infer


def bench_model(argv):
    path, data_dir = argv[0], argv[1]
    batch, images, reps_asked, threads = ints(argv[2:6])
    lib = set_threads(threads)
    model, arch = build_model(path)
    x, labels = load_images(data_dir, arch, images)
    n_asked = x.shape[0]
    chunks = [x[i:i + batch] for i in range(0, n_asked, batch)]
    times, cpu = [], []
    with torch.inference_mode():
        # Warm-up pass.  It doubles as a probe: on a busy machine a pass can
        # take many times longer than usual, so the warm-up stops after a
        # fifth of the budget and the timed passes are fitted into the rest.
        t0 = time.perf_counter()
        done = 0
        for c in chunks:
            model(c)
            done += c.shape[0]
            if time.perf_counter() - t0 > BUDGET_S / 5:
                break
        per_image = (time.perf_counter() - t0) / done
        n, reps = n_asked, reps_asked
        rest = BUDGET_S - (time.perf_counter() - t0)
        if per_image * n * reps > rest:
            reps = min(reps, max(MIN_REPS, int(rest / (per_image * n))))
        if per_image * n * reps > rest:  # even MIN_REPS passes are too long
            n = min(n, max(batch, int(rest / reps / per_image) // batch * batch))
            chunks = [x[i:i + batch] for i in range(0, n, batch)]
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            out = [model(c) for c in chunks]
            t1, c1 = time.perf_counter(), time.process_time()
            times.append(t1 - t0)
            cpu.append((c1 - c0) / (t1 - t0))
    med = median(times)
    res = {"engine": "pytorch", "threads": threads, "batch": batch, "images": n,
           "repeats": reps, "median_s": round(med, 6), "images_per_s": round(n / med, 1),
           "latency_us": round(med / n * 1e6 * batch, 2),
           "min_s": round(min(times), 6), "max_s": round(max(times), 6),
           "cpu_util": round(median(cpu), 2)}
    if n != n_asked or reps != reps_asked:
        res["images_asked"], res["repeats_asked"] = n_asked, reps_asked
    if labels is not None:
        pred = torch.cat(out).argmax(dim=1)
        res["top1"] = round(float((pred == labels[:n]).float().mean()), 4)
    res.update(env_info(lib))
    print(json.dumps(res))


def bench_sgemm(argv):
    m, k, n, threads, reps = ints(argv)
    lib = set_threads(threads)
    # Same operands as bench_sgemm: a[i] = (i % 13) * 0.1, b[i] = (i % 7) * 0.1.
    a = ((torch.arange(m * k, dtype=torch.int64) % 13).to(torch.float32) * 0.1).reshape(m, k)
    b = ((torch.arange(k * n, dtype=torch.int64) % 7).to(torch.float32) * 0.1).reshape(k, n)
    c = torch.empty(m, n, dtype=torch.float32)
    with torch.inference_mode():
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        one = time.perf_counter() - t0
        # Each sample repeats the product enough times to last ~20 ms.
        inner = int(0.02 / one) + 1 if 0 < one < 0.02 else 1
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                torch.mm(a, b, out=c)
            times.append((time.perf_counter() - t0) / inner)
    med = median(times)
    res = {"engine": "pytorch", "m": m, "k": k, "n": n, "threads": threads,
           "median_s": float("%.3e" % med), "gflops": round(2.0 * m * k * n / med / 1e9, 1)}
    info = env_info(lib)
    res["core"] = info.pop("blas_core", "unknown")
    res.update(info)
    print(json.dumps(res))


def bench_conv(argv):
    c, h, w, oc, k, stride, pad, batch, threads, reps = ints(argv[:6]) + ints(argv[6:7], 0) + ints(argv[7:])
    lib = set_threads(threads)
    # Same operands as bench_conv: x[i] = (i % 17) * 0.05, w[i] = ((i % 11) - 5) * 0.01.
    x = ((torch.arange(batch * c * h * w) % 17).to(torch.float32) * 0.05).reshape(batch, c, h, w)
    wt = (((torch.arange(oc * c * k * k) % 11) - 5).to(torch.float32) * 0.01).reshape(oc, c, k, k)
    bias = torch.arange(oc).to(torch.float32) * 0.1
    f = torch.nn.functional.conv2d
    with torch.inference_mode():
        y = f(x, wt, bias, stride=stride, padding=pad)  # warm up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f(x, wt, bias, stride=stride, padding=pad)
            times.append(time.perf_counter() - t0)
    med = median(times)
    macs = y.numel() * c * k * k
    res = {"engine": "pytorch", "shape": "%dx%dx%d->%d k%d s%d p%d" % (c, h, w, oc, k, stride, pad),
           "batch": batch, "threads": threads, "median_s": float("%.3e" % med),
           "gmacs": round(macs / med / 1e9, 2)}
    res.update(env_info(lib))
    print(json.dumps(res))


USAGE = ("usage: peer.py MODEL.safetensors DATA_DIR BATCH IMAGES REPEATS THREADS\n"
         "       peer.py --sgemm M K N THREADS REPEATS\n"
         "       peer.py --conv C H W OC K STRIDE PAD BATCH THREADS REPEATS\n")


def main(argv):
    try:
        if len(argv) == 6 and argv[0] == "--sgemm":
            bench_sgemm(argv[1:])
        elif len(argv) == 11 and argv[0] == "--conv":
            bench_conv(argv[1:])
        elif len(argv) == 6 and not argv[0].startswith("-"):
            bench_model(argv)
        else:
            sys.stderr.write(USAGE)
            return 2
    except Usage:
        sys.stderr.write(USAGE)
        return 2
    except (Bad, KeyError, TypeError, ValueError, RuntimeError, OSError) as e:
        sys.stderr.write("peer.py: %s: %s\n" % (type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

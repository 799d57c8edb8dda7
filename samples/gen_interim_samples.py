#!/usr/bin/python3
"""Train the interim sample models for lathe with PyTorch.

Trains LeNet-300-100 and LeNet-5 on Fashion-MNIST (first 55,000 training
images; the last 5,000 are held out for validation) and writes them as
safetensors files carrying the "lathe.arch" architecture metadata, plus the
architecture JSON alone in samples/<name>.arch.json.

These files are interim: they stand in until lathe can train models itself.

Run with:  /usr/bin/python3 samples/gen_interim_samples.py [DATASET_DIR]
(DATASET_DIR defaults to /usr/share/datasets/fashion-mnist)
"""

import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
N_TRAIN = 55000
BATCH = 128
LR = 1e-3
SEED = 0
EPOCHS = {"lenet300": 12, "lenet5": 8}
TRAINED_BY = "PyTorch 1.13 (interim, until lathe train exists)"


# ---------------------------------------------------------------- IDX reading

def read_idx(path):
    """Read a (possibly gzipped) IDX file into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError("%s: not an IDX file" % path)
    code, ndim = raw[2], raw[3]
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4",
             0x0D: ">f4", 0x0E: ">f8"}
    if code not in types:
        raise ValueError("%s: unknown IDX type code 0x%02x" % (path, code))
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    dt = np.dtype(types[code])
    count = int(np.prod(dims)) if ndim else 1
    body = raw[4 + 4 * ndim:]
    if len(body) != count * dt.itemsize:
        raise ValueError("%s: size mismatch" % path)
    return np.frombuffer(body, dtype=dt).reshape(dims).astype(dt.newbyteorder("="))


# ---------------------------------------------------------- safetensors write

_ST_DTYPES = {
    torch.float64: ("F64", torch.float64), torch.float32: ("F32", torch.float32),
    torch.float16: ("F16", torch.float16), torch.bfloat16: ("BF16", torch.int16),
    torch.int64: ("I64", torch.int64), torch.int32: ("I32", torch.int32),
    torch.int16: ("I16", torch.int16), torch.int8: ("I8", torch.int8),
    torch.uint8: ("U8", torch.uint8), torch.bool: ("BOOL", torch.bool),
}


def tensor_bytes(t):
    name, view = _ST_DTYPES[t.dtype]
    t = t.detach().cpu().contiguous()
    if view != t.dtype:
        t = t.view(view)
    arr = t.numpy()
    return name, arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, torch.Tensor) in the order to store them."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    off = 0
    for name, t in tensors:
        dtype, data = tensor_bytes(t)
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - (8 + len(hj)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


# ------------------------------------------------------------------- models

class LeNet300(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    @staticmethod
    def arch_layers():
        return [
            {"op": "linear", "name": "fc1", "in_features": 784, "out_features": 300, "bias": True},
            {"op": "relu"},
            {"op": "linear", "name": "fc2", "in_features": 300, "out_features": 100, "bias": True},
            {"op": "relu"},
            {"op": "linear", "name": "fc3", "in_features": 100, "out_features": 10, "bias": True},
        ]


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = x.reshape(x.shape[0], 1, 28, 28)
        x = F.relu(F.max_pool2d(self.conv1(x), 2, 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2, 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)

    @staticmethod
    def arch_layers():
        return [
            {"op": "conv2d", "name": "conv1", "in_channels": 1, "out_channels": 20,
             "kernel_size": [5, 5], "stride": [1, 1], "padding": [0, 0], "bias": True},
            {"op": "maxpool2d", "kernel_size": [2, 2], "stride": [2, 2]},
            {"op": "relu"},
            {"op": "conv2d", "name": "conv2", "in_channels": 20, "out_channels": 50,
             "kernel_size": [5, 5], "stride": [1, 1], "padding": [0, 0], "bias": True},
            {"op": "maxpool2d", "kernel_size": [2, 2], "stride": [2, 2]},
            {"op": "relu"},
            {"op": "flatten"},
            {"op": "linear", "name": "fc1", "in_features": 800, "out_features": 500, "bias": True},
            {"op": "relu"},
            {"op": "linear", "name": "fc2", "in_features": 500, "out_features": 10, "bias": True},
        ]


def arch_pretty(arch_text):
    """The architecture JSON laid out for reading: one layer a line."""
    arch = json.loads(arch_text)
    c = lambda v: json.dumps(v, separators=(", ", ": "))
    lines = ["{"]
    for k, v in arch.items():
        if k == "layers":
            lines.append(' "layers": [')
            lines.append(",\n".join("  " + c(L) for L in v))
            lines.append(" ]")
        else:
            lines.append(" %s: %s," % (c(k), c(v)))
    if lines[-1].endswith(","):
        lines[-1] = lines[-1][:-1]
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == arch
    return text


def arch_json(layers, input_shape, mean, std):
    arch = {"format": "lathe-arch-1", "input": input_shape,
            "preprocess": {"scale": 255, "mean": [mean], "std": [std]},
            "layers": layers}
    return json.dumps(arch, separators=(",", ":"))


# ------------------------------------------------------------------ training

def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return correct / x.shape[0]


def train(model, x, y, epochs, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    n = x.shape[0]
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        print("  epoch %2d  train loss %.4f" % (ep + 1, total / n), flush=True)


def main():
    torch.set_num_threads(2)
    tr_img = read_idx(os.path.join(DATA_DIR, "train-images-idx3-ubyte.gz"))
    tr_lab = read_idx(os.path.join(DATA_DIR, "train-labels-idx1-ubyte.gz"))
    te_img = read_idx(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz"))
    te_lab = read_idx(os.path.join(DATA_DIR, "t10k-labels-idx1-ubyte.gz"))

    pix = tr_img[:N_TRAIN].astype(np.float64) / 255.0
    mean_exact, std_exact = float(pix.mean()), float(pix.std())
    mean, std = round(mean_exact, 4), round(std_exact, 4)
    print("preprocess over the %d training images: mean %.6f std %.6f -> %.4f %.4f"
          % (N_TRAIN, mean_exact, std_exact, mean, std))

    def prep(img):
        x = torch.from_numpy(img.astype(np.float32))
        x = (x / np.float32(255.0) - np.float32(mean)) / np.float32(std)
        return x.reshape(img.shape[0], -1).contiguous()

    x_tr = prep(tr_img[:N_TRAIN])
    y_tr = torch.from_numpy(tr_lab[:N_TRAIN].astype(np.int64))
    x_va = prep(tr_img[N_TRAIN:])
    y_va = torch.from_numpy(tr_lab[N_TRAIN:].astype(np.int64))
    x_te = prep(te_img)
    y_te = torch.from_numpy(te_lab.astype(np.int64))

    results = []
    for name, cls, input_shape in (("lenet300", LeNet300, [784]),
                                   ("lenet5", LeNet5, [1, 28, 28])):
        torch.manual_seed(SEED)
        model = cls()
        nparams = sum(p.numel() for p in model.parameters())
        print("%s: %d parameters, %d epochs" % (name, nparams, EPOCHS[name]), flush=True)
        t0 = time.time()
        train(model, x_tr, y_tr, EPOCHS[name], SEED)
        wall = time.time() - t0
        val_acc = evaluate(model, x_va, y_va)
        test_acc = evaluate(model, x_te, y_te)
        aj = arch_json(cls.arch_layers(), input_shape, mean, std)
        meta = {"lathe.arch": aj,
                "lathe.trained_by": TRAINED_BY,
                "lathe.test_accuracy": "%.4f" % test_acc,
                "lathe.val_accuracy": "%.4f" % val_acc}
        tensors = [(k, v.float()) for k, v in model.state_dict().items()]
        out = os.path.join(HERE, name + ".safetensors")
        write_safetensors(out, tensors, meta)
        with open(os.path.join(HERE, name + ".arch.json"), "w") as f:
            f.write(arch_pretty(aj))
        print("%s: val accuracy %.4f  test accuracy %.4f  training wall time %.1f s -> %s"
              % (name, val_acc, test_acc, wall, out), flush=True)
        results.append((name, val_acc, test_acc, wall))

    print("summary:")
    for name, va, te, wall in results:
        print("  %-9s val %.4f  test %.4f  wall %.1f s" % (name, va, te, wall))


if __name__ == "__main__":
    main()

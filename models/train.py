#!/usr/bin/python3
"""Trains lowbit's bundled models with fixed seeds and exports them to ONNX.

Run with Debian's Python (python3-torch, python3-onnx, python3-numpy,
dataset-fashion-mnist, python3-sklearn):

    /usr/bin/python3 models/train.py            # writes models/*.onnx and models/models.json

Models (every one takes a dynamic batch):
  fmnist_cnn.onnx   LeNet-style CNN with BatchNorm, input [N,1,28,28] in [0,1]
  fmnist_mlp.onnx   MLP 784-256-128-10 with Dropout, input [N,1,28,28] in [0,1]
  digits_mlp.onnx   MLP 64-64-10 on sklearn's 8x8 digits, input [N,64] in [0,1]
                    (pixel / 16); trained on digits[:1400], tested on digits[1400:]
models.json records each model's fp32 test accuracy as PyTorch computes it, and
ref/NAME_input.npy / ref/NAME_output.npy hold 8 test inputs and PyTorch's outputs
for them, so tests can check lowbit's runtime against PyTorch itself.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
FMNIST = "/usr/share/datasets/fashion-mnist"
DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    _, _, kind, rank = data[:4]
    assert kind == 8, path
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(dims)


def fashion(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(f"{FMNIST}/{prefix}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(f"{FMNIST}/{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


def digits():
    rows = np.loadtxt(gzip.open(DIGITS, "rt"), delimiter=",", dtype=np.float32)
    x = torch.from_numpy(rows[:, :64] / 16.0)
    y = torch.from_numpy(rows[:, 64].astype(np.int64))
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Linear(32 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


def mlp_fashion():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def mlp_digits():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def train(model, x, y, epochs, lr, batch=128):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * ((len(x) + batch - 1) // batch))
    gen = torch.Generator().manual_seed(1)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", flush=True)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum())
                      for i in range(0, len(x), 1000))
    return correct


def save_reference(model, x, name):
    model.eval()
    os.makedirs(os.path.join(HERE, "ref"), exist_ok=True)
    with torch.no_grad():
        y = model(x)
    np.save(os.path.join(HERE, "ref", name + "_input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(HERE, "ref", name + "_output.npy"), y.numpy().astype(np.float32))


def export(model, example, name):
    model.eval()
    path = os.path.join(HERE, name)
    torch.onnx.export(model, example, path + ".tmp", input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
    os.replace(path + ".tmp", path)
    return path


def main():
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    torch.use_deterministic_algorithms(True)
    record = {}
    (xtr, ytr), (xte, yte) = fashion("train"), fashion("test")
    for name, make, epochs, lr in [("fmnist_cnn", LeNet, 6, 2e-3), ("fmnist_mlp", mlp_fashion, 8, 1e-3)]:
        print(f"training {name}", flush=True)
        torch.manual_seed(0)
        model = make()
        train(model, xtr, ytr, epochs, lr)
        correct = accuracy(model, xte, yte)
        export(model, xte[:1], name + ".onnx")
        save_reference(model, xte[:8], name)
        record[name] = {"data": "fashion-mnist:test", "correct": correct, "samples": len(xte),
                        "top1": 100.0 * correct / len(xte)}
        print(f"  {name}: {correct}/{len(xte)} = {100.0 * correct / len(xte):.2f}%", flush=True)
    (dtr, dytr), (dte, dyte) = digits()
    torch.manual_seed(0)
    model = mlp_digits()
    print("training digits_mlp", flush=True)
    train(model, dtr, dytr, 60, 3e-3, batch=64)
    correct = accuracy(model, dte, dyte)
    export(model, dte[:1], "digits_mlp.onnx")
    save_reference(model, dte[:8], "digits_mlp")
    record["digits_mlp"] = {"data": "digits[1400:]", "correct": correct, "samples": len(dte),
                            "top1": 100.0 * correct / len(dte)}
    print(f"  digits_mlp: {correct}/{len(dte)} = {100.0 * correct / len(dte):.2f}%", flush=True)
    with open(os.path.join(HERE, "models.json.tmp"), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(os.path.join(HERE, "models.json.tmp"), os.path.join(HERE, "models.json"))


if __name__ == "__main__":
    sys.exit(main())

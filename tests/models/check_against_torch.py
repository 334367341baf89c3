#!/usr/bin/python3
"""lowbit's fp32 runtime against PyTorch on real exported models.

usage: check_against_torch.py LOWBIT MODELS_DIR WORK_DIR

- The shipped models (models/*.onnx) on the 8 test inputs saved at training
  time (models/ref/), against PyTorch's outputs saved then.
- ResNet-18 and MobileNet-v2 from torchvision with random weights (seed 0),
  exported here to ONNX (opset 13, dynamic batch), on a random batch of 2.
A model passes when max|lowbit - torch| <= 1e-4 * max|torch| (relative to the
output's scale). Prints one line per model and a closing summary.

Then the torchvision models quantized to W8A8 and exported with `lowbit export
--to onnx-qdq` run in ONNX Runtime (npm onnxruntime-node, installed by
scripts/setup): the export turns lowbit's fused residual adds and activations
back into standard Add/Relu/Clip nodes, and ONNX Runtime must agree with
lowbit running the same QDQ file.
"""
import os
import subprocess
import sys

import numpy as np

TOL = 1e-4


def main():
    lowbit, models, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    cases = []
    for name in ("fmnist_cnn", "fmnist_mlp", "digits_mlp"):
        cases.append((name, os.path.join(models, name + ".onnx"),
                      os.path.join(models, "ref", name + "_input.npy"),
                      os.path.join(models, "ref", name + "_output.npy")))
    sys.path.insert(0, models)
    import zoo
    cases += zoo.export(work)
    passed = failed = 0
    for name, onnx_path, x_path, y_path in cases:
        out = os.path.join(work, name + "_lowbit.npy")
        for threads in (1, 2):
            r = subprocess.run([lowbit, "run", onnx_path, "--input", x_path, "--output", out,
                                "--threads", str(threads)], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {name} ({threads} threads): lowbit run exited {r.returncode}: {r.stderr.strip()}")
                failed += 1
                continue
            got, want = np.load(out), np.load(y_path)
            if got.shape != want.shape:
                print(f"FAIL {name}: shape {got.shape} vs torch {want.shape}")
                failed += 1
                continue
            rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
            ok = rel <= TOL and np.array_equal(got.argmax(-1), want.argmax(-1))
            print(f"{'ok' if ok else 'FAIL'} {name} ({threads} threads): max relative error {rel:.2e}"
                  f" (bound {TOL:g})")
            passed += ok
            failed += not ok
    ort_dir = os.path.join(os.path.dirname(os.path.abspath(models)), "bench", "ort")
    for name, onnx_path, x_path, _ in cases[-2:]:
        q, qdq = (os.path.join(work, name + s) for s in ("_w8a8.onnx", "_w8a8_qdq.onnx"))
        y_lowbit, y_ort = (os.path.join(work, name + s) for s in ("_qdq_lowbit.npy", "_qdq_ort.npy"))
        steps = [[lowbit, "quantize", onnx_path, "-o", q, "--weights", "int8", "--quiet", "--threads", "2"],
                 [lowbit, "export", q, "--to", "onnx-qdq", "-o", qdq, "--quiet"],
                 [lowbit, "run", qdq, "--input", x_path, "--output", y_lowbit],
                 ["node", os.path.join(ort_dir, "ort_run.js"), qdq, x_path, y_ort]]
        env = dict(os.environ, NODE_PATH=os.path.join(ort_dir, "node_modules"))
        err = None
        for cmd in steps:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                err = f"{os.path.basename(cmd[0])} {cmd[1]} exited {r.returncode}: {r.stderr.strip()[-300:]}"
                break
        if err is None:
            got, want = np.load(y_ort), np.load(y_lowbit)
            # ONNX Runtime runs QDQ on integer kernels, lowbit on fp32 operators.
            rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
            if rel > 2e-2 or not np.array_equal(got.argmax(-1), want.argmax(-1)):
                err = f"ONNX Runtime vs lowbit on the QDQ export: max relative error {rel:.2e} (bound 2e-2)"
        print(f"{'FAIL' if err else 'ok'} {name} W8A8 QDQ export in ONNX Runtime" + (f": {err}" if err else ""))
        passed += err is None
        failed += err is not None
    print(f"models: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

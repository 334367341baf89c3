#!/usr/bin/python3
"""Every dataset spec reads the same samples: the digits test split written as
npy, npz and IDX (raw and gzipped) must give `lowbit eval` the same result as
the built-in `digits[1400:]`; slices must select the same samples.

usage: check_datasets.py LOWBIT MODELS_DIR WORK_DIR
"""
import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np

DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


def evaluate(lowbit, model, spec, extra=()):
    r = subprocess.run([lowbit, "eval", model, "--data", spec, "--json", "--batch", "50", *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return json.loads(r.stdout), ""


def main():
    lowbit, models, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    model = os.path.join(models, "digits_mlp.onnx")
    rows = np.loadtxt(gzip.open(DIGITS, "rt"), delimiter=",", dtype=np.float32)[1400:]
    x, y = rows[:, :64], rows[:, 64].astype(np.int64)
    np.save(os.path.join(work, "x.npy"), x)                       # float32, raw 0..16
    np.save(os.path.join(work, "x_u8.npy"), x.astype(np.uint8))   # uint8
    np.save(os.path.join(work, "y.npy"), y)
    np.savez(os.path.join(work, "d.npz"), x=x.astype(np.float64), y=y.astype(np.int32))
    np.savez_compressed(os.path.join(work, "dz.npz"), x=x, y=y)
    for name, opener in (("images.idx", open), ("images.idx.gz", gzip.open)):
        with opener(os.path.join(work, name), "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + struct.pack(">III", len(x), 8, 8) + x.astype(np.uint8).tobytes())
    with open(os.path.join(work, "labels.idx"), "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", len(y)) + y.astype(np.uint8).tobytes())

    want, err = evaluate(lowbit, model, "digits[1400:]")
    if want is None:
        print(f"FAIL: digits[1400:]: {err}")
        return 1
    w = lambda p: os.path.join(work, p)
    # npy/npz/idx hold raw 0..16 pixels: scale like the built-in digits (1/16).
    cases = [
        (f"npy:{w('x.npy')},{w('y.npy')}", ["--scale", "0.0625"]),
        (f"npy:{w('x_u8.npy')},{w('y.npy')}", ["--scale", "0.0625"]),
        (f"npz:{w('d.npz')}", ["--scale", "0.0625"]),
        (f"npz:{w('dz.npz')}[0:397]", ["--scale", "0.0625"]),
        (f"idx:{w('images.idx')},{w('labels.idx')}", ["--scale", "0.0625"]),
        (f"idx:{w('images.idx.gz')},{w('labels.idx')}", ["--scale", "0.0625"]),
    ]
    passed = failed = 0
    for spec, extra in cases:
        got, err = evaluate(lowbit, model, spec, extra)
        ok = got is not None and got["correct_top1"] == want["correct_top1"] and got["samples"] == want["samples"]
        print(f"{'ok' if ok else 'FAIL'} {spec}: {got['correct_top1'] if got else err}"
              f" vs digits[1400:] {want['correct_top1']}")
        passed += ok
        failed += not ok
    # Slices: [100:200] of the npy equals digits[1500:1600].
    a, _ = evaluate(lowbit, model, f"npy:{w('x.npy')},{w('y.npy')}[100:200]", ["--scale", "0.0625"])
    b, _ = evaluate(lowbit, model, "digits[1500:1600]")
    ok = a is not None and b is not None and a["correct_top1"] == b["correct_top1"] and a["samples"] == 100
    print(f"{'ok' if ok else 'FAIL'} slices: npy[100:200] {a and a['correct_top1']} vs digits[1500:1600] {b and b['correct_top1']}")
    passed += ok
    failed += not ok
    print(f"datasets: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

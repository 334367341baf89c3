#!/usr/bin/python3
"""`lowbit eval` reproduces the fp32 accuracy recorded when the shipped models
were trained (models/models.json), within 2 images.

usage: check_accuracy.py LOWBIT MODELS_DIR
"""
import json
import os
import subprocess
import sys


def main():
    lowbit, models = sys.argv[1:3]
    record = json.load(open(os.path.join(models, "models.json")))
    passed = failed = 0
    for name, rec in sorted(record.items()):
        r = subprocess.run([lowbit, "eval", os.path.join(models, name + ".onnx"), "--data",
                            rec["data"], "--batch", "100", "--threads", "2", "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL {name}: lowbit eval exited {r.returncode}: {r.stderr.strip()}")
            failed += 1
            continue
        got = json.loads(r.stdout)
        diff = abs(got["correct_top1"] - rec["correct"])
        ok = got["samples"] == rec["samples"] and diff <= 2
        print(f"{'ok' if ok else 'FAIL'} {name} on {rec['data']}: lowbit {got['correct_top1']}/"
              f"{got['samples']} ({got['top1']:.2f}%), PyTorch {rec['correct']}/{rec['samples']}"
              f" ({rec['top1']:.2f}%), {got['images_per_second']:.0f} images/s")
        passed += ok
        failed += not ok
    print(f"accuracy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

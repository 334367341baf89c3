"""The Python module (build/python): results equal the command's, bad input
raises lowbit.Error with lowbit's message, and two threads may run one model
at once. Run by ctest with Debian's /usr/bin/python3:
    test_lowbit.py LOWBIT_CLI MODELS_DIR
"""
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import numpy as np

import lowbit

try:
    import _lowbit_train  # noqa: F401  (built with LibTorch)
    HAVE_TRAINING = True
except ImportError:
    HAVE_TRAINING = False

CLI, MODELS = sys.argv[1], sys.argv[2]
CNN = os.path.join(MODELS, "fmnist_cnn.onnx")


def cli(*args):
    subprocess.run([CLI, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class LowbitModuleTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_run_equals_the_command(self):
        x = np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32)
        np.save(self.path("x.npy"), x)
        cli("run", CNN, "--input", self.path("x.npy"), "--output", self.path("y.npy"))
        m = lowbit.load(CNN)
        self.assertEqual(m.inputs, [("input", [-1, 1, 28, 28])])
        y = m.run(x)
        np.testing.assert_array_equal(y, np.load(self.path("y.npy")))
        # A non-contiguous float64 view is converted, with the same result.
        np.testing.assert_array_equal(m.run(x.astype(np.float64)), y)
        np.testing.assert_array_equal(m.run({"input": x}), y)

    def test_quantize_equals_the_command_and_runs(self):
        s = lowbit.quantize(CNN, self.path("a.onnx"), weights="int4", calib="fashion-mnist:train[0:200]")
        cli("quantize", CNN, "-o", self.path("b.onnx"), "--weights", "int4",
            "--calib", "fashion-mnist:train[0:200]", "--quiet")
        with open(self.path("a.onnx"), "rb") as a, open(self.path("b.onnx"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(s["output_bytes"], os.path.getsize(self.path("a.onnx")))
        self.assertEqual([l["format"] for l in s["layers"]], ["int4"] * 5)
        q = lowbit.load(self.path("a.onnx"))
        self.assertEqual(q.layers()[0]["op"], "PackedConv")
        x = np.random.default_rng(2).random((8, 1, 28, 28), dtype=np.float32)
        fp32 = lowbit.load(CNN).run(x)
        agree = (q.run(x).argmax(1) == fp32.argmax(1)).mean()
        self.assertGreater(agree, 0.7)

    def test_quantize_with_gptq_rounding_equals_the_command(self):
        lowbit.quantize(CNN, self.path("g.onnx"), weights="int2", calib="fashion-mnist:train[0:200]",
                        rounding="gptq")
        cli("quantize", CNN, "-o", self.path("h.onnx"), "--weights", "int2",
            "--calib", "fashion-mnist:train[0:200]", "--rounding", "gptq", "--quiet")
        with open(self.path("g.onnx"), "rb") as a, open(self.path("h.onnx"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        with self.assertRaisesRegex(lowbit.Error, "rounding gptq needs calibration"):
            lowbit.quantize(CNN, self.path("i.onnx"), weights="int2", rounding="gptq")

    def test_bad_input_raises_lowbit_error(self):
        with self.assertRaisesRegex(lowbit.Error, "nothere.onnx"):
            lowbit.load(self.path("nothere.onnx"))
        m = lowbit.load(CNN)
        with self.assertRaisesRegex(lowbit.Error, r"\[2, 1, 27, 28\]"):
            m.run(np.zeros((2, 1, 27, 28), np.float32))
        with self.assertRaisesRegex(lowbit.Error, "int9"):
            lowbit.quantize(CNN, self.path("c.onnx"), weights="int9")
        self.assertFalse(os.path.exists(self.path("c.onnx")))
        with self.assertRaisesRegex(lowbit.Error, "'sse9'"):
            lowbit.load(CNN, kernel="sse9")

    def test_two_threads_run_one_model(self):
        m = lowbit.load(CNN, threads=1)
        xs = [np.random.default_rng(10 + t).random((1 + t, 1, 28, 28), dtype=np.float32) for t in range(2)]
        want = [m.run(x) for x in xs]
        bad = []

        def work(t):
            for _ in range(30):
                if not np.array_equal(m.run(xs[t]), want[t]):
                    bad.append(t)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(bad, [])

    def test_tune_equals_the_command_and_reports_progress(self):
        digits = os.path.join(MODELS, "digits_mlp.onnx")
        seen = []
        s = lowbit.tune(digits, self.path("t.onnx"), calib="digits[0:500]", val="digits[1400:1600]",
                        max_evals=15, progress=lambda p: seen.append(p["evaluations"]))
        cli("tune", digits, "-o", self.path("c.onnx"), "--calib", "digits[0:500]", "--val", "digits[1400:1600]",
            "--max-evals", "15", "--quiet")
        with open(self.path("t.onnx"), "rb") as a, open(self.path("c.onnx"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual(s["evaluations"], 15)
        self.assertEqual(seen, list(range(1, 16)))
        objs = [p["objective"] for p in s["front"]]
        self.assertEqual(objs, sorted(objs))
        self.assertTrue(s["feasible"] and s["chosen"]["metric"] >= s["bound"])
        with self.assertRaisesRegex(lowbit.Error, "progress callback"):
            lowbit.tune(digits, self.path("u.onnx"), calib="digits[0:500]", val="digits[1400:1600]",
                        max_evals=3, progress=lambda p: 1 / 0)
        with self.assertRaisesRegex(lowbit.Error, "overlaps"):
            lowbit.tune(digits, self.path("v.onnx"), calib="digits[0:500]", val="digits[400:600]")

    @unittest.skipUnless(HAVE_TRAINING, "lowbit built without LibTorch")
    def test_finetune_equals_the_command_and_reports_epochs(self):
        digits = os.path.join(MODELS, "digits_mlp.onnx")
        epochs = []
        s = lowbit.finetune(digits, self.path("f.onnx"), train="digits[0:1000]", val="digits[1400:]",
                            weights="int2", epochs=2, progress=epochs.append)
        cli("finetune", digits, "-o", self.path("g.onnx"), "--train", "digits[0:1000]", "--val", "digits[1400:]",
            "--weights", "int2", "--epochs", "2", "--quiet")
        with open(self.path("f.onnx"), "rb") as a, open(self.path("g.onnx"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertEqual([e["epoch"] for e in epochs], [1, 2])
        self.assertEqual(s["stages"][0]["epochs"][-1]["val_top1"], epochs[-1]["val_top1"])
        self.assertEqual({l["weights"] for l in s["layers"]}, {"int2"})
        with self.assertRaisesRegex(lowbit.Error, "int9"):
            lowbit.finetune(digits, self.path("h.onnx"), train="digits[0:100]", val="digits[1400:]", weights="int9")

    def test_formats(self):
        self.assertIn("int2", lowbit.formats(2))
        self.assertIn("nhot2-4", lowbit.formats())
        self.assertTrue(any(ok for _, ok in lowbit.kernel_paths()))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)

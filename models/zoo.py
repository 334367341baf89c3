"""ResNet-18 and MobileNet-v2 from torchvision with random weights (seed 0),
exported to ONNX (opset 13, dynamic batch) at test or benchmark time, never
committed. Also saves a random input batch and PyTorch's output for it."""
import os

import numpy as np


def export(work, batch=2):
    import torch
    import torchvision
    os.makedirs(work, exist_ok=True)
    out = []
    for name, make in [("resnet18", torchvision.models.resnet18),
                       ("mobilenet_v2", torchvision.models.mobilenet_v2)]:
        onnx_path = os.path.join(work, name + ".onnx")
        x_path = os.path.join(work, name + "_input.npy")
        y_path = os.path.join(work, name + "_output.npy")
        if not all(os.path.exists(p) for p in (onnx_path, x_path, y_path)):
            torch.manual_seed(0)
            model = make(weights=None).eval()
            x = torch.randn(batch, 3, 224, 224)
            with torch.no_grad():
                y = model(x)
            torch.onnx.export(model, x, onnx_path + ".tmp", input_names=["input"],
                              output_names=["logits"], opset_version=13,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            os.replace(onnx_path + ".tmp", onnx_path)
            np.save(x_path, x.numpy())
            np.save(y_path, y.numpy())
        out.append((name, onnx_path, x_path, y_path))
    return out

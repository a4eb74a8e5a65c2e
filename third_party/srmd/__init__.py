"""SRMD: a pretrained non-blind super-resolution network driven by a degradation map.

Standalone (numpy/torch/scipy only): the network that loads the official state dicts strictly
(``srmd.network``), the PCA degradation-map encoder (``srmd.encoding``), conversion of the official
ncnn fp16 weights (``srmd.ncnn``) and tiled inference (``srmd.inference``). The blur kernel given
to ``kernel_code`` is the one SRMD was trained with: 15 x 15, centred, applied before a MATLAB
bicubic downscaling.
"""
from __future__ import annotations

from srmd.encoding import KERNEL_SIZE, degradation_vector, kernel_code, load_pca, network_input
from srmd.inference import tile_count, tile_grid, upscale
from srmd.ncnn import FP16_TAG, convert_ncnn, state_dict_from_ncnn
from srmd.network import (MODELS, PCA_COMPONENTS, RECEPTIVE_RADIUS, SRMD, build_srmd, input_channels,
                          load_state_dict, state_dict_shapes)

__all__ = [
    "FP16_TAG", "KERNEL_SIZE", "MODELS", "PCA_COMPONENTS", "RECEPTIVE_RADIUS", "SRMD", "build_srmd",
    "convert_ncnn", "degradation_vector", "input_channels", "kernel_code", "load_pca",
    "load_state_dict", "network_input", "state_dict_from_ncnn", "state_dict_shapes", "tile_count",
    "tile_grid", "upscale",
]

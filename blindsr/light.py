"""Where the blur acted: on the pixel values as stored, or on the light before the camera encoded it.

A lens blurs light: the optics' kernel acts on linear intensities, and only then does a camera
apply its tone curve (roughly the sRGB curve) and store the result. The DIV2KRK protocol, and so
every benchmark of the KernelGAN paper, blurs the stored (encoded) values instead. An image
blurred in linear light is not a blur of its encoded values: SR that assumes the one on an image
made by the other does worse (docs/BENCHMARKS.md, 'linear light').

``light``, an option of every verb that estimates, super-resolves or degrades:

* ``encoded`` (the default): the kernel acts on the pixel values as they are (the DIV2KRK
  protocol; data stored in linear units, such as most microscopy and remote sensing).
* ``linear``: the pixel values are sRGB-encoded and the kernel acted on the light they encode
  (photos from a camera). The image is decoded with the sRGB curve before estimation and SR, and
  the result encoded again; ``degrade`` blurs the decoded HR image and encodes the LR one.

The curves are the piecewise sRGB transfer functions of IEC 61966-2-1, in float64.
"""
from __future__ import annotations

import numpy as np

LIGHTS = ("encoded", "linear")
# IEC 61966-2-1: below these the curve is linear (slope 12.92); above, a 2.4 power with offset.
ENCODED_KNEE = 0.04045
LINEAR_KNEE = 0.0031308
GAMMA = 2.4
OFFSET = 0.055
SLOPE = 12.92


def check_light(value: str) -> str | None:
    """What is wrong with a ``light`` option, or None."""
    return None if value in LIGHTS else f"choose from {', '.join(LIGHTS)}"


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """Linear intensities of sRGB-encoded values in [0, 1] (values outside are clipped first).
    One float64 copy of the image and a mask: a photo's temporaries would take several copies."""
    v = np.array(values, dtype=np.float64)
    np.clip(v, 0.0, 1.0, out=v)
    low = v <= ENCODED_KNEE
    dark = v[low] / SLOPE
    v += OFFSET
    v /= 1.0 + OFFSET
    v **= GAMMA
    v[low] = dark
    return v


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values of linear intensities (clipped to [0, 1] first: SR's overshoot below
    black or above white has no encoding); in place on one float64 copy, as ``srgb_to_linear``."""
    v = np.array(values, dtype=np.float64)
    np.clip(v, 0.0, 1.0, out=v)
    low = v <= LINEAR_KNEE
    dark = v[low] * SLOPE
    v **= 1.0 / GAMMA
    v *= 1.0 + OFFSET
    v -= OFFSET
    v[low] = dark
    return v


def _curves(light: str):
    """(decoding, encoding) curve of a light other than ``encoded``; None for ``encoded``."""
    if light not in LIGHTS:
        raise ValueError(f"light={light!r}: {check_light(light)}")
    return None if light == "encoded" else (srgb_to_linear, linear_to_srgb)


def decode(values: np.ndarray, light: str) -> np.ndarray:
    """The values the kernel acted on: the image itself (``encoded``) or its linear light."""
    curves = _curves(light)
    return values if curves is None else curves[0](values)


def encode(values: np.ndarray, light: str) -> np.ndarray:
    """The inverse of ``decode``: stored values of what the kernel acted on."""
    curves = _curves(light)
    return values if curves is None else curves[1](values)

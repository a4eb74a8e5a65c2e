"""blindsr: blind super-resolution of real photos (KernelGAN kernel estimation + ZSSR / SRMD)."""
from __future__ import annotations

__version__ = "0.1.0"

"""``precision=auto``: bf16 only where the CPU computes it (oneDNN reports bf16 on every AVX-512 CPU,
where it is emulated and the fast preset trained 2.8x slower than in fp32)."""
from __future__ import annotations

import platform

import pytest
import torch

import zssr

CPU = torch.device("cpu")


@pytest.fixture
def cpu(monkeypatch):
    """Set what the CPU reports: oneDNN's bf16 support, the x86 bf16 flags, the architecture."""

    def report(onednn: bool, avx512_bf16: bool = False, amx: bool = False, machine: str = "x86_64") -> None:
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(platform, "machine", lambda: machine)

    return report


@pytest.mark.parametrize("onednn, avx512_bf16, amx, machine, expected", [
    (True, False, False, "x86_64", "fp32"),    # AVX-512 without bf16 instructions: emulated
    (True, True, False, "x86_64", "bf16"),     # AVX512-BF16
    (True, False, True, "x86_64", "bf16"),     # AMX
    (False, True, True, "x86_64", "fp32"),     # oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA) or without bf16
    (True, False, False, "aarch64", "bf16"),   # Arm: oneDNN reports bf16 only with the instructions
    (False, False, False, "aarch64", "fp32"),
])
def test_auto_is_bf16_only_where_the_cpu_computes_it(cpu, onednn, avx512_bf16, amx, machine, expected):
    cpu(onednn, avx512_bf16, amx, machine)
    assert zssr.native_bf16() is (expected == "bf16")
    assert zssr.resolve_precision("auto", CPU) == expected


def test_an_explicit_precision_is_kept(cpu):
    cpu(True, False, False)
    assert zssr.resolve_precision("bf16", CPU) == "bf16"
    cpu(True, True, True)
    assert zssr.resolve_precision("fp32", CPU) == "fp32"


def test_a_torch_without_the_x86_probes_trains_in_fp32(cpu, monkeypatch):
    cpu(True, True, True)
    for name in zssr.X86_BF16_PROBES:
        monkeypatch.delattr(torch.cpu, name)
    assert zssr.resolve_precision("auto", CPU) == "fp32"

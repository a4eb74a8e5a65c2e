"""One intra-op thread for zssr's tests: the tensors are small, and on a shared 2-core machine
OpenMP threads waiting for a busy core make each convolution many times slower."""
from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""Fixtures shared by the unit tests that train networks."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def single_thread_torch():
    """The trainer documents single-threaded CPU training; on a small box threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

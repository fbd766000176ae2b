"""models.checkpoint: state_dict + JSON metadata, refused when tampered or built for other features."""

from __future__ import annotations

import json
import pickle
from typing import get_args

import pytest
import torch

from models.checkpoint import META, WEIGHTS, CheckpointError, load_checkpoint, save_checkpoint
from models.networks import ArchitectureSpec, build_network
from pipelines.config import ModelFamily

FINGERPRINT = "0123456789abcdef"


@pytest.fixture(params=get_args(ModelFamily))
def spec(request) -> ArchitectureSpec:
    return ArchitectureSpec(
        family=request.param, n_features=7, hidden_size=8, num_layers=2, dropout=0.1, seq_len=6
    )


def _saved(tmp_path, spec):
    torch.manual_seed(0)
    network = build_network(spec)
    sha = save_checkpoint(tmp_path / "ckpt", network, spec, {"feature_fingerprint": FINGERPRINT, "note": "x"})
    return network, sha, tmp_path / "ckpt"


def test_round_trip_gives_identical_outputs(tmp_path, spec):
    network, sha, directory = _saved(tmp_path, spec)
    loaded = load_checkpoint(directory, expected_sha256=sha, expected_fingerprint=FINGERPRINT)
    assert loaded.spec == spec
    assert loaded.meta["note"] == "x" and loaded.meta["sha256"] == sha
    x = torch.randn(5, spec.seq_len, spec.n_features, generator=torch.Generator().manual_seed(1))
    network.eval()
    loaded.network.eval()
    with torch.no_grad():
        assert torch.equal(network(x), loaded.network(x))
    for key, value in network.state_dict().items():
        assert torch.equal(value, loaded.network.state_dict()[key])


def test_metadata_is_plain_json(tmp_path, spec):
    _, sha, directory = _saved(tmp_path, spec)
    meta = json.loads((directory / META).read_text())
    assert meta["architecture"] == spec.to_dict()
    assert meta["sha256"] == sha and len(sha) == 64


def test_tampered_weights_are_refused(tmp_path, spec):
    _, _, directory = _saved(tmp_path, spec)
    with (directory / WEIGHTS).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(directory)


def test_swapped_weights_are_refused_by_the_registry_hash(tmp_path, spec):
    _, sha, directory = _saved(tmp_path, spec)
    with pytest.raises(CheckpointError, match="sha256.*registry"):
        load_checkpoint(directory, expected_sha256="f" * 64)


def test_other_feature_fingerprint_is_refused(tmp_path, spec):
    _, sha, directory = _saved(tmp_path, spec)
    with pytest.raises(CheckpointError, match="features"):
        load_checkpoint(directory, expected_sha256=sha, expected_fingerprint="fedcba9876543210")


def test_incomplete_checkpoint_is_refused(tmp_path, spec):
    _, _, directory = _saved(tmp_path, spec)
    (directory / META).unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(directory)


class _Payload:
    """Unpickling this would create ``marker``: what a malicious checkpoint could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_load_never_unpickles_arbitrary_objects(tmp_path):
    spec = ArchitectureSpec(family="lstm", n_features=3, hidden_size=4, num_layers=1, dropout=0.0, seq_len=4)
    _, _, directory = _saved(tmp_path, spec)
    marker = tmp_path / "pwned"
    torch.save({"lstm.weight_ih_l0": _Payload(marker)}, directory / WEIGHTS)
    # Re-sign the metadata so only weights_only=True stands between the file and code execution.
    meta = json.loads((directory / META).read_text())
    from models.checkpoint import file_sha256

    meta["sha256"] = file_sha256(directory / WEIGHTS)
    (directory / META).write_text(json.dumps(meta))
    with pytest.raises((pickle.UnpicklingError, RuntimeError, CheckpointError)):
        load_checkpoint(directory)
    assert not marker.exists()

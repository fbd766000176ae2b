"""The users' spaces in examples/ run unmodified through ``retune run`` with a tiny budget, and
the family each names is what the search trained (not only the linear baseline)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from e2e_support import AS_OF, ROOT, random_walk_bars

from pipelines.cli import main
from pipelines.context import RunParams

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    base = tmp_path_factory.mktemp("examples")
    random_walk_bars().to_csv(base / "good.csv", index=False)
    return base


@pytest.mark.parametrize(
    ("example", "family"),
    [
        ("lstm_space.yaml", "lstm"),
        ("state_space.yaml", "mamba"),
        ("moe_transformer.json", "moe_transformer"),
        ("my_family.yaml", "my_family:GRUFamily"),
    ],
)
def test_example_runs_unmodified(example, family, home, monkeypatch, capsys):
    monkeypatch.setenv("RETUNE_HOME", str(home / "var"))
    monkeypatch.setenv("RETUNE_DATA_DIR", str(home))
    monkeypatch.syspath_prepend(str(EXAMPLES))  # where a user's own family module lives
    run_id = example.split(".")[0].replace("_", "-")
    argv = ["run", "--config", str(EXAMPLES / example), "--n-trials", "2", "--data", "csv:good.csv"]
    code = main([*argv, "--as-of", AS_OF, "--run-id", run_id])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    report_dir = (home / "var" / json.loads(out)["report"]).parent
    trials = pd.read_csv(report_dir / "trials.csv")
    assert family in set(trials["user_attrs_model_family"]), trials["user_attrs_model_family"]
    assert "parity max diff" in err


def test_trigger_params_take_builtin_family_names_only():
    assert RunParams(model_family="mamba").model_family == "mamba"
    with pytest.raises(ValueError, match="model_family"):
        RunParams(model_family="my_family:GRUFamily")

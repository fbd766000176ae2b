"""pipelines.config: the seed search-space format and the errors users see."""

from __future__ import annotations

import json

import pydantic
import pytest
import yaml

from pipelines.config import ConfigError
from pipelines.config_files import default_config, load_config, parse_config
from pipelines.param_specs import Categorical, FloatRange, IntRange

SEED = {
    "search_space": {
        "lr": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
        "hidden_size": {"type": "categorical", "choices": [32, 64, 128]},
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
        "num_layers": {"type": "int", "low": 1, "high": 4, "step": 1},
    },
    "epochs": 7,
    "batch_size": 32,
    "fees": 0.001,
    "n_folds": 2,
}


def test_parse_config_reads_the_seed_format():
    cfg = parse_config(SEED)
    space = cfg.search_space
    assert isinstance(space["lr"], FloatRange) and space["lr"].type == "loguniform"
    assert (space["lr"].low, space["lr"].high) == (1e-5, 1e-2)
    assert isinstance(space["hidden_size"], Categorical)
    assert space["hidden_size"].choices == (32, 64, 128)
    assert isinstance(space["dropout"], FloatRange) and space["dropout"].type == "uniform"
    assert isinstance(space["num_layers"], IntRange) and space["num_layers"].step == 1
    # flat keys split into fixed hyperparameters and pipeline settings
    assert cfg.hyperparams.epochs == 7 and cfg.hyperparams.batch_size == 32
    assert cfg.fees == 0.001 and cfg.n_folds == 2


def test_parse_config_does_not_mutate_its_input():
    raw = json.loads(json.dumps(SEED))
    parse_config(raw)
    assert raw == SEED


def test_config_is_frozen():
    cfg = parse_config(SEED)
    with pytest.raises(pydantic.ValidationError):
        cfg.fees = 0.5  # type: ignore[misc]


def test_unknown_search_type_is_rejected_naming_the_param():
    raw = {"search_space": {"lr": {"type": "normal", "low": 0.0, "high": 1.0}}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert "search_space.lr" in str(err.value)
    assert "normal" in str(err.value)


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "uniform", "low": 0.5, "high": 0.1},
        {"type": "uniform", "low": 0.3, "high": 0.3},
        {"type": "int", "low": 4, "high": 1},
        {"type": "int", "low": 2, "high": 2},
    ],
)
def test_low_not_below_high_is_rejected(spec):
    param = "dropout" if spec["type"] == "uniform" else "num_layers"
    with pytest.raises(ConfigError) as err:
        parse_config({"search_space": {param: spec}})
    msg = str(err.value)
    assert f"search_space.{param}" in msg
    assert "must be < high" in msg


def test_loguniform_needs_positive_low():
    with pytest.raises(ConfigError, match="loguniform needs low > 0"):
        parse_config({"search_space": {"lr": {"type": "loguniform", "low": 0.0, "high": 0.1}}})


def test_param_both_fixed_and_searched_is_rejected():
    raw = {"lr": 0.001, "search_space": {"lr": {"type": "uniform", "low": 1e-4, "high": 1e-2}}}
    with pytest.raises(ConfigError, match=r"lr: both fixed and searched"):
        parse_config(raw)


def test_unknown_top_level_key_is_rejected():
    with pytest.raises(ConfigError) as err:
        parse_config({"learning_rate": 0.01})
    assert "learning_rate" in str(err.value)
    assert "Extra inputs are not permitted" in str(err.value)


def test_unknown_key_inside_a_range_is_rejected():
    raw = {"search_space": {"lr": {"type": "uniform", "low": 1e-4, "high": 1e-2, "stepp": 1}}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert "stepp" in str(err.value)


def test_searching_an_unknown_hyperparameter_is_rejected():
    """The error names the family and lists what it accepts (an LSTM has no attention heads)."""
    raw = {"search_space": {"nhead": {"type": "int", "low": 1, "high": 4}}}
    with pytest.raises(ConfigError, match=r"search_space\.nhead: not a hyperparameter of model") as err:
        parse_config(raw)
    assert "hidden_size" in str(err.value) and "optimizer" in str(err.value)


def test_fixed_value_out_of_bounds_is_rejected():
    with pytest.raises(ConfigError, match="dropout"):
        parse_config({"dropout": 1.5})


def test_non_mapping_is_rejected():
    with pytest.raises(ConfigError, match="mapping"):
        parse_config([1, 2])  # type: ignore[arg-type]


def test_load_config_json_and_yaml_agree(tmp_path):
    as_json = tmp_path / "c.json"
    as_yaml = tmp_path / "c.yaml"
    as_yml = tmp_path / "c.yml"
    as_json.write_text(json.dumps(SEED))
    as_yaml.write_text(yaml.safe_dump(SEED))
    as_yml.write_text(yaml.safe_dump(SEED))
    expected = parse_config(SEED)
    assert load_config(as_json) == expected
    assert load_config(as_yaml) == expected
    assert load_config(str(as_yml)) == expected


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json: not valid json"):
        load_config(bad)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("search_space: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config(bad_yaml)


def test_empty_yaml_gives_defaults(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == parse_config({})


@pytest.mark.parametrize("dag", ["daily", "weekly"])
def test_bundled_defaults_parse(dag):
    cfg = default_config(dag)
    assert cfg.search_space, "bundled config should search something"


@pytest.mark.parametrize(
    ("param", "spec", "fragment"),
    [
        (
            "dropout",
            {"type": "uniform", "low": 0.0, "high": 1.5},
            "search_space.dropout: 1.5 is out of range",
        ),
        ("hidden_size", {"type": "categorical", "choices": [8, "wide"]}, "search_space.hidden_size: 'wide'"),
        ("num_layers", {"type": "int", "low": 0, "high": 3}, "search_space.num_layers: 0 is out of range"),
    ],
)
def test_searched_values_must_be_valid_hyperparameters(param, spec, fragment):
    with pytest.raises(ConfigError) as err:
        parse_config({"search_space": {param: spec}})
    assert fragment in str(err.value)
    assert not str(err.value).startswith("config:")  # the key is named, not a generic prefix


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"sampler": "annealing"}, "sampler"),
        ({"pruner": "always"}, "pruner"),
        ({"pbo_splits": 5}, "pbo_splits"),
        ({"dsr_threshold": 1.5}, "dsr_threshold"),
        ({"embargo_bars": -1}, "embargo_bars"),
        ({"objective": "sharpe"}, "objective"),  # the objective is a run parameter, not a config key
    ],
)
def test_search_settings_are_validated(raw, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_config(raw)


def test_embargo_counts_toward_the_history_a_run_needs():
    assert parse_config({"embargo_bars": 10}).min_history_bars == parse_config({}).min_history_bars + 10


def test_narrowing_rules_are_checked_by_name_when_the_config_is_read():
    config = parse_config({"narrowing_rules": ["short_history_caps_model_size", "best_on_edge_widens_range"]})
    assert config.narrowing_rules == ("short_history_caps_model_size", "best_on_edge_widens_range")
    with pytest.raises(ConfigError) as err:
        parse_config({"narrowing_rules": ["short_history_caps_model_size", "moon_phase"]})
    assert "narrowing_rules: unknown narrowing rule(s): moon_phase; known: " in str(err.value)
    assert "volatility_regime_shifts_sequence_length" in str(err.value)


@pytest.mark.parametrize("value", ["../secrets", "/etc/retune/prod.yaml", "spx; rm -rf /", "a" * 65])
def test_run_params_take_config_names_never_paths(value):
    from pipelines.run_params import parse_params

    with pytest.raises(ConfigError, match="config"):
        parse_params({"config": value})


def test_named_configs_resolve_under_retune_home(tmp_path):
    from pipelines.settings import Settings

    settings = Settings(tmp_path, "sqlite://", "sqlite://")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "spx_weekly.json").write_text("{}")
    assert settings.config_file("spx_weekly") == tmp_path / "configs" / "spx_weekly.json"
    assert settings.config_file("missing") == tmp_path / "configs" / "missing.yaml"
    with pytest.raises(ValueError, match="a name, not a path"):
        settings.config_file("../spx_weekly")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ("sample:sp500", "sp500"),
        ("sample:goog", "goog"),
        ("csv:fx/EURUSD.csv", "eurusd"),
        ("parquet:crypto/btc-usd.1h.parquet", "btc_usd_1h"),
        ("table:bars", "bars"),
        ("table:market.daily_bars", "market_daily_bars"),
        ("csv:" + "x" * 80 + ".csv", "x" * 64),
    ],
)
def test_a_run_without_a_model_key_takes_its_data_sources_instrument(tmp_path, monkeypatch, data, key):
    from pipelines.context import RunContext
    from pipelines.settings import Settings

    monkeypatch.setenv("RETUNE_DATA_DIR", str(tmp_path))
    settings = Settings(tmp_path, "sqlite://", "sqlite://")
    for dag in ("daily", "weekly"):  # the weekly retrain tunes the same model as the daily runs
        ctx = RunContext.create(dag, "r1", {"data": data}, settings=settings)
        assert ctx.model_key == ctx.config.model_key == key
    # a config without model_key (a user's file, a named config) gets the same key
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "fast.yaml").write_text("epochs: 2\n")
    named = RunContext.create("daily", "r2", {"data": data, "config": "fast"}, settings=settings)
    assert named.model_key == key and named.config.hyperparams.epochs == 2
    from_file = RunContext.create(
        "daily", "r3", {"data": data}, settings=settings, config_path=tmp_path / "configs" / "fast.yaml"
    )
    assert from_file.model_key == key


def test_two_instruments_never_share_a_model_key_but_a_configured_key_is_kept(tmp_path, monkeypatch):
    from pipelines.context import RunContext
    from pipelines.settings import Settings

    monkeypatch.setenv("RETUNE_DATA_DIR", str(tmp_path))
    settings = Settings(tmp_path, "sqlite://", "sqlite://")
    fx = RunContext.create("daily", "a", {"data": "csv:eurusd.csv"}, settings=settings)
    crypto = RunContext.create(
        "daily", "b", {"data": "csv:btcusd.csv", "model_family": "lstm"}, settings=settings
    )
    assert (fx.model_key, crypto.model_key) == ("eurusd", "btcusd")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "pinned.yaml").write_text("model_key: spx_daily\n")
    for data in ("csv:eurusd.csv", "sample:nasdaq"):
        pinned = RunContext.create("daily", "c", {"data": data, "config": "pinned"}, settings=settings)
        assert pinned.model_key == "spx_daily"  # the config names it: authoritative


@pytest.mark.parametrize("data", ["csv:---.csv", "csv:日本.csv"])
def test_a_source_name_without_a_usable_key_asks_for_one(tmp_path, monkeypatch, data):
    from pipelines.context import RunContext
    from pipelines.settings import Settings

    monkeypatch.setenv("RETUNE_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="set model_key in a config"):
        RunContext.create("daily", "r", {"data": data}, settings=Settings(tmp_path, "sqlite://", "sqlite://"))

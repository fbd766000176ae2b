"""Trigger-form Params, validated by JSON schema before any task runs.

The data pattern accepts a bundled sample, a table name, or a relative CSV/Parquet path
without ``..`` (resolved under RETUNE_DATA_DIR), so a trigger can never point a task at an
arbitrary file or smuggle SQL or shell syntax into it.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import Param

from pipelines.config import HyperParams
from pipelines.run_params import RunParams
from pipelines.terms import CONFIG_NAME_PATTERN

DATA_PATTERN = (
    r"^(sample:(sp500|nasdaq|goog)"
    r"|table:[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?"
    r"|(csv|parquet):(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9_./-]{0,200})$"
)


# a date (the whole day) or a time of day with an optional UTC offset (naive means UTC)
AS_OF_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$"
)


# What the form says about each Param; bounds, choices and defaults come from RunParams.
DESCRIPTIONS = {
    "n_trials": "Optuna trials to run (complete or pruned).",
    "timeout_minutes": "Stop the search after this many minutes.",
    "objective": "Walk-forward backtest metric to maximize.",
    "mode": "bayesian (config `sampler`: tpe, cmaes, gp); grid: int/categorical params only.",
    "model_family": "Network family of the model.",
    "data": "sample:sp500|nasdaq|goog, csv:REL/PATH.csv, parquet:REL/PATH, or table:[schema.]name",
    "config": "Name of a config in $RETUNE_HOME/configs (<name>.yaml); default: the bundled one.",
    "review_timeout_minutes": "How long a proposal waits for approval; on timeout nothing changes.",
    "workers": "Search worker processes sharing the study (mapped tasks). More than one needs "
    "a PostgreSQL Optuna store; on SQLite the search runs one worker and logs why.",
    "as_of": "Use bars up to this date (YYYY-MM-DD: the whole day) or time "
    "(YYYY-MM-DDTHH:MM[:SS][+HH:MM], naive = UTC); default: the run's logical time.",
}
# Stricter than RunParams for what a trigger form may send (RunParams checks the rest at run time).
PATTERNS = {"data": DATA_PATTERN, "as_of": AS_OF_PATTERN}
SCHEMA_KEYS = ("type", "minimum", "maximum", "exclusiveMinimum", "enum", "pattern")


def run_params(n_trials: int, timeout_minutes: int) -> dict[str, Param]:
    """The trigger form: one Param per RunParams field, with its JSON schema (bounds, choices);
    the DAG flavour's own trial budget and timeout as defaults."""
    properties = RunParams.model_json_schema()["properties"]
    defaults = {
        **{name: field.default for name, field in RunParams.model_fields.items()},
        "n_trials": n_trials,
        "timeout_minutes": timeout_minutes,
        # the form offers a family; left out of params, a run uses its config's
        "model_family": HyperParams.model_fields["model_family"].default,
        "as_of": None,
    }
    params = {}
    for name in DESCRIPTIONS:
        prop = properties[name]
        options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
        schema = {k: v for k, v in options[0].items() if k in SCHEMA_KEYS}
        if name in PATTERNS:
            schema = {"type": "string", "pattern": PATTERNS[name]}
        if defaults[name] is None:
            schema["type"] = ["null", schema["type"]]
        params[name] = Param(defaults[name], **schema, description=DESCRIPTIONS[name])
    return params


def fleet_params(configs: list[str]) -> dict[str, Param]:
    """The fleet DAG's list of config names: one mapped task group (model key) per name."""
    return {
        "configs": Param(
            configs,
            type="array",
            maxItems=50,
            uniqueItems=True,
            items={"type": "string", "pattern": CONFIG_NAME_PATTERN},
            description="Config names in $RETUNE_HOME/configs, one per model key (e.g. per instrument); "
            "default: $RETUNE_FLEET_CONFIGS.",
        )
    }


# Patterns in words, for people: a regex is how the schema checks, not how a message explains.
RULES_IN_WORDS = {
    "data": "sample:sp500, sample:nasdaq or sample:goog; csv:PATH or parquet:PATH with a path relative "
    "to the data directory (letters, digits, _ . / -, no '..'); or table:NAME / table:SCHEMA.NAME",
    "config": "the name of a config in $RETUNE_HOME/configs: 1 to 64 letters, digits, _ or -",
    "configs": "a list of config names (1 to 64 letters, digits, _ or - each), no repeats, at most 50",
    "as_of": "a date YYYY-MM-DD (the whole day) or a time YYYY-MM-DDTHH:MM[:SS][+HH:MM]",
}


def conf_errors(values: dict[str, Any], params: dict[str, Param]) -> list[str]:
    """Every bad field of a trigger's conf: ``name = value: the rule``, in words.

    The same words whether the run was triggered from the form, the REST API or the CLI: the
    api-server's answer to a refused trigger and the first task both use this.
    """
    import jsonschema

    errors = [
        f"{name} = {_shown(value)}: not a parameter of this DAG (known: {', '.join(sorted(params))})"
        for name, value in values.items()
        if name not in params
    ]
    for name, param in params.items():
        if name not in values:
            continue
        value, schema = values[name], dict(param.schema)
        checker = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
        if next(iter(checker.iter_errors(value)), None) is not None:
            errors.append(f"{name} = {_shown(value)}: must be {rule_in_words(name, schema)}")
    return errors


def rule_in_words(name: str, schema: dict[str, Any]) -> str:
    if name in RULES_IN_WORDS:
        rule = RULES_IN_WORDS[name]
    elif "enum" in schema:
        rule = "one of " + ", ".join(str(v) for v in schema["enum"])
    else:
        types = schema.get("type")
        kinds = [types] if isinstance(types, str) else list(types or [])
        rule = {"integer": "a whole number", "number": "a number", "string": "text"}.get(
            next((k for k in kinds if k != "null"), ""), "a value"
        )
        if schema.get("format") == "date":
            rule = "a date YYYY-MM-DD"
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum")
        if "exclusiveMinimum" in schema and high is not None:
            rule += f" greater than {low} and at most {high}"
        elif low is not None and high is not None:
            rule += f" from {low} to {high}"
        elif low is not None:
            rule += f" of at least {low}"
    if isinstance(schema.get("type"), list) and "null" in schema["type"]:
        rule += " (or empty)"
    return rule


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."

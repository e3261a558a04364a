"""Typed configs: the schema derived from a dataclass, and validation with errors that help."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pytest

from workbench.config import ConfigError, FieldSpec, param, schema_of, to_dict, validate


@dataclass
class Example:
    """Every supported field type."""

    epochs: int = param(20, "Passes over the data.", range=(1, 100))
    lr: float = param(1e-3, "Learning rate.", range=(0.0, 1.0))
    optimizer: str = param("adam", "Optimiser.", choices=("adam", "sgd"))
    width: int = param(64, "Layer width.", choices=(32, 64, 128))
    mode: Literal["fast", "slow"] = param("fast", "Mode.")
    verbose: bool = param(False, "Print more.")
    out: str = param("", "Output folder.", path=True, advanced=True)
    name: str = param("run", "Run name.")
    hidden: list[int] = param([128], "Hidden widths.", range=(1, 4096))
    weights: list[float] = param([0.5, 0.5], "Mixing weights.")
    tags: list[str] = param([], "Tags.")
    limit: int | None = param(None, "Optional cap (none: no cap).", range=(0, None))
    temperature: float = param(1.0, "Temperature.", range=(None, 10.0))


def _spec(name: str) -> FieldSpec:
    return {s.name: s for s in schema_of(Example)}[name]


def test_schema_types_defaults_and_order() -> None:
    specs = schema_of(Example)
    assert [s.name for s in specs] == [
        "epochs",
        "lr",
        "optimizer",
        "width",
        "mode",
        "verbose",
        "out",
        "name",
        "hidden",
        "weights",
        "tags",
        "limit",
        "temperature",
    ]
    types = {s.name: s.type for s in specs}
    assert types == {
        "epochs": "int",
        "lr": "float",
        "optimizer": "choice",
        "width": "choice",
        "mode": "choice",
        "verbose": "bool",
        "out": "path",
        "name": "str",
        "hidden": "list[int]",
        "weights": "list[float]",
        "tags": "list[str]",
        "limit": "int",
        "temperature": "float",
    }
    defaults = {s.name: s.default for s in specs}
    assert defaults["epochs"] == 20 and defaults["hidden"] == [128] and defaults["limit"] is None
    assert _spec("epochs").range == (1, 100)
    assert _spec("optimizer").choices == ("adam", "sgd")
    assert _spec("mode").choices == ("fast", "slow")
    assert _spec("limit").optional and not _spec("epochs").optional
    assert _spec("out").advanced and not _spec("name").advanced
    assert _spec("epochs").help == "Passes over the data."


def test_list_defaults_are_not_shared() -> None:
    a, b = Example(), Example()
    a.hidden.append(1)
    assert b.hidden == [128]
    assert _spec("hidden").default == [128]


def test_field_spec_json() -> None:
    assert _spec("epochs").to_json() == {
        "name": "epochs",
        "type": "int",
        "default": 20,
        "help": "Passes over the data.",
        "optional": False,
        "range": [1, 100],
    }
    as_json = _spec("out").to_json()
    assert as_json["advanced"] is True and "range" not in as_json and "choices" not in as_json
    assert _spec("width").to_json()["choices"] == [32, 64, 128]


def test_validate_defaults_and_values() -> None:
    cfg = validate(Example, None)
    assert cfg == Example()
    cfg = validate(Example, {"epochs": 5, "lr": 0.1, "optimizer": "sgd", "hidden": [8, 4]})
    assert (cfg.epochs, cfg.lr, cfg.optimizer, cfg.hidden) == (5, 0.1, "sgd", [8, 4])
    assert to_dict(cfg)["hidden"] == [8, 4]


def test_unknown_field_names_it_and_the_known_fields() -> None:
    with pytest.raises(ConfigError) as info:
        validate(Example, {"epochz": 3}, job="demo.job")
    message = str(info.value)
    assert info.value.field == "epochz"
    assert "'epochz'" in message and "demo.job" in message
    assert "known fields: epochs, lr, optimizer" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("epochs", 0, "[1, 100]"),
        ("epochs", 101, "[1, 100]"),
        ("lr", 1.5, "[0.0, 1.0]"),
        ("limit", -1, ">= 0"),
        ("temperature", 11.0, "<= 10.0"),
        ("hidden", [8, 0], "[1, 4096]"),
    ],
)
def test_out_of_range_names_field_and_range(field: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(Example, {field: value})
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)
    assert "out of range" in str(info.value)
    assert expected in str(info.value)


def test_range_ends_are_inclusive() -> None:
    cfg = validate(Example, {"epochs": 100, "lr": 0.0, "limit": 0, "temperature": 10.0})
    assert (cfg.epochs, cfg.lr, cfg.limit, cfg.temperature) == (100, 0.0, 0, 10.0)


def test_bad_choice_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        validate(Example, {"optimizer": "rmsprop"})
    assert info.value.field == "optimizer"
    assert "'rmsprop' is not allowed" in str(info.value)
    assert "one of 'adam', 'sgd'" in str(info.value)
    with pytest.raises(ConfigError, match="one of 'fast', 'slow'"):
        validate(Example, {"mode": "medium"})
    with pytest.raises(ConfigError, match="one of 32, 64, 128"):
        validate(Example, {"width": 48})


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("epochs", "many", "expected an integer"),
        ("epochs", 2.5, "expected an integer"),
        ("epochs", True, "expected an integer"),
        ("lr", "fast", "expected a number"),
        ("lr", False, "expected a number"),
        ("lr", [0.1], "expected a number"),
        ("verbose", "maybe", "expected true or false"),
        ("verbose", 2, "expected true or false"),
        ("name", 3, "expected text"),
        ("hidden", 5, "expected a list"),
        ("hidden", ["8", "x"], "expected an integer"),
        ("epochs", None, "a value is required"),
    ],
)
def test_wrong_type(field: str, value: object, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(Example, {field: value})
    assert info.value.field == field
    assert reason in str(info.value)


def test_wrong_type_in_a_list_names_the_element() -> None:
    with pytest.raises(ConfigError, match=r"'hidden'\[1\]"):
        validate(Example, {"hidden": [8, "x"]})


def test_string_coercion_as_forms_and_the_cli_hand_values() -> None:
    cfg = validate(
        Example,
        {
            "epochs": "3",
            "lr": "0.5",
            "verbose": "true",
            "width": "128",
            "hidden": "1,2",
            "weights": "0.25, 0.75",
            "tags": "a,b",
            "limit": "7",
        },
    )
    assert cfg.epochs == 3 and isinstance(cfg.epochs, int)
    assert cfg.lr == 0.5
    assert cfg.verbose is True
    assert cfg.width == 128 and isinstance(cfg.width, int)
    assert cfg.hidden == [1, 2]
    assert cfg.weights == [0.25, 0.75]
    assert cfg.tags == ["a", "b"]
    assert cfg.limit == 7
    assert validate(Example, {"verbose": "no"}).verbose is False
    assert validate(Example, {"epochs": 4.0}).epochs == 4
    assert validate(Example, {"hidden": ""}).hidden == []
    assert validate(Example, {"limit": None}).limit is None


@pytest.mark.parametrize("value", [math.nan, "nan", float("nan")])
def test_nan_is_rejected(value: object) -> None:
    with pytest.raises(ConfigError, match="NaN") as info:
        validate(Example, {"lr": value})
    assert info.value.field == "lr"
    with pytest.raises(ConfigError):
        validate(Example, {"weights": [0.5, value]})


def test_nan_is_rejected_for_int_fields() -> None:
    with pytest.raises(ConfigError, match="expected an integer"):
        validate(Example, {"epochs": math.nan})


def test_field_without_help_is_a_type_error() -> None:
    @dataclass
    class NoHelp:
        epochs: int = 3

    with pytest.raises(TypeError, match=r"NoHelp\.epochs has no help"):
        schema_of(NoHelp)
    with pytest.raises(TypeError):
        validate(NoHelp, {})


def test_unsupported_types_and_non_dataclasses() -> None:
    @dataclass
    class Weird:
        raw: bytes = param(b"", "Raw bytes.")

    with pytest.raises(TypeError, match="unsupported config field type"):
        schema_of(Weird)

    class Plain:
        pass

    with pytest.raises(TypeError, match="not a dataclass"):
        schema_of(Plain)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate(Example, {"epochs": -5})


def test_an_empty_form_value_clears_an_optional_field_but_not_a_required_one() -> None:
    """Forms hand "" for an emptied box: optional fields read it as None, others reject it."""
    assert validate(Example, {"limit": ""}).limit is None
    assert validate(Example, {"limit": "  "}).limit is None
    assert validate(Example, {"limit": "7"}).limit == 7
    with pytest.raises(ConfigError) as err:
        validate(Example, {"epochs": ""})
    assert err.value.field == "epochs"


def test_list_field_choices_are_checked_per_item():
    """A list field with choices (a checklist in the GUI) refuses an item outside them; before,
    the item's choices were dropped and ``methods=[ga, nope]`` was accepted."""
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        methods: list[str] = param(["a"], "Methods.", choices=("a", "b"))

    assert validate(Cfg, {"methods": "b, a"}).methods == ["b", "a"]
    with pytest.raises(ConfigError, match=r"methods'?\[1\]: 'nope' is not allowed.*'a', 'b'"):
        validate(Cfg, {"methods": ["a", "nope"]})
    (spec,) = schema_of(Cfg)
    assert spec.choices == ("a", "b") and spec.describe_allowed() == "a list of items from 'a', 'b'"

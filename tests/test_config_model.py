"""The settings models' own validation (``powrops.config.model``): conversions as TOML and the
environment need them, every problem collected with its location, immutable sections, and a
command's start that loads no validation library."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Annotated, Any, Literal

import pytest

from powrops.config import Settings, validate
from powrops.config.model import (
    BeforeValidator,
    Field,
    Model,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from powrops.durations import Duration
from powrops.errors import ConfigError


def _split(value: Any) -> Any:
    return value.split(",") if isinstance(value, str) else value


class Inner(Model):
    low: int = Field(default=1, ge=0)
    high: int = 10

    @model_validator(mode="after")
    def _ordered(self) -> Inner:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        return self


class Outer(Model):
    name: str
    ratio: float = Field(default=0.5, gt=0, le=1)
    enabled: bool = True
    kind: Literal["a", "b"] = "a"
    every: Duration = Duration.parse("1h")
    password: SecretStr | None = None
    inner: Inner = Inner()
    inners: tuple[Inner, ...] = ()
    tags: Annotated[tuple[str, ...], BeforeValidator(_split)] = ()
    labels: dict[str, int] = Field(default_factory=dict)
    day: dt.date | None = None
    validate_: bool = Field(default=True, alias="validate")
    hidden: str | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _folder(cls, value: str, info: ValidationInfo) -> str:
        if value == "bad":
            raise ValueError("not that name")
        folder = info.context.get("folder") if isinstance(info.context, dict) else None
        return f"{folder}/{value}" if folder else value


def _errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate(data)
    return [(error["loc"], error["type"]) for error in raised.value.errors()]


def test_strings_of_the_environment_convert_to_their_field_types() -> None:
    built = Outer.model_validate(
        {
            "name": "x",
            "ratio": "0.25",
            "enabled": "off",
            "every": "15min",
            "password": "s3cret",
            "inner": {"low": "2", "high": 3.0},
            "inners": [{"low": 0}],
            "tags": "a,b",
            "labels": {"k": "7"},
            "day": "2024-02-29",
            "validate": "yes",
        }
    )
    assert (built.ratio, built.enabled, built.every.seconds) == (0.25, False, 900.0)
    assert built.inner == Inner(low=2, high=3) and built.inners == (Inner(low=0),)
    assert built.tags == ("a", "b") and built.labels == {"k": 7}
    assert built.day == dt.date(2024, 2, 29) and built.validate_ is True
    assert built.password is not None and built.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(built) and str(built.password) == "**********"


def test_every_problem_is_collected_with_its_location() -> None:
    found = _errors(
        {
            "ratio": "much",
            "enabled": "perhaps",
            "kind": "c",
            "every": "2 fortnights",
            "inner": {"low": -1, "extra": 1},
            "inners": [{}, {"high": "x"}],
            "labels": {"k": 1.5},
            "typo": True,
        }
    )
    assert found == [
        (("typo",), "extra_forbidden"),
        (("name",), "missing"),
        (("ratio",), "float_parsing"),
        (("enabled",), "bool_parsing"),
        (("kind",), "literal_error"),
        (("every",), "value_error"),
        (("inner", "extra"), "extra_forbidden"),
        (("inner", "low"), "greater_than_equal"),
        (("inners", 1, "high"), "int_parsing"),
        (("labels", "k"), "int_from_float"),
    ]


@pytest.mark.parametrize(
    "given, expected",
    [("yes", True), (" OFF ", False), ("1", True), (0, False), (1, True), (2, None),
     ("maybe", None), (1.0, None), (None, None)],
)  # fmt: skip
def test_booleans_as_toml_and_the_environment_write_them(given: Any, expected: bool | None) -> None:
    if expected is None:
        assert _errors({"name": "x", "enabled": given}) == [(("enabled",), "bool_parsing")]
    else:
        assert Outer.model_validate({"name": "x", "enabled": given}).enabled is expected


def test_bounds_and_validators_name_the_value_as_given() -> None:
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate({"name": "bad", "ratio": "2", "inner": {"low": 5, "high": 4}})
    errors = {error["loc"]: error for error in raised.value.errors()}
    assert errors[("ratio",)]["input"] == "2"
    assert errors[("ratio",)]["msg"] == "Input should be less than or equal to 1"
    assert errors[("name",)]["msg"] == "Value error, not that name"
    assert errors[("inner",)]["msg"] == "Value error, low (5) is above high (4)"


def test_field_validators_see_the_callers_context() -> None:
    assert Outer.model_validate({"name": "n"}, context={"folder": "/srv"}).name == "/srv/n"
    assert Outer(name="n").name == "n"


def test_defaults_are_validated_and_never_shared_as_class_attributes() -> None:
    class Late(Model):
        every: Duration = "1h"  # type: ignore[assignment]
        limit: int = Field(default=0, ge=1)

    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Late()
    assert Late(limit=2).every == Duration.parse("1h")
    assert "limit" not in vars(Late)


def test_sections_are_immutable_values() -> None:
    first = Outer(name="x", labels={"a": 1})
    with pytest.raises(AttributeError, match="immutable"):
        first.name = "y"  # type: ignore[misc]
    copy = first.model_copy(update={"name": "y"})
    assert (copy.name, first.name) == ("y", "x")
    assert Outer(name="x", labels={"a": 1}) == first != copy
    assert hash(Inner(low=1)) == hash(Inner(low=1))


def test_dumps_use_aliases_and_json_types_and_leave_excluded_fields_out() -> None:
    built = Outer(name="x", password=SecretStr("pw"), day=dt.date(2024, 1, 2), hidden="h")
    python = built.model_dump(by_alias=True)
    assert python["validate"] is True and "hidden" not in python
    assert python["every"] == Duration.parse("1h") and python["inners"] == ()
    as_json = built.model_dump(mode="json", exclude={"inner"})
    assert as_json["every"] == "1h" and as_json["password"] == "**********"
    assert as_json["day"] == "2024-01-02" and as_json["inners"] == [] and "inner" not in as_json
    assert Outer.model_validate(built.model_dump(by_alias=True)) == built.model_copy(
        update={"hidden": None}
    )


def test_the_settings_round_trip_through_their_dump() -> None:
    settings = validate(
        {"alerts": {"skip": "notify"}, "archival": {"process": {"validate": False}}}
    )
    assert settings.alerts.skip == ("notify",) and settings.archival.process.validate_ is False
    again = Settings.model_validate(settings.model_dump(by_alias=True))
    assert again.model_dump() == settings.model_dump()


def test_a_bad_value_is_a_config_error_naming_its_key() -> None:
    with pytest.raises(ConfigError) as raised:
        validate({"postgres": {"port": "70000"}, "database": {"url": "mysql://u:pw@h/d"}})
    assert raised.value.problems == [
        "database.url = ********: expected a PostgreSQL URL starting with postgresql:// or "
        "postgres://",
        "postgres.port = '70000': Input should be less than or equal to 65535",
    ]


def test_loading_the_settings_loads_no_validation_library() -> None:
    """A command's start: the settings are read without pydantic (about 110 ms of each start
    before)."""
    probe = (
        "import sys; import powrops.config as c; c.load_settings(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'pydantic_core'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_value_of_the_wrong_shape_is_named_in_toml_words() -> None:
    with pytest.raises(ValidationError) as raised:
        Outer.model_validate({"name": "x", "inner": 3, "inners": "a", "labels": ["k"]})
    assert [(e["loc"], e["msg"]) for e in raised.value.errors()] == [
        (("inner",), "Input should be a table of settings (a TOML table)"),
        (("inners",), "Input should be a list (a TOML array)"),
        (("labels",), "Input should be a table (a TOML table of keys)"),
    ]

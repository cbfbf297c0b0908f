"""The settings models' own validation: typed, frozen sections built from TOML and environment
values, in the few milliseconds a command's start can spare.

Every command validates the whole configuration before it acts. Done by pydantic, that was
about 110 ms of each start (its import, and building the validators of some sixty models):
more than half of ``powrops verify LABEL``. The settings use a small part of such a library,
which this module gives under the same names and with the same meaning:

- a :class:`Model` subclass declares its fields by annotation, a default or :func:`Field`
  (``ge``/``gt``/``le``, ``default_factory``, ``alias``, ``exclude``);
- values are converted as TOML and environment strings need: ``"10"`` to 10, ``"off"`` to
  False, a table to a section, a list to a tuple; a class with a ``parse`` classmethod
  (:class:`~powrops.durations.Duration`, :class:`~powrops.durations.Size`) parses its own;
- ``Annotated[T, BeforeValidator(f)]`` runs ``f`` on the raw value first;
  :func:`field_validator` runs after a field's conversion (given :class:`ValidationInfo` when
  it takes a third argument), :func:`model_validator` on the built section;
- unknown keys, missing ones and bad values are collected, all of them, into one
  :class:`ValidationError` whose ``errors()`` name each by its location;
- sections are immutable and compare by value; ``model_dump``, ``model_copy``,
  ``model_validate`` and ``model_fields`` behave as their pydantic namesakes.
"""

from __future__ import annotations

import datetime as dt
import inspect
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    TypeVar,
    Union,
    dataclass_transform,
    get_args,
    get_origin,
)

T = TypeVar("T")
M = TypeVar("M", bound="Model")
Loc = tuple[str | int, ...]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
_INVALID: Any = _Missing()  # a value that failed; its errors are recorded
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


class SecretStr:
    """A secret setting: shown as ``**********``, its value only through
    :meth:`get_secret_value`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __repr__(self) -> str:
        return f"SecretStr({str(self)!r})"


@dataclass(frozen=True)
class BeforeValidator:
    """``Annotated[T, BeforeValidator(func)]``: ``func`` sees the raw value before ``T``'s
    conversion; a ValueError it raises is the field's error."""

    func: Callable[[Any], Any]


@dataclass(frozen=True)
class ValidationInfo:
    """What a field validator taking three arguments is given: the caller's context."""

    context: Any = None


@dataclass
class FieldInfo:
    """One field of a model: its type and default, its bounds, its name in input and output."""

    annotation: Any = None
    default: Any = MISSING
    default_factory: Callable[[], Any] | None = None
    alias: str | None = None
    exclude: bool = False
    description: str | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is None

    def get_default(self) -> Any:
        return self.default_factory() if self.default_factory else self.default


def Field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    alias: str | None = None,
    exclude: bool = False,
    description: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Any:
    """A field's default and bounds, e.g. ``port: int | None = Field(default=None, ge=1024)``."""
    return FieldInfo(None, default, default_factory, alias, exclude, description, ge, gt, le)


def field_validator(*fields: str) -> Callable[[T], T]:
    """Mark a classmethod as the validator of ``fields``, run after their conversion."""

    def mark(method: T) -> T:
        getattr(method, "__func__", method).__validates__ = fields  # type: ignore[union-attr]
        return method

    return mark


def model_validator(*, mode: Literal["after"]) -> Callable[[T], T]:
    """Mark a method as a check of the whole section, run once its fields are valid."""

    def mark(method: T) -> T:
        method.__validates__ = mode  # type: ignore[attr-defined]
        return method

    return mark


class ValidationError(ValueError):
    """Every problem found in one input, each a dict with ``type``, ``loc``, ``msg`` and
    ``input``."""

    def __init__(self, title: str, errors: list[dict[str, Any]]) -> None:
        self.title = title
        self._errors = errors
        lines = [f"{'.'.join(map(str, e['loc'])) or title}: {e['msg']}" for e in errors]
        super().__init__(f"{len(errors)} validation error(s) for {title}\n" + "\n".join(lines))

    def errors(self) -> list[dict[str, Any]]:
        return list(self._errors)


def _fail(errors: list[dict[str, Any]], loc: Loc, kind: str, msg: str, value: Any) -> Any:
    errors.append({"type": kind, "loc": loc, "msg": msg, "input": value})
    return _INVALID


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(Field,))
class Model:
    """A frozen section of settings: unknown keys are errors, defaults are validated too."""

    model_fields: ClassVar[dict[str, FieldInfo]] = {}
    _by_input: ClassVar[dict[str, str]] = {}
    _field_checks: ClassVar[dict[str, list[str]]] = {}
    _model_checks: ClassVar[list[str]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, FieldInfo] = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(base.model_fields if issubclass(base, Model) else {})
        for name, annotation in _annotations(cls).items():
            if get_origin(annotation) is not ClassVar and not name.startswith("_"):
                fields[name] = _field_of(cls, name, annotation)
        cls.model_fields = fields
        cls._by_input = {
            **{f.alias: n for n, f in fields.items() if f.alias},
            **{n: n for n in fields},
        }
        cls._field_checks, cls._model_checks = _checks_of(cls)

    def __init__(self, **data: Any) -> None:
        errors: list[dict[str, Any]] = []
        type(self)._fill(self, data, (), ValidationInfo(), errors)
        if errors:
            raise ValidationError(type(self).__name__, errors)

    @classmethod
    def model_validate(cls: type[M], data: Any, *, context: Any = None) -> M:
        """``data`` (a mapping, or an instance as is) as this model, or ValidationError."""
        errors: list[dict[str, Any]] = []
        built = _convert(cls, data, (), ValidationInfo(context), errors)
        if errors:
            raise ValidationError(cls.__name__, errors)
        assert isinstance(built, cls)
        return built

    @classmethod
    def _fill(
        cls, obj: Model, data: Mapping[str, Any], loc: Loc, info: ValidationInfo, errors: list[Any]
    ) -> Model:
        before = len(errors)
        given: dict[str, Any] = {}
        for key, value in data.items():
            if key in cls._by_input:
                given[cls._by_input[key]] = value
            else:
                _fail(
                    errors, (*loc, key), "extra_forbidden", "Extra inputs are not permitted", value
                )
        for name, field in cls.model_fields.items():
            where = (*loc, field.alias or name)
            if name not in given and field.required:
                _fail(errors, where, "missing", "Field required", dict(data))
                continue
            value = given[name] if name in given else field.get_default()
            obj.__dict__[name] = cls._field_value(name, field, value, where, info, errors)
        if len(errors) > before:
            return obj
        return cls._checked(obj, loc, errors)

    @classmethod
    def _field_value(
        cls,
        name: str,
        field: FieldInfo,
        raw: Any,
        loc: Loc,
        info: ValidationInfo,
        errors: list[Any],
    ) -> Any:
        """``raw`` converted, bounded and checked by the field's validators; an error names
        the value as given."""
        before = len(errors)
        value = _convert(field.annotation, raw, loc, info, errors)
        if len(errors) > before:
            return value
        if value is not None and not _bounded(field, value):
            return _fail(errors, loc, *_bound_error(field, value), raw)
        for method in cls._field_checks.get(name, ()):
            check = getattr(cls, method)
            try:
                value = check(value, info) if _takes_info(check) else check(value)
            except ValueError as exc:
                return _fail(errors, loc, "value_error", f"Value error, {exc}", raw)
        return value

    @classmethod
    def _checked(cls, obj: Model, loc: Loc, errors: list[Any]) -> Model:
        for method in cls._model_checks:
            try:
                obj = getattr(obj, method)()
            except ValueError as exc:
                _fail(errors, loc, "value_error", f"Value error, {exc}", obj.__dict__)
        return obj

    def model_copy(self: M, *, update: Mapping[str, Any] | None = None) -> M:
        """A shallow copy with ``update``'s fields replaced (not validated, as pydantic's)."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(update or {})
        return copy

    def model_dump(
        self,
        *,
        mode: Literal["python", "json"] = "python",
        by_alias: bool = False,
        exclude: set[str] | None = None,
    ) -> dict[str, Any]:
        """The fields as plain data (``exclude=True`` fields and ``exclude`` left out); in
        ``json`` mode, only JSON's types, secrets masked."""
        return {
            (field.alias if by_alias and field.alias else name): _dump(
                self.__dict__[name], mode, by_alias
            )
            for name, field in self.model_fields.items()
            if not field.exclude and name not in (exclude or ())
        }

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__name__}({shown})"


def _annotations(cls: type[Model]) -> dict[str, Any]:
    """The fields ``cls`` itself annotates, their annotations evaluated in its module: one
    compiled code object per distinct annotation text (82 for the settings' 248 fields, where
    ``typing.get_type_hints`` compiles every occurrence again)."""
    namespace = vars(sys.modules[cls.__module__])
    own = inspect.get_annotations(cls)
    return {name: _evaluated(text, namespace) for name, text in own.items()}


def _evaluated(annotation: Any, namespace: dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    code = _COMPILED.get(annotation)
    if code is None:
        code = _COMPILED[annotation] = compile(annotation, "<annotation>", "eval")
    return eval(code, namespace)  # the annotation text of a class powrops defines


_COMPILED: dict[str, types.CodeType] = {}


def _field_of(cls: type[Model], name: str, annotation: Any) -> FieldInfo:
    """The field ``name`` that ``cls`` declares: its annotation and default."""
    declared = cls.__dict__.get(name, MISSING)
    if isinstance(declared, FieldInfo):
        field = FieldInfo(**{**declared.__dict__, "annotation": annotation})
    else:
        field = FieldInfo(annotation, declared)
    if declared is not MISSING:
        delattr(cls, name)  # a field's value is the instance's; never the class default
    return field


def _checks_of(cls: type[Model]) -> tuple[dict[str, list[str]], list[str]]:
    """The names of ``cls``'s field validators by field, and of its model validators."""
    by_field: dict[str, list[str]] = {}
    whole: list[str] = []
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            marker = getattr(getattr(attr, "__func__", attr), "__validates__", None)
            if marker == "after":
                whole.append(name)
            elif isinstance(marker, tuple):
                for field in marker:
                    by_field.setdefault(field, []).append(name)
    return by_field, whole


def _takes_info(check: Callable[..., Any]) -> bool:
    code = getattr(getattr(check, "__func__", check), "__code__", None)
    return code is not None and code.co_argcount >= 3


def _bounded(field: FieldInfo, value: Any) -> bool:
    return not (
        (field.ge is not None and value < field.ge)
        or (field.gt is not None and value <= field.gt)
        or (field.le is not None and value > field.le)
    )


def _bound_error(field: FieldInfo, value: Any) -> tuple[str, str]:
    if field.ge is not None and value < field.ge:
        return "greater_than_equal", f"Input should be greater than or equal to {field.ge}"
    if field.gt is not None and value <= field.gt:
        return "greater_than", f"Input should be greater than {field.gt}"
    return "less_than_equal", f"Input should be less than or equal to {field.le}"


def _convert(kind: Any, value: Any, loc: Loc, info: ValidationInfo, errors: list[Any]) -> Any:
    """``value`` as ``kind``, or _INVALID with the reason appended to ``errors``."""
    origin = get_origin(kind)
    if origin is Annotated:
        return _annotated(kind, value, loc, info, errors)
    if origin is Union or origin is types.UnionType:
        return _union(get_args(kind), value, loc, info, errors)
    if origin is Literal:
        return _literal(get_args(kind), value, loc, errors)
    if origin is tuple or origin is list:
        return _sequence(kind, value, loc, info, errors)
    if origin is dict:
        return _mapping(kind, value, loc, info, errors)
    if kind is Any:
        return value
    if isinstance(kind, type) and issubclass(kind, Model):
        return _model(kind, value, loc, info, errors)
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        try:
            return scalar(value)
        except _Invalid as exc:
            return _fail(errors, loc, exc.kind, str(exc), value)
    if hasattr(kind, "parse"):
        try:
            return kind.parse(value)
        except ValueError as exc:
            return _fail(errors, loc, "value_error", f"Value error, {exc}", value)
    raise TypeError(f"settings cannot hold a {kind!r}")


def _annotated(kind: Any, value: Any, loc: Loc, info: ValidationInfo, errors: list[Any]) -> Any:
    base, *extras = get_args(kind)
    for extra in extras:
        if isinstance(extra, BeforeValidator):
            try:
                value = extra.func(value)
            except ValueError as exc:
                return _fail(errors, loc, "value_error", f"Value error, {exc}", value)
    return _convert(base, value, loc, info, errors)


def _union(
    members: tuple[Any, ...], value: Any, loc: Loc, info: ValidationInfo, errors: list[Any]
) -> Any:
    if value is None and type(None) in members:
        return None
    tried = [m for m in members if m is not type(None)]
    for member in tried:  # a value of exactly a member's type is that member's
        if type(value) is member:
            return value
    failures: list[Any] = []
    for member in tried:
        attempt: list[Any] = []
        result = _convert(member, value, loc, info, attempt)
        if not attempt:
            return result
        failures = failures or attempt
    errors.extend(failures)
    return _INVALID


def _literal(allowed: tuple[Any, ...], value: Any, loc: Loc, errors: list[Any]) -> Any:
    if any(type(value) is type(option) and value == option for option in allowed):
        return value
    shown = [repr(option) for option in allowed]
    listed = " or ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)
    return _fail(errors, loc, "literal_error", f"Input should be {listed}", value)


def _sequence(kind: Any, value: Any, loc: Loc, info: ValidationInfo, errors: list[Any]) -> Any:
    origin, args = get_origin(kind), get_args(kind)
    if not isinstance(value, (list, tuple)):
        name = "tuple" if origin is tuple else "list"
        return _fail(errors, loc, f"{name}_type", "Input should be a list (a TOML array)", value)
    if origin is tuple and args[-1:] != (...,) and len(args) != len(value):
        return _fail(
            errors, loc, "tuple_type", f"Input should be a list of {len(args)} items", value
        )
    item_kinds = [args[0]] * len(value) if args[-1:] == (...,) or origin is list else list(args)
    before = len(errors)
    items = [
        _convert(k, item, (*loc, i), info, errors)
        for i, (k, item) in enumerate(zip(item_kinds, value, strict=True))
    ]
    if len(errors) > before:
        return _INVALID
    return tuple(items) if origin is tuple else items


def _mapping(kind: Any, value: Any, loc: Loc, info: ValidationInfo, errors: list[Any]) -> Any:
    if not isinstance(value, Mapping):
        return _fail(
            errors, loc, "dict_type", "Input should be a table (a TOML table of keys)", value
        )
    keys, values = get_args(kind)
    before = len(errors)
    converted = {
        _convert(keys, key, (*loc, key), info, errors): _convert(
            values, item, (*loc, key), info, errors
        )
        for key, item in value.items()
    }
    return _INVALID if len(errors) > before else converted


def _model(kind: type[Model], value: Any, loc: Loc, info: ValidationInfo, errors: list[Any]) -> Any:
    if isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        return _fail(
            errors,
            loc,
            "model_type",
            "Input should be a table of settings (a TOML table)",
            value,
        )
    before = len(errors)
    built = kind._fill(object.__new__(kind), value, loc, info, errors)
    return _INVALID if len(errors) > before else built


class _Invalid(Exception):
    """A scalar's conversion failed: the error's type and message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid("string_type", "Input should be a valid string")


def _secret(value: Any) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(_str(value))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise _Invalid("bool_parsing", "Input should be a valid boolean, unable to interpret input")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        raise _Invalid(
            "int_from_float", "Input should be a valid integer, got a number with a fractional part"
        )
    return _parsed(int, value, "int_parsing", "a valid integer", "an integer")


def _float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return _parsed(float, value, "float_parsing", "a valid number", "a number")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    return _parsed(dt.date.fromisoformat, value, "date_parsing", "a valid date", "YYYY-MM-DD")


def _parsed(parse: Callable[[str], T], value: Any, kind: str, what: str, form: str) -> T:
    """A string parsed by ``parse``; any other value, or a string it refuses, is invalid."""
    if not isinstance(value, str):
        raise _Invalid(kind.replace("_parsing", "_type"), f"Input should be {what}")
    try:
        return parse(value.strip())
    except ValueError:
        raise _Invalid(kind, f"Input should be {what}, unable to parse string as {form}") from None


_SCALARS: dict[Any, Callable[[Any], Any]] = {
    str: _str,
    bool: _bool,
    int: _int,
    float: _float,
    dt.date: _date,
    SecretStr: _secret,
}


def _dump(value: Any, mode: str, by_alias: bool) -> Any:
    if isinstance(value, Model):
        return value.model_dump(mode=mode, by_alias=by_alias)  # type: ignore[arg-type]
    if isinstance(value, (tuple, list)):
        items = [_dump(item, mode, by_alias) for item in value]
        return items if mode == "json" or isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {key: _dump(item, mode, by_alias) for key, item in value.items()}
    if mode != "json":
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, SecretStr) or hasattr(type(value), "parse"):
        return str(value)
    return value

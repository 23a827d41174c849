"""Settings read once from an environ mapping: the frozen base, ``env_var``, one error for all.

The classes are pydantic-settings models whose every field names its variable
(``env_var``); a bad configuration fails with one ``SettingsError`` that names each bad
variable and says what is wrong with it, and never echoes a secret's value. Nothing here
reads ``os.environ``, a .env file or a secrets folder: the caller hands the environ in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, JsonValue, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict


class SettingsError(ValueError):
    """A variable is set to something unusable; the message names it (each of them)."""


def env_var(name: str, default: Any = None, *, secret: bool = False, **constraints: Any) -> Any:
    """A field read from the variable ``name``; a ``secret`` is never shown (repr, errors)."""
    extra: dict[str, JsonValue] | None = {"secret": True} if secret else None
    if "default_factory" not in constraints:
        constraints["default"] = default
    return Field(validation_alias=name, repr=not secret, json_schema_extra=extra, **constraints)


def _csv(raw: object) -> object:
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def each(check: Callable[[str], str]) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    """A validator of a ``Csv`` field applying ``check`` to every item."""

    def validate(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check(v) for v in values)

    return validate


# A comma list in the environment, a tuple in code: NoDecode keeps pydantic-settings from
# reading the variable as JSON.
Csv = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_csv)]


class _Environ(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``;
    blank values count as unset, as an empty ``VAR=`` in a compose file means."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {k: v.strip() for k, v in environ.items() if v.strip()}
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


def _problems(model: type[BaseSettings], exc: ValidationError) -> list[str]:
    """One line per bad value, named by its variable; a secret's value is left out."""
    lines = []
    for error in exc.errors(include_url=False):
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if isinstance(cause, Exception) else error["msg"]
        if not error["loc"]:  # a rule across several variables: the message names them
            lines.append(message)
            continue
        key = str(error["loc"][0])
        info: FieldInfo | None = model.model_fields.get(key)
        name = key
        if info is None:
            info = next((f for f in model.model_fields.values() if f.validation_alias == key), None)
        elif isinstance(info.validation_alias, str):
            name = info.validation_alias
        secret = info is not None and isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        lines.append(f"{name}: {message}" if secret else f"{name}={error['input']!r}: {message}")
    return lines


class Settings(BaseSettings):
    """Frozen, built from arguments only: ``from_env`` is how the environment gets in."""

    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError("\n  ".join(_problems(type(self), exc))) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Never os.environ, a .env file or a secrets folder behind the caller's back.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **given: Any) -> Self:
        """From the environment; ``given`` values (the CLI's flags) win over it. Every bad
        variable is named in the one SettingsError raised."""
        problems: list[str] = []
        settings = cls._read(env, problems, **given)
        if problems:
            raise SettingsError("\n  ".join(problems))
        assert settings is not None
        return settings

    @classmethod
    def _derived(cls, env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
        """Values that are not one variable each (a nested model, a standard OTel rule)."""
        return {}

    @classmethod
    def _read(cls, env: Mapping[str, str], problems: list[str], **given: Any) -> Self | None:
        """The settings from ``env``, ``given`` values taking precedence; None with
        ``problems`` added if bad."""
        values = {**_Environ(cls, env)(), **cls._derived(env, problems)}
        for name in given:
            values.pop(str(cls.model_fields[name].validation_alias), None)
        try:
            return cls(**values, **given)
        except SettingsError as exc:
            problems.append(str(exc))
            return None

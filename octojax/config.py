"""The one configuration system: typed sections (pydantic), one YAML loader, one ConfigError.

Every config of octojax — model, data, train (mesh, optimizer, checkpoint, export, ...) and the
`octojax run` pipeline — is a tree of `Section`s. `load()` reads YAML, merges it over defaults,
applies `key.sub=value` overrides and validates the whole tree at once: unknown keys, wrong types
and bad values (a typo'd preset, a remat policy that does not exist) fail here, with the file and
the dotted key in the message, not later inside the trainer.

pydantic (not hand-written coercion) does the typing: strict types (no "5" for 5), `Literal` for
enumerations, `extra="forbid"` for typos, and error locations we turn into dotted keys.
This module imports no jax.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the dotted key."""


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-4` as a number the way YAML 1.2 does (YAML 1.1, PyYAML's
    dialect, wants `1.0e-4` and would hand the learning rate over as a string)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """One YAML document with octojax's loader (safe; exponents without a dot are floats)."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 -- YamlLoader is a SafeLoader


class Section(BaseModel):
    """Base of every config section: strict types, unknown keys rejected, assignment validated."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable mapping that `build` accepts back."""
        return self.model_dump(mode="json")


def _dotted(loc: Iterable[Any]) -> str:
    """('data', 'sources', 0, 'path') -> 'data.sources[0].path' (pydantic's own loc parts)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[", "union[", "tagged-union[")):
            continue  # validator or union-member names: not keys the user wrote
        else:
            out += ("." if out else "") + str(part)
    return out


def _error_line(cls: type[BaseModel], err: dict) -> str:
    key = _dotted(err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key" + _known_keys_hint(cls, err["loc"][:-1])
    elif err["type"] not in ("value_error", "assertion_error"):
        msg += f" (got {err['input']!r})"
    return f"{key}: {msg}" if key else msg


def _known_keys_hint(cls: type[BaseModel], parent_loc: tuple) -> str:
    """'; known: a, b, c' for the section at parent_loc, when it can be found."""
    node: Any = cls
    for part in parent_loc:
        if isinstance(part, int):
            continue
        field = getattr(node, "model_fields", {}).get(part)
        if field is None:
            return ""
        node = _section_type(field.annotation)
        if node is None:
            return ""
    return "; known: " + ", ".join(node.model_fields)


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The Section class inside an annotation such as `X`, `X | None` or `list[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def build(cls: type[T], data: Any, where: str = "config") -> T:
    """Validate a plain mapping into `cls`; ConfigError('<where>: <dotted.key>: <problem>')."""
    if data is None:
        data = {}
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        lines = [_error_line(cls, err) for err in e.errors()]
        more = (
            f" (and {len(lines) - 1} more: " + "; ".join(lines[1:]) + ")" if len(lines) > 1 else ""
        )
        raise ConfigError(f"{where}: {lines[0]}{more}") from None


def read_yaml(path: str | Path, what: str = "config file") -> dict:
    """A YAML mapping from a file; ConfigError naming the file if absent, not YAML or not a map."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} does not exist")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def parse_overrides(overrides: Iterable[str]) -> list[tuple[str, Any]]:
    """`a.b=value` strings -> (dotted key, YAML-parsed value)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. train.steps=10)")
        key, raw = item.split("=", 1)
        try:
            value = parse_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({e})") from None
        out.append((key.strip(), value))
    return out


def apply_overrides(tree: dict, overrides: Iterable[str]) -> dict:
    """A copy of `tree` with every `a.b=value` override set (sections created as needed)."""
    tree = copy.deepcopy(tree)
    for dotted, value in parse_overrides(overrides):
        keys = dotted.split(".")
        node = tree
        for i, k in enumerate(keys[:-1]):
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted}: {'.'.join(keys[: i + 1])} is not a section")
            node = child
        node[keys[-1]] = value
    return tree


def merge(base: dict, update: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in `update` replaces."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    *,
    defaults: dict | None = None,
    what: str = "config file",
) -> T:
    """defaults <- YAML file <- overrides, validated as `cls`; errors name the file and key."""
    tree = dict(defaults or {})
    where = "config"
    if path is not None:
        tree = merge(tree, read_yaml(path, what))
        where = str(path)
    overrides = list(overrides)
    tree = apply_overrides(tree, overrides)
    if overrides:
        where += " (with overrides " + " ".join(overrides) + ")"
    return build(cls, tree, where)

"""cluster.toml (+ secrets.toml) -> a validated `Cluster`, or every problem at once, located."""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from picl.errors import PiclError, Problem, SpecError
from picl.spec.checks import control_character
from picl.spec.consistency import did_you_mean, findings
from picl.spec.locate import MAX_DEPTH, Loc, Positions, format_loc, positions
from picl.spec.models import SELECTION_TAGS, Cluster, Node
from picl.spec.secrets import SECRETS_FILE, check_private

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$|\s*\(at end of document\)$")


def _text(path: Path) -> str:
    """The file's text, or a one-line error saying why it cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PiclError(f"{path}: no such file (write one with `picl init`)") from None
    except IsADirectoryError:
        raise PiclError(f"{path}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise PiclError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError([Problem(str(path), line, col, "", "not UTF-8 text")]) from None


def _parse(path: Path, text: str) -> tuple[dict[str, Any], Positions]:
    """The document's data and where each key is written, or its first problem, located."""
    where = positions(text)
    if where.too_deep:  # tomllib recurses, and its time grows with the square of a key's parts
        loc = where.too_deep
        message = f"nested more than {MAX_DEPTH} tables and arrays deep"
        raise SpecError([Problem(str(path), *where.of(loc), format_loc(loc), message)])
    try:
        return tomllib.loads(text), where
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line = int(match.group(1)) if match and match.group(1) else text.count("\n") + 1
        col = int(match.group(2)) if match and match.group(2) else 1
        reason = _TOML_POSITION.sub("", message)
        raise SpecError(
            [Problem(str(path), line, col, "", f"invalid TOML: {reason}")]
        ) from None


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose table `loc` is, for did-you-mean hints on unknown keys."""
    current: Any = Cluster
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """list[X], X | None, Annotated[X, ...] -> X (the first model class found)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap(arg)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
    return annotation


_STRICT_TYPES = frozenset(["int_type", "float_type", "bool_type", "string_type"])


def _toml_kind(value: Any) -> str:
    """What a TOML value is, in TOML's words."""
    for kind, words in ((bool, "a boolean"), (int, "an integer"), (float, "a float"),
                        (str, "a string"), (list, "an array"), (dict, "a table")):
        if isinstance(value, kind):
            return words
    return "a date or time"


def _message(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc[:-1])
        hint = did_you_mean(key, list(model.model_fields)) if model else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "missing required key"
    message = str(error["msg"])
    if kind in _STRICT_TYPES:  # strict: say what was written instead
        return f"{message}, not {_toml_kind(error['input'])}"
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _model_problems(exc: ValidationError, file: str, where: Positions) -> Iterator[Problem]:
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if p not in SELECTION_TAGS)
        line, col = where.of(loc)
        yield Problem(file, line, col, format_loc(loc), _message(error, loc))


def _secret_refs(value: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Every `{ secret = "NAME" }` in the raw data, with where it is."""
    if isinstance(value, dict):
        if set(value) == {"secret"} and isinstance(value["secret"], str):
            yield (*loc, "secret"), value["secret"]
            return
        for key, item in value.items():
            yield from _secret_refs(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _secret_refs(item, (*loc, i))


def load_secrets(path: Path, warn: Callable[[str], None] | None = None) -> dict[str, SecretStr]:
    """secrets.toml: NAME = "value" per secret, private to its owner and out of git (see
    picl.spec.secrets). Values never reach an error message."""
    text = _text(path)
    check_private(path, warn)
    data, where = _parse(path, text)
    message = "a secret's value must be a string"
    problems = [
        Problem(str(path), *where.of((key,)), format_loc((key,)), message)
        for key, value in data.items()
        if not isinstance(value, str)
    ]
    if problems:
        raise SpecError(problems)
    return {key: SecretStr(value) for key, value in data.items()}


def load(
    path: Path,
    secrets_path: Path | None = None,
    warn: Callable[[str], None] | None = None,
    with_secrets: bool = True,
) -> Cluster:
    """Read and validate a spec; raise SpecError with every problem, sorted by line.

    Without `with_secrets`, secrets.toml is not read: for commands that use no secret.
    """
    path = Path(path)
    data, where = _parse(path, _text(path))
    file = str(path)
    problems: list[Problem] = []
    cluster: Cluster | None = None
    try:
        cluster = Cluster.model_validate(data)
    except ValidationError as exc:
        problems.extend(_model_problems(exc, file, where))
    for loc, message in findings(data, path.parent):
        problems.append(Problem(file, *where.of(loc), format_loc(loc), message))

    secrets_file = secrets_path or path.parent / SECRETS_FILE
    read = with_secrets and secrets_file.exists()
    secrets = load_secrets(secrets_file, warn) if read else {}
    # A missing secret is the same with or without a secrets file: what needs it is left alone.
    missing: list[Problem] = []
    for loc, name in _secret_refs(data) if with_secrets else ():
        if name not in secrets:
            missing.append(Problem(file, *where.of(loc), format_loc(loc),
                                   f"secret {name!r} is not in {secrets_file}: what needs it is "
                                   f"left as it is on the nodes until {name} = \"...\" is added "
                                   "there"))
        elif control_character(secrets[name].get_secret_value()) is not None:
            # A Wi-Fi key or a password hash is one line of a file: never shown, even here.
            problems.append(Problem(file, *where.of(loc), format_loc(loc),
                                    f"secret {name!r} in {secrets_file} holds a control "
                                    "character (line break, NUL, tab...); its value is not shown"))

    if problems or cluster is None:
        problems.sort(key=lambda p: (p.line, p.col))
        raise SpecError(problems)
    if warn:  # worth saying of a spec that is otherwise valid
        for problem in missing:
            warn(str(problem))
    cluster._secrets = secrets
    return cluster


# What commands that only find the cluster read: a spec broken elsewhere must not stop them
# (`picl --lab status` while the agent stalls on that very spec).


def _string_at(path: Path, where: Positions, data: dict[str, Any], loc: Loc) -> str:
    """The string at `loc`; a located SpecError when it is missing or not a string."""
    value: Any = data
    for part in loc:
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str) and value:
        return value
    message = "missing required key" if value is None else "must be a non-empty string"
    raise SpecError([Problem(str(path), *where.of(loc), format_loc(loc), message)])


def cluster_name(path: Path) -> str:
    """The spec's `[cluster] name`, read without validating the rest (what names its lab)."""
    data, where = _parse(path, _text(path))
    return _string_at(path, where, data, ("cluster", "name"))


def primary_node(path: Path) -> Node:
    """The spec's primary node (its name and address), read without validating the rest: where
    the agent and its status are."""
    data, where = _parse(path, _text(path))
    primary = _string_at(path, where, data, ("cluster", "primary"))
    nodes = data.get("nodes")
    for index, table in enumerate(nodes if isinstance(nodes, list) else []):
        if isinstance(table, dict) and table.get("name") == primary:
            try:
                return Node.model_validate({k: table[k] for k in ("name", "address") if k in table})
            except ValidationError as exc:
                problems = []
                for error in exc.errors():
                    loc = ("nodes", index, *error["loc"])
                    problems.append(Problem(str(path), *where.of(loc), format_loc(loc),
                                            _message(error, loc)))
                raise SpecError(problems) from None
    loc = ("cluster", "primary")
    raise SpecError([Problem(str(path), *where.of(loc), format_loc(loc),
                             f"no node named {primary!r} in [[nodes]]")])

"""YAML config files read into pydantic models, with one-line errors naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from headliner.errors import HeadlinerError

Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(
    path: str | Path, model: type[Model], kind: str, error: type[HeadlinerError], at: tuple[str, ...] = ()
) -> Model:
    """Validate the mapping found under the keys `at` of a YAML file (`kind` names the file in errors)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{kind} {path}: no such file")
    try:
        node = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{kind} {path}: not valid YAML ({exc})") from None
    for key in at:
        if not isinstance(node, dict) or key not in node:
            raise error(f"{kind} {path}: missing '{'.'.join(at)}'")
        node = node[key]
    if not isinstance(node, dict):
        raise error(f"{kind} {path}: expected a mapping at {'.'.join(at) or 'the top level'}")
    try:
        return model.model_validate(node)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in (*at, *first["loc"])) or "(top level)"
        raise error(f"{kind} {path}: field '{where}': {first['msg']}") from None

"""Helpers for the thin DVC entry points in stages/: params.yaml sections and clean error exits."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError, MimicError

PARAMS = Path(os.environ.get("MIMIC_PARAMS", "params.yaml"))


def params(*keys: str, path: str | Path = PARAMS) -> Any:
    """The params.yaml value at ``keys`` (e.g. ``params("clips", "walk")``); a missing key is an InputError."""
    path = Path(path)
    try:
        value: Any = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(path, f"cannot read parameters ({e})") from None
    for i, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise InputError(path, f"missing parameter '{'.'.join(keys[: i + 1])}'")
        value = value[key]
    return value


def run(main: Callable[[list[str]], None]) -> None:
    """Run a stage's ``main(argv)``; bad input prints one line and exits 2 (DVC keeps the previous outputs)."""
    name = Path(sys.argv[0]).stem
    try:
        main(sys.argv[1:])
    except MimicError as e:
        print(f"stage {name}: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)

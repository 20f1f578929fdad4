"""One exception root for the package.

Bad input raises :class:`InputError`; the CLI and the stages print its one-line message and exit with status 2.
"""

from __future__ import annotations

from pathlib import Path


class MimicError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class InputError(MimicError):
    """A file, parameter or argument that cannot be used: says which one and what is wrong with it."""

    exit_code = 2

    def __init__(self, source: str | Path | None, problem: str) -> None:
        self.source = str(source) if source is not None else None
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)

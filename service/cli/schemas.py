"""`autocall-bridge schemas DIRECTORY`: write the JSON Schemas and the AsyncAPI document."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `schemas` command."""
    schemas = commands.add_parser("schemas", help="write the JSON Schemas and AsyncAPI document")
    schemas.add_argument("directory", type=Path)
    schemas.set_defaults(command=_schemas)


def _schemas(args: argparse.Namespace) -> int:
    from ..contract.schemas import write

    for path in write(args.directory):
        print(path)
    return 0

"""Sub-commands of ``dbcourse`` beyond ``services`` (registered by :func:`register`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data, release, grade and run sub-commands."""

"""Write the Databricks example notebook as a Jupyter notebook, to run it locally against the stand-in.

    python examples/local.py bias_suite.ipynb            # writes examples/bias_suite.ipynb, beside its source
    python -m pytest_llmbias.standin --port 8000         # another terminal; paste its three exports
    jupyter lab examples/bias_suite.ipynb                # the kernel needs pytest-llmbias[spark,notebook]

A bare OUT name is written beside the source, whose cells name the suite as ../cases/ (from examples/);
./OUT.ipynb writes it in the current folder.

Databricks source format: cells split by "# COMMAND ----------", magic cells written as "# MAGIC"
lines. `%md` cells become Markdown; `%pip` cells are commented out (install the package locally
with pip); other magics (`%load_ext`, `%pytest`) run as they are.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"


def cells_of(source: str) -> list[tuple[str, str]]:
    """(kind, text) per cell: kind is "markdown" or "code"."""
    body = source.split("\n", 1)[1] if source.startswith(HEADER) else source
    cells = []
    for chunk in body.split(SEPARATOR):
        lines = chunk.strip("\n").splitlines()
        if not lines:
            continue
        if all(line.startswith(MAGIC) for line in lines):
            text = "\n".join(line[len(MAGIC):].removeprefix(" ") for line in lines)
            if text.startswith("%md"):
                cells.append(("markdown", text[len("%md"):].lstrip("\n")))
            elif text.startswith("%pip"):
                cells.append(("code", f"# On Databricks: {text}\n# Locally: pip install -e \".[spark,notebook]\""))
            else:
                cells.append(("code", text))
        else:
            cells.append(("code", "\n".join(lines)))
    return cells


def to_ipynb(source: str) -> dict:
    """An nbformat 4 notebook with the Python 3 kernel."""
    def cell(index: int, kind: str, text: str) -> dict:
        shaped = {"cell_type": kind, "id": f"cell-{index}", "metadata": {},
                  "source": text.splitlines(keepends=True)}
        if kind == "code":
            shaped.update(execution_count=None, outputs=[])
        return shaped

    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [cell(index, kind, text) for index, (kind, text) in enumerate(cells_of(source))],
    }


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python examples/local.py OUT.ipynb [SOURCE.py]", file=sys.stderr)
        return 2
    out = Path(argv[0])
    source = Path(argv[1]) if len(argv) == 2 else Path(__file__).with_name("bias_suite.py")
    if "/" not in argv[0] and os.sep not in argv[0]:  # a bare name goes beside its source: its cells name ../cases/
        out = source.parent / out
    notebook = to_ipynb(source.read_text(encoding="utf-8"))
    out.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(notebook['cells'])} cells) from {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

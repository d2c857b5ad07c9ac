"""The stash keys the plugin's modules share: the run's state on pytest's config and items.

One small module at the bottom, so the feature plugins (databricks, notebook, report, mlflow_log)
reach the run's state without importing plugin.py. Keys one module alone uses stay in that module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class NotebookContext:
    """The IPython user namespace a %pytest run was started from (see pytest_llmbias.notebook)."""

    namespace: Mapping[str, Any]

    @property
    def spark(self) -> Any:
        return self.namespace.get("spark")

    @property
    def dbutils(self) -> Any:
        return self.namespace.get("dbutils")


# The values' types live above this module (it imports none of them, so none can import it back).
SESSION_KEY = pytest.StashKey[Any]()       # config: the run, a session.LLMSession (set by plugin.py)
BIAS_TEST_KEY = pytest.StashKey[Any]()     # a bias test's item: its (cases.Case, cases.CheckConfig)
NOTEBOOK_KEY = pytest.StashKey[NotebookContext]()   # config: the notebook a %pytest run came from
TABLE_KEY = pytest.StashKey[Any]()         # config: the result tables' append, a databricks.TableWrite
CHECK_SETTINGS_KEY = pytest.StashKey[dict]()       # config: ini llmbias_check_options, per check
FILE_TESTS_KEY = pytest.StashKey[dict]()           # config: case file -> every (case id, check) it holds
DESELECTED_FILES_KEY = pytest.StashKey[set]()      # config: case files run in part (their other recordings stay)

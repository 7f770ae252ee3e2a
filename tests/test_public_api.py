"""The public API in n2prune/__init__.py: every name resolves, the registries are open, and
``import n2prune`` stays light."""

import subprocess
import sys

import pytest

import n2prune
from n2prune.registry import Registry

REGISTRIES = ["ACTIVATIONS", "CELLS", "CRITERIA", "DATABASES", "LR_POLICIES", "MASK_FILLERS",
              "PATTERNS", "QUANTIZERS", "SCHEDULES", "SOLVERS", "TRANSFORMATIONS",
              "WEIGHT_INITIALIZERS"]


@pytest.mark.parametrize("name", n2prune.__all__)
def test_every_public_name_resolves(name):
    assert getattr(n2prune, name) is not None


def test_the_documented_entry_points_are_public():
    assert {"PruneCell", "load_network", "Network", "ConfigError", "attach", "detach",
            "Pruner", *REGISTRIES} <= set(n2prune.__all__)


@pytest.mark.parametrize("name", REGISTRIES)
def test_each_public_registry_is_a_registry_with_members(name):
    registry = getattr(n2prune, name)
    assert isinstance(registry, Registry) and len(registry) > 0


def test_public_objects_are_the_ones_the_library_uses():
    from n2prune.network.routing import SOLVERS as routed
    from n2prune.prune.prunecell import PruneCell
    assert n2prune.SOLVERS is routed and n2prune.PruneCell is PruneCell
    assert n2prune.QUANTIZERS.get("Prune") is PruneCell


def test_import_pulls_in_no_plotting_image_or_learning_library():
    code = ("import sys, n2prune; print(sorted(m for m in ('matplotlib', 'PIL', 'sklearn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"

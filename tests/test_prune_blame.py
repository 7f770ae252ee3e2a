"""Arguments that do not go together: the error blames the one that makes the combination
invalid (``exc.arg`` from Python, the line of its key from INI)."""

import pytest

from n2prune import ConfigError, PruneCell, load_network
from nets import FC_STATIC as NET  # one pruned Fc cell; {extra} at line 13

FIRST = 13  # the line of the first extra key


def _load(tmp_path, extra: str):
    path = tmp_path / "net.ini"
    path.write_text(NET.format(extra=extra))
    return load_network(str(path))


@pytest.mark.parametrize("keys, blamed, reason", [
    # combined, Any, Global: the min_keep floor is what cannot hold
    (["PruningFiller=Magnitude+Snip", "PruningScope=Global", "PruningMinKeep=0.2"],
     2, r"min_keep=0.2 cannot be guaranteed"),
    (["PruningMinKeep=0.3", "PruningFiller=Magnitude+Snip", "PruningCombine=Any",
      "PruningScope=Global"], 0, r"min_keep=0.3 cannot be guaranteed"),
    # combined with a mask filler: the filler
    (["PruningScope=Global", "PruningFiller=Magnitude+Random"], 1,
     r"'Random' is a mask filler"),
    # N:M cannot be ranked globally: the pattern
    (["PruningFiller=Magnitude+Snip", "PruningPattern=2:4", "PruningScope=Global"], 1,
     r"pattern='2:4' prunes within each group"),
    (["PruningFiller=Magnitude", "PruningPattern=2:4", "PruningScope=Global"], 1,
     r"pattern='2:4' prunes within each group"),
    # a channel criterion with an explicit other pattern: the pattern; without one: the filler
    (["PruningFiller=APoZ", "PruningPattern=4x1"], 1, r"criterion 'APoZ' scores whole channels"),
    (["PruningScope=Layer", "PruningFiller=APoZ"], 1, r"criterion 'APoZ' scores whole channels"),
    (["PruningScope=Layer", "PruningFiller=Magnitude+FPGM"], 1,
     r"criterion 'FPGM' scores whole channels"),
    # a mask filler ranked globally: the scope
    (["PruningFiller=Random", "PruningScope=Global"], 1, r"scope='Global' ranks scores"),
    # a schedule with a mode that has none (the section's Static): the schedule
    (["PruningSchedule=Cubic"], 0, r"needs prune_mode='Gradual'"),
])
def test_invalid_combination_is_located_at_the_key_that_makes_it_invalid(tmp_path, keys,
                                                                          blamed, reason):
    extra = "\n".join(f"QWeight.{key}" for key in keys)
    key = keys[blamed].replace("+", r"\+")
    with pytest.raises(ConfigError, match=rf"^.*net.ini:{FIRST + blamed}: \[fc\] "
                                          rf"QWeight.{key}: .*{reason}"):
        _load(tmp_path, extra)


def test_python_errors_name_the_argument_to_blame():
    with pytest.raises(ValueError, match="min_keep=0.1 cannot be guaranteed") as err:
        PruneCell(prune_filler="Magnitude+Snip", scope="Global", min_keep=0.1)
    assert err.value.arg == "min_keep"
    with pytest.raises(ValueError) as err:
        PruneCell(prune_filler="APoZ")
    assert err.value.arg == "prune_filler"
    with pytest.raises(ValueError) as err:
        PruneCell(prune_filler="APoZ", pattern="2:4")
    assert err.value.arg == "pattern"

"""``adamlab verify`` counts a check that could not run as "not run", never as disagreeing."""

from types import SimpleNamespace

from adamlab.commands.verify import count_line


def _r(holds, must_hold_failed=False):
    return SimpleNamespace(holds=holds, must_hold_failed=must_hold_failed)


def test_not_run_is_not_a_disagreement():
    assert count_line([_r(None)]) == ("1 checks: 0 match theory, 0 disagree (0 required properties missing, "
                                      "0 present where theory says absent), 1 not run (see 'expected')")
    line = count_line([_r(True), _r(False, True), _r(False), _r(None)])
    assert line.startswith("4 checks: 1 match theory, 2 disagree (1 required properties missing, 1 present")
    assert line.endswith("1 not run (see 'expected')")
    assert "not run" not in count_line([_r(True)])

"""`make demo` (experiment=demo) is a step budget: the same numbers on any machine, only slower on a busy one."""

from golf.cli import compose
from golf.config import to_golf_config


def test_the_demo_stops_by_steps_not_by_the_clock_on_one_thread():
    cfg = to_golf_config(compose(["experiment=demo"]))
    assert cfg.train.max_wallclock_s == 0 and cfg.train.iterations == 300
    assert cfg.hardware.name == "cpu" and cfg.hardware.threads == 1  # thread count does not vary with the machine
    assert cfg.audit.enabled and cfg.ttt.protocol == "score_first"
    assert cfg.audit.tokens > 2 * cfg.ttt.chunk_tokens  # the audit's slice sees an adaptation happen

"""W&B mirrors a run and never fails or stalls it: a fake wandb module stands in for the real one."""

from __future__ import annotations

import sys
import types

import pytest

from golf.runs import LoggerConfig
from golf.wandb_run import INIT_TIMEOUT_S, WandbRun


class FakeRun:
    def __init__(self):
        self.logged, self.summary, self.finished = [], {}, False

    def log(self, record, step=None):
        self.logged.append((step, record))

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    module = types.SimpleNamespace(calls=[])

    def init(**kwargs):
        module.calls.append(kwargs)
        if module.fail:
            raise RuntimeError("no network")
        module.run = FakeRun()
        return module.run

    module.init, module.fail = init, False
    module.Settings = lambda **kwargs: kwargs
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return module


def test_offline_run_gets_the_resolved_config_and_a_bounded_init(fake_wandb, tmp_path):
    run = WandbRun(LoggerConfig(group="g", tags=["model:tiny"]), tmp_path, "r1", {"seed": 3})
    (call,) = fake_wandb.calls
    assert call["mode"] == "offline" and call["dir"] == str(tmp_path) and call["config"] == {"seed": 3}
    assert call["group"] == "g" and call["tags"] == ["model:tiny"]
    assert call["settings"]["init_timeout"] == INIT_TIMEOUT_S
    run.log({"loss": 1.0}, step=5)
    run.finish({"val_bpb": 2.0, "nested": {"x": 1}})
    assert fake_wandb.run.logged == [(5, {"loss": 1.0})]
    assert fake_wandb.run.summary == {"val_bpb": 2.0} and fake_wandb.run.finished


def test_environment_mode_wins_and_disabled_never_calls_wandb(fake_wandb, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    WandbRun(LoggerConfig(mode="online"), tmp_path, "r", {})
    assert fake_wandb.calls == []


def test_logger_none_never_calls_wandb(fake_wandb, tmp_path):
    WandbRun(LoggerConfig(name="none", mode="disabled"), tmp_path, "r", {}).log({"a": 1})
    assert fake_wandb.calls == []


def test_a_failing_init_turns_wandb_off_with_a_warning(fake_wandb, tmp_path):
    fake_wandb.fail = True
    with pytest.warns(UserWarning, match="W&B is off"):
        run = WandbRun(LoggerConfig(mode="online"), tmp_path, "r", {})
    run.log({"loss": 1.0}, step=1)  # no error: W&B is simply off
    run.finish({})
    assert run.run is None

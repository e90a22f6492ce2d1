"""Property-based: whatever a person types as overrides, golf answers with a valid config or with one paragraph that
names the key, exit code 2, and never a traceback (in process: compose + validate + the entry points' reporter)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import string
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from golf import CONF_DIR
from golf.cli import USER_ERRORS, compose, exit_with
from golf.config import GolfConfig, to_golf_config

from testkit import golf_command

PROPERTY = settings(max_examples=35, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def leaves(schema: type, prefix: str = "") -> list[tuple[str, typing.Any]]:
    """Every settable key of the schema with its type (model.num_layers, int), from the dataclasses themselves."""
    hints = typing.get_type_hints(schema)
    out: list[tuple[str, typing.Any]] = []
    for item in dataclasses.fields(schema):
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            out += leaves(kind, f"{prefix}{item.name}.")
        else:
            out.append((f"{prefix}{item.name}", kind))
    return out


KEYS = [key for key, _ in leaves(GolfConfig)]
SECTIONS = sorted({key.split(".")[0] for key in KEYS if "." in key})
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "local"))
OPTIONS = {group: {p.stem for p in (CONF_DIR / group).glob("*.yaml")} for group in GROUPS}

# values that have broken config systems before: wrong types, non-finite numbers, huge numbers, YAML and
# interpolation syntax, path tricks
TRICKY = ["nan", "inf", "-inf", "-1", "0", "1e400", "-1e400", "1e30", "99999999999999999999", "abc", "''", "null",
          "true", "[]", "[1,2]", "{a:1}", "{}", "${seed}", "${nope}", "${oc.env:NOPE_NOT_SET}", "${train.seq_len}",
          "../../x", "/abs/path", "a b", "'a,b'", "0.5", "-0.0", "1_0", "+1", "0x10", "\\", "'${x}'"]
VALUES = st.one_of(
    st.sampled_from(TRICKY),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=string.ascii_letters + string.digits + "._-/", min_size=1, max_size=12),
)


def outcome(overrides: list[str]) -> tuple[GolfConfig | None, str]:
    """(config, "") when valid; (None, what the entry points print) when refused. Any other exception escapes and
    fails the test: that would be a traceback in front of a person."""
    try:
        return to_golf_config(compose(overrides)), ""
    except USER_ERRORS as err:
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as info:
            exit_with(err)
        assert info.value.code == 2
        return None, stderr.getvalue()


def assert_one_paragraph(message: str, *named: str) -> None:
    assert message.startswith("golf: ") and message.endswith("\n"), message
    assert "\n" not in message.rstrip("\n"), f"more than one line: {message!r}"
    assert "Traceback" not in message, message
    assert any(name in message for name in named), f"none of {named} named in: {message}"


@PROPERTY
@given(key=st.sampled_from(KEYS), value=VALUES)
@example(key="eval.diverge_bpb", value="nan")  # was accepted: NaN passes `>` checks
@example(key="model.qk_gain_init", value="inf")  # was accepted
@example(key="data.name", value="../../x")  # was accepted, and prepare wrote shards outside paths.root
@example(key="model.name", value="-1")  # was refused naming `name`, not the key typed
def test_any_value_for_a_known_key_is_valid_or_refused_naming_the_key(key, value):
    cfg, message = outcome([f"{key}={value}"])
    if cfg is None:
        # the key typed, or the key of a constraint it broke (model.loop_repeats=5 -> model.loop_end's range)
        assert_one_paragraph(message, key, *KEYS)
        assert key in message or "allowed" in message, message
    else:
        assert isinstance(cfg, GolfConfig)


identifiers = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=10).filter(
    lambda s: s not in {k.split(".")[-1] for k in KEYS} | set(SECTIONS) | set(GROUPS) | {"hydra"})


@PROPERTY
@given(section=st.sampled_from(["", *SECTIONS]), name=identifiers, prefix=st.sampled_from(["", "+", "++"]),
       value=st.sampled_from(["1", "abc", "[1]", "null"]))
def test_unknown_keys_are_refused_naming_them(section, name, prefix, value):
    key = f"{section}.{name}" if section else name
    cfg, message = outcome([f"{prefix}{key}={value}"])
    assert cfg is None, f"{prefix}{key}={value} was accepted"
    assert_one_paragraph(message, key)


@PROPERTY
@given(group=st.sampled_from(GROUPS), option=st.text(alphabet=string.ascii_lowercase + string.digits + "_-",
                                                      min_size=1, max_size=12))
@example(group="model", option="nope")
def test_group_options_that_do_not_exist_are_refused_naming_the_group(group, option):
    if option in OPTIONS[group]:
        return
    cfg, message = outcome([f"{group}={option}"])
    assert cfg is None
    assert_one_paragraph(message, f"{group}/{option}", group)
    assert "option" in message or "Could not" in message, message


@PROPERTY
@given(group=st.sampled_from(GROUPS), value=st.sampled_from(["[1,2]", "[tiny]", "{a:1}", "{}", "3", "null", "''"]))
@example(group="model", value="[1,2]")  # was a TypeError traceback from Hydra's defaults list
def test_a_group_given_a_non_name_is_refused(group, value):
    cfg, message = outcome([f"{group}={value}"])
    if cfg is None:
        assert_one_paragraph(message, group)


SYNTAX = st.text(alphabet="=[]{}(),:'\"$\\ ~+@.abc1", min_size=1, max_size=14)


@PROPERTY
@given(key=st.sampled_from(["seed", "model", "name", "train.seq_len", "ttt.lora_targets", ""]), junk=SYNTAX)
@example(key="", junk="3")  # `=3`: was a ValueError traceback from Hydra's defaults list
@example(key="seed", junk="[1")
@example(key="seed", junk="1,2")  # a sweep without -m
def test_malformed_overrides_are_refused_in_one_paragraph(key, junk):
    arg = f"{key}={junk}"
    cfg, message = outcome([arg])
    if cfg is None:
        # the message names the key, or (when there is none) quotes what was typed
        assert_one_paragraph(message, *(x for x in (key, arg, "override") if x))


NAME_VALUES = st.one_of(st.sampled_from(["..", "../x", "../../etc", "a/../../b", "/tmp/x", ".hidden", "a/b", "x/..",
                                         "~", "-rf", "ok.name_1-2", "a..b"]),
                        st.text(alphabet=string.ascii_letters + "./-_~", min_size=1, max_size=10))


@PROPERTY
@given(key=st.sampled_from(["name", "model.name", "data.name"]), value=NAME_VALUES)
def test_names_that_become_directories_stay_under_paths_root(key, value):
    root = Path("/golf-root")
    cfg, message = outcome([f"paths.root={root}", f"{key}={value}"])
    if cfg is None:
        assert_one_paragraph(message, key)
        return
    for directory in (root / "runs" / f"2026-01-01_00-00-00-000000_{cfg.name}",
                      root / "sweeps" / f"2026-01-01_00-00-00-000000_{cfg.name}" / "0",
                      Path(cfg.data.shards_dir), Path(cfg.data.tokenizer).parent):
        # lexical: a `..` part (or an absolute name) is what could leave the root
        assert ".." not in directory.parts and directory.is_relative_to(root), (key, value, directory)


# -- the real command line: one paragraph on stderr, exit code 2, no traceback, no run directory ---------------

@pytest.mark.parametrize("args,named", [
    (["=3"], "'=3'"),
    (["model=[1,2]"], "model"),
    (["eval.diverge_bpb=nan"], "eval.diverge_bpb"),
    (["data.name=../../escaped"], "data.name"),
    (["name=../../escaped"], "name"),
    (["-m", "name=ok,../../escaped"], "name"),
])
def test_golf_train_reports_bad_overrides_in_one_paragraph(args, named, tmp_path):
    root = tmp_path / "out"
    result = golf_command("golf.train", *args, f"paths.root={root}", "train.iterations=0")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("golf: ") and named in lines[0], result.stderr
    assert not (tmp_path / "escaped").exists()
    assert not (root / "runs").exists() or not any((root / "runs").iterdir()), "no run directory is left"

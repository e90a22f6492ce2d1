"""README.md tells the truth about main: the error lines it quotes are the ones golf prints, its config table lists
every option of conf/, the commands it shows name options that exist, and it points at nothing outside the repo."""

from __future__ import annotations

import re

import pytest

from testkit import golf_command
from golf import CONF_DIR, REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
HYDRA_GROUPS = {"hydra/launcher": {"basic", "joblib", "slurm"}, "hydra/sweeper": {"basic", "ttt_lr_optuna"},
                "hydra/job_logging": {"golf", "default", "disabled", "stdout", "none"}}


def quoted_errors() -> dict[str, str]:
    """The error lines the README quotes, by the override that causes them."""
    found = re.findall(r"`(golf: [^`]*?train\.iterations[^`]*)`", README)
    return {("train.iterations=-5" if "-5" in line else "train.iterations=abc"): line for line in found}


@pytest.mark.parametrize("override", ["train.iterations=-5", "train.iterations=abc"])
def test_the_quoted_error_lines_are_what_golf_prints(override, tmp_path):
    quoted = quoted_errors()
    assert override in quoted, "README must quote golf's error for " + override
    result = golf_command("golf.train", "model=tiny", override, f"paths.root={tmp_path}")
    assert result.returncode == 2 and result.stderr.strip() == quoted[override]


def config_table() -> dict[str, str]:
    rows = re.findall(r"^\| `([\w/]+)` \| (.*) \|$", README.split("## Config", 1)[1].split("\n## ", 1)[0], re.M)
    return dict(rows)


def test_the_config_table_lists_every_option():
    table = config_table()
    for group in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "local")):
        options = {p.stem for p in group.glob("*.yaml")}
        assert group.name in table, f"README's config table has no row for {group.name}"
        listed = set(re.findall(r"`([\w.]+)`", table[group.name]))
        assert options <= listed, f"{group.name}: README does not list {sorted(options - listed)}"
    for group, options in HYDRA_GROUPS.items():
        assert options <= set(re.findall(r"`([\w.]+)`", table[group])), group
        ours = {p.stem for p in (CONF_DIR / group).glob("*.yaml")}
        assert ours <= options, f"{group}: README does not list {sorted(ours - options)}"


def test_the_commands_name_config_options_that_exist():
    block = README.split("## Commands", 1)[1].split("```", 2)[1]
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    for group, option in re.findall(r"(?<![\w.])([a-z_]+)=([\w]+)(?![\w.=])", block):
        if group in groups and group not in ("hydra", "local"):
            assert (CONF_DIR / group / f"{option}.yaml").is_file(), f"README command uses {group}={option}"


def test_the_readme_links_only_into_the_repository():
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        assert not target.startswith(("..", "/")) and (REPO_ROOT / target).exists(), target
    assert "../" + "shared" not in README

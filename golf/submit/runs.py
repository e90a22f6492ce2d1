"""The runs a submission is made of, as found on disk, and the refusals.

DIR is one run directory (it holds metrics.json) or a sweep directory whose job directories hold theirs. Each run
must have ended ok, be audited compliant, have scored with a legal protocol, say in metrics.json the seed its
config.yaml has, and fit the 16,000,000 bytes with the submission's own code (model_bytes + the size of
train_gpt.py). The runs of a sweep must be one config: the same config.yaml but for the seed, and no seed twice.
Anything else is a SubmitError naming the run and why.

The audit of a run is a compliance.json of ITS artifact (its "artifact_sha256" is the one in the run's metrics.json)
made with the run's eval and ttt settings: the one golf.train wrote in the run directory (audit.enabled=true, one
process), or one of the golf.audit run directories named by submit.audits (how a run on several GPUs is audited:
golf.train skips the single-process audit there). Any other compliance.json is not this run's and does not count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from golf.errors import GolfError
from golf.quant.code_size import ARTIFACT_LIMIT_BYTES
from golf.submit.provenance import golf_commit


class SubmitError(GolfError):
    """Runs that cannot be submitted; the message names the run and what is wrong."""


@dataclass
class SubmittedRun:
    path: Path
    config: dict[str, Any]  # config.yaml: golf's resolved config
    metrics: dict[str, Any]
    audits: list[tuple[Path, dict[str, Any]]]  # the compliance.json files that may be its: its own, submit.audits
    compliance: Optional[dict[str, Any]] = None  # the audit of this run's artifact and settings (check_runs finds it)
    compliance_path: Optional[Path] = None
    git_text: Optional[str] = None  # git.txt: the golf commit the run was made with (golf/runs.py)

    @property
    def seed(self) -> int:
        return int(self.config["seed"])


def _read(path: Path, loader) -> Any:
    try:
        return loader(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise SubmitError(f"cannot read {path}: {err}") from None


COMPLIANCE_NAME = "compliance.json"


def find_audits(directories: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """The compliance.json files of golf.audit run directories (or of folders holding such directories)."""
    found = []
    for directory in directories:
        files = [directory / COMPLIANCE_NAME] if (directory / COMPLIANCE_NAME).is_file() else \
            sorted(directory.glob(f"*/{COMPLIANCE_NAME}")) if directory.is_dir() else []
        if not files:
            raise SubmitError(f"submit.audits: {directory} holds no compliance.json (neither it nor a folder in it); "
                              "name the run directories `python -m golf.audit artifact=RUN_DIR` wrote (outputs/runs/"
                              "<audit run>), or the folder of a sweep of them")
        found += [(file, _read(file, json.loads)) for file in files]
    return found


def find_runs(directory: Path, audit_dirs: tuple[Path, ...] = ()) -> list[SubmittedRun]:
    if not directory.is_dir():
        raise SubmitError(f"{directory} is not a directory; give a run directory (outputs/runs/<run>) or a sweep "
                          "directory (outputs/sweeps/<sweep>)")
    dirs = [directory] if (directory / "metrics.json").is_file() else sorted(
        (p for p in directory.iterdir() if (p / "metrics.json").is_file()), key=lambda p: p.name)
    if not dirs:
        raise SubmitError(f"{directory} holds no finished run: neither it nor a folder in it has a metrics.json")
    audits = find_audits(list(audit_dirs))
    runs = []
    for path in dirs:
        if not (path / "config.yaml").is_file():
            raise SubmitError(f"{path} has metrics.json but no config.yaml: not a golf run directory")
        own = path / COMPLIANCE_NAME
        candidates = ([(own, _read(own, json.loads))] if own.is_file() else []) + audits
        git = path / "git.txt"
        runs.append(SubmittedRun(path, _read(path / "config.yaml", yaml.safe_load),
                                 _read(path / "metrics.json", json.loads), candidates,
                                 git_text=git.read_text(encoding="utf-8", errors="replace") if git.is_file() else None))
    return runs


def audit_of(run: SubmittedRun) -> tuple[Path, dict[str, Any]]:
    """The compliance.json of this run's artifact, audited with this run's eval and ttt settings; else SubmitError
    saying what was found and how to make the right one."""
    sha = run.metrics.get("artifact_sha256")
    same_artifact = [(path, c) for path, c in run.audits
                     if sha and isinstance(c, dict) and c.get("artifact_sha256") == sha]
    how = (f"golf.train audits in one process only (audit.enabled=true); a run on several GPUs is audited afterwards "
           f"with `python -m golf.audit artifact={run.path}` and the run's eval= and ttt= settings, and that audit's "
           "run directory is named to golf.submit: submit.audits=AUDIT_DIR[,AUDIT_DIR...] (or the folder of a sweep "
           "of audits); each audit is matched to its run by the artifact's sha256")
    if not same_artifact:
        seen = f"{len(run.audits)} compliance.json file(s) found, none of this artifact" if run.audits else \
            "no compliance.json found"
        raise SubmitError(f"{run.path} has no compliance audit of its artifact (sha256 {sha or 'unknown'}; {seen}): "
                          f"{how}")
    mismatches = []
    for path, compliance in same_artifact:
        differ = _settings_differences(compliance, run.config)
        if not differ:
            return path, compliance
        mismatches.append(f"{path} differs in {', '.join(differ[:5])}")
    raise SubmitError(f"{run.path}: the audits of its artifact were not made with its evaluation settings "
                      f"({'; '.join(mismatches)}), so they say nothing of how it was scored: {how}")


def _settings_differences(compliance: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The eval.* and ttt.* settings the audit records that are not the run's (JSON-normalized: tuples are lists)."""
    audit_eval = compliance.get("eval") or {}
    audited = json.loads(json.dumps({"eval": audit_eval, "ttt": compliance.get("ttt")}))
    ran = json.loads(json.dumps({"eval": {k: config.get("eval", {}).get(k) for k in audit_eval},
                                 "ttt": config.get("ttt")}))
    return _differences(audited, ran) if audit_eval else ["eval (the audit records no eval settings)"]


def check_runs(runs: list[SubmittedRun], code_bytes: int) -> None:
    """Refuse (SubmitError) what cannot go into one submission; `code_bytes`: the size of its train_gpt.py."""
    for run in runs:
        m = run.metrics
        if m.get("status") not in ("ok", "over_budget"):
            raise SubmitError(f"{run.path} did not end ok (status {m.get('status')!r}): only finished, scored runs "
                              "can be submitted")
        if m.get("seed") != run.seed:
            raise SubmitError(f"{run.path}: metrics.json says seed {m.get('seed')!r} but its config.yaml says seed "
                              f"{run.seed}: the run is not what its config says; rerun it")
        run.compliance_path, run.compliance = audit_of(run)
        if not run.compliance.get("compliant"):
            failed = [name for name, check in run.compliance.get("checks", {}).items()
                      if isinstance(check, dict) and check.get("passed") is False]
            raise SubmitError(f"{run.path} is not compliant: its audit failed {', '.join(failed) or 'a check'} "
                              f"({run.compliance_path}); a non-compliant evaluation cannot be submitted")
        if m.get("ttt_illegal") or run.config.get("ttt", {}).get("protocol") == "adapt_first":
            raise SubmitError(f"{run.path} evaluates with ttt.protocol=adapt_first, which adapts before it scores: "
                              "illegal under condition C3")
        total = int(m["model_bytes"]) + code_bytes
        if total > ARTIFACT_LIMIT_BYTES:
            raise SubmitError(f"{run.path} is over the budget: {m['model_bytes']:,} model bytes + {code_bytes:,} bytes "
                              f"of train_gpt.py = {total:,} > {ARTIFACT_LIMIT_BYTES:,}; shrink the model or its export")
    _one_config(runs)


def check_commits(runs: list[SubmittedRun], bundling: dict[str, Optional[str]]) -> None:
    """Refuse a run made with another golf commit than `bundling` (golf_commit of this golf) when its git.txt says
    so and its tree was clean: train_gpt.py embeds this golf's modules, which may not train as that run's did. A run
    whose commit is unknown (no git.txt, no git) or whose tree was dirty cannot be checked: it is accepted, and the
    README says so."""
    for run in runs:
        made = golf_commit(run.git_text)
        if made["state"] == "clean" and bundling["commit"] and made["commit"] != bundling["commit"]:
            raise SubmitError(f"{run.path} was made with golf {made['commit']} (its git.txt, a clean tree) but this "
                              f"golf is {bundling['commit']}: train_gpt.py embeds this golf's modules, which may not "
                              f"reproduce that run; submit from `git checkout {made['commit']}`, or rerun the seeds "
                              "with this golf")


def _one_config(runs: list[SubmittedRun]) -> None:
    first = runs[0]
    same = {k: v for k, v in first.config.items() if k != "seed"}
    seen: dict[int, Path] = {}
    for run in runs:
        other = {k: v for k, v in run.config.items() if k != "seed"}
        if other != same:
            keys = ", ".join(_differences(same, other)[:5])
            raise SubmitError(f"{run.path} and {first.path} differ in more than the seed ({keys}): a submission is "
                              "one config over several seeds; submit each config's runs on their own")
        if run.seed in seen:
            raise SubmitError(f"{run.path} and {seen[run.seed]} both ran seed {run.seed}: each seed once")
        seen[run.seed] = run.path


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]

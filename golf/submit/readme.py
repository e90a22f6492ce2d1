"""README.md of a submission: the result, the per-seed table, the recipe, the artifact's size, the timing, the
compliance audit's verdicts and the legality statement under Issue #1017's four conditions (docs/legality.md), and
how to reproduce it."""

from __future__ import annotations

from typing import Any

from golf.quant.code_size import ARTIFACT_LIMIT_BYTES
from golf.submit.runs import SubmittedRun

CONDITIONS = {
    "C1_causality": ("C1, causality", "the probability of token t depends only on the artifact and the tokens "
                     "before t: every window is scored with a causal mask, and no state carries from later tokens"),
    "C2_normalization": ("C2, normalization", "each score is -log p from a softmax over the whole vocabulary (the "
                         "soft-capped logits of the tied head), a distribution that sums to 1"),
    "C3_score_before_update": ("C3, score before update", "a token is scored before any weight update that has seen "
                               "it"),
    "C4_single_pass": ("C4, single pass", "one left-to-right pass: each validation token is scored exactly once, and "
                       "no score is chosen among alternatives or redone"),
}


def _num(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def readme(doc: dict[str, Any], runs: list[SubmittedRun], recipe: dict[str, Any]) -> str:
    cfg = runs[0].config
    nproc = int(cfg["hardware"]["nproc_per_node"])
    ttt = cfg["ttt"]
    std = f" (std {doc['val_bpb_std']:.5f})" if doc["val_bpb_std"] is not None else ""
    lines = [f"# {doc['name']}", "",
             f"**val_bpb {doc['val_bpb']:.5f}**{std}, mean over {len(runs)} seed(s) "
             f"({', '.join(map(str, doc['seeds']))}); largest artifact {doc['artifact_bytes_max']:,} bytes of "
             f"{ARTIFACT_LIMIT_BYTES:,}; track `{doc['track']}`. Made with golf (`python -m golf.submit`).", ""]
    if "comparison_baseline_bpb" in doc:
        p = f", p = {doc['p_value']:.2g} ({doc['p_value_test']})" if "p_value" in doc else \
            " (no p-value: it needs two seeds or more on each side)"
        lines += [f"Against {doc['comparison_baseline']} (val_bpb {doc['comparison_baseline_bpb']:.5f}): "
                  f"{doc['delta_vs_baseline_bpb']:+.5f} bpb{p}.", ""]
    lines += ["## Results", "", "| seed | val_bpb | val_loss | artifact bytes | steps | train time | eval time |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for seed, r in doc["seed_results"].items():
        lines.append(f"| {seed} | {r['val_bpb']:.8f} | {r['val_loss']:.8f} | {r['artifact_bytes']:,} | "
                     f"{_num(r['steps'], ',')} | {_num(r['train_time_s'], '.1f')} s | {_num(r['eval_time_s'], '.1f')} s |")
    lines += ["", f"The score is {_headline(cfg)}, of the artifact as loaded from disk.", "",
              "## Recipe", "", "Every setting that differs from the challenge's baseline run (golf's "
              "`experiment=baseline`); the whole config is embedded in train_gpt.py.", "",
              "| setting | value |", "| --- | --- |"]
    lines += [f"| `{key}` | `{value}` |" for key, value in recipe.items()]
    q = cfg["quant"]
    lines += ["", "## Artifact size", "",
              f"model (`{q['encoder'] if q.get('encoder') else 'round-to-nearest'}` weights, `{q['compressor']}` level "
              f"{q['level']}): at most {doc['model_bytes_max']:,} bytes; code: train_gpt.py, {doc['code_bytes']:,} bytes "
              f"(golf's modules for this run's code path, minified, lzma-compressed and embedded); total at most "
              f"{doc['artifact_bytes_max']:,} of {ARTIFACT_LIMIT_BYTES:,} bytes. The tokenizer is not counted.", "",
              "## Timing", "", f"Trained and evaluated on `hardware={doc['hardware']}` ({nproc} process(es) a node). "
              + ("The challenge's budgets (600 s of training, 600 s of evaluation) hold on this machine: "
                 f"train_under_600s {doc['compliance']['train_under_600s']}, eval_under_600s "
                 f"{doc['compliance']['eval_under_600s']}." if doc["hardware"] == "8xh100" else
                 "The challenge's 600 s budgets are for 8xH100: these times are not a claim about them; rerun on "
                 "8xH100 before a record submission."), ""]
    lines += _audit(runs) + _legality(runs, ttt) + _reproduce(doc, cfg, nproc)
    return "\n".join(lines) + "\n"


def _headline(cfg: dict[str, Any]) -> str:
    if cfg["ttt"]["protocol"] != "none":
        return f"score-first test-time training (`ttt={cfg['ttt']['name']}`, method `{cfg['ttt']['method']}`)"
    if cfg["eval"]["stride"] > 0:
        return f"sliding-window evaluation (stride {cfg['eval']['stride']})"
    return "the standard evaluation (non-overlapping windows)"


def _audit(runs: list[SubmittedRun]) -> list[str]:
    lines = ["## Compliance audit", "", "golf's behavioural audit (`audit.enabled=true`, compliance.json of each seed "
             "in this folder) reran each seed's evaluation on the first validation tokens:", "",
             "| seed | check | verdict | finding |", "| --- | --- | --- | --- |"]
    for run in runs:
        for name, check in (run.compliance or {}).get("checks", {}).items():
            if isinstance(check, dict):
                verdict = "PASS" if check.get("passed") else ("INFO" if check.get("passed") is None else "FAIL")
                reason = str(check.get("reason", "")).replace("|", "\\|")
                lines.append(f"| {run.seed} | {name} | {verdict} | {reason} |")
    return lines + [""]


def _legality(runs: list[SubmittedRun], ttt: dict[str, Any]) -> list[str]:
    lines = ["## Legality (Issue #1017's four conditions)", ""]
    for key, (title, claim) in CONDITIONS.items():
        verdicts = {str((r.compliance or {}).get("checks", {}).get(key, {}).get("passed")) for r in runs}
        audited = "PASS on every seed" if verdicts == {"True"} else f"audit: {', '.join(sorted(verdicts))}"
        extra = ""
        if key == "C3_score_before_update":
            extra = (f": score-first TTT scores each chunk of {ttt['chunk_tokens']:,} tokens under inference mode, "
                     "then adapts on it for the next chunks; it starts from the artifact as loaded from disk"
                     if ttt["protocol"] != "none" else ": no test-time training, the weights never change")
        lines.append(f"- **{title}**: {claim}{extra}. Audit: {audited}.")
    return lines + ["", "Nothing of the validation set reaches training, the export or its calibration.", ""]


def _reproduce(doc: dict[str, Any], cfg: dict[str, Any], nproc: int) -> list[str]:
    seeds = " ".join(map(str, doc["seeds"]))
    launch = f"torchrun --standalone --nproc_per_node={nproc} train_gpt.py" if nproc > 1 else "python train_gpt.py"
    return ["## Reproducing", "", "```",
            "pip install -r requirements.txt",
            f"for seed in {seeds}; do SEED=$seed {launch} | tee train_seed$seed.log; done", "```", "",
            "It reads `./data/datasets/<dataset>/` and `./data/tokenizers/<tokenizer>` (the challenge's layout; "
            "`DATA_PATH` and `TOKENIZER_PATH` point elsewhere), trains, writes the artifact (`ARTIFACT_PATH`, default "
            "artifact.golf), scores it as loaded from disk and ends with the score's line, as the records' logs do. "
            "golf need not be installed. It refuses a tokenizer or validation shards other than the run's (it "
            "carries their sha256): another tokenizer of the same vocabulary size would change the byte counts.", "",
            _commit_line(doc), "",
            "## Files", "", "- train_gpt.py: the code (self-extracting)",
            "- train_seed<seed>.log: each golf run's train.log", "- compliance_seed<seed>.json: each seed's audit",
            "- submission.json, requirements.txt, README.md", ""]


def _commit_line(doc: dict[str, Any]) -> str:
    run, bundled = doc["golf_commit"]["run"], doc["golf_commit"]["bundled"]
    line = f"The runs were made with golf commit `{run['commit'] or 'unknown'}` ({run['state']} tree)"
    if run["state"] == "clean" and run["commit"] == bundled["commit"]:
        return line + "; train_gpt.py embeds that golf's modules."
    return (line + f"; train_gpt.py embeds the modules of golf `{bundled['commit'] or 'unknown'}` ({bundled['state']} "
            "tree). The run's tree was not clean or its commit is unknown, so golf.submit could not check that the "
            "two are the same code: compare the script's last line with the table above before submitting.")

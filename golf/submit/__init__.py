"""`python -m golf.submit RUN_OR_SWEEP_DIR [submit.track=...] [submit.name=...]`: a finished run (or a sweep of seeds)
made into a challenge records folder, records/<track>/<date>_<name>/, holding a self-contained train_gpt.py, a
submission.json, a README.md and the runs' logs and compliance.json files (docs/submitting.md).

The parts, one idea each:
    command.py          the command line (argparse with key=value settings, like golf.report: no Hydra)
    settings.py         SubmitSettings, the submit.* keys, and their checks
    runs.py             the runs found in the directory, and the refusals (not compliant, over budget, seeds)
    bundle.py           train_gpt.py: golf's modules for the run's code path, minified and compressed, with its config
    minify.py           the modules' source made small (no docstrings, comments or annotations)
    standalone_main.py  what train_gpt.py runs: train -> export -> score, the records' log lines
    standalone_config.py  the run's config as golf's dataclasses without omegaconf
    provenance.py       the run's data digests and golf commit the script carries, and its refusal of other data
    submission_json.py  submission.json
    readme.py           README.md
    folder.py           the folder written
This package's __init__ imports nothing: train_gpt.py embeds it as a package.
"""

"""The submit.* settings of `python -m golf.submit DIR key=value ...`, and their checks (each names the key, the
value and what is allowed, as golf's config checks do)."""

from __future__ import annotations

import dataclasses
import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from golf.errors import ConfigError

TRACKS = ("10min_16mb", "non_record_16mb")  # the challenge's records/track_<track>/ folders
FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class SubmitSettings:
    track: str = "10min_16mb"
    name: str = ""  # the folder's <name> and submission.json's "name"; "" = the runs' config `name`
    root: str = "outputs"  # the folder is <root>/records/track_<track>/<date>_<name>/
    date: str = ""  # YYYY-MM-DD; "" = today
    author: str = ""
    github_id: str = ""
    blurb: str = ""
    baseline: str = ""  # a records folder (or its submission.json) whose seeds the p-value is computed against
    audits: str = ""  # golf.audit run directories (or folders of them), comma-separated: the audits of multi-GPU runs

    def audit_dirs(self) -> tuple[Path, ...]:
        return tuple(Path(d.strip()) for d in self.audits.split(",") if d.strip())


def parse_settings(args: Sequence[str]) -> SubmitSettings:
    """`submit.key=value` arguments onto SubmitSettings; an unknown key or a bad value is a ConfigError."""
    settings = SubmitSettings()
    known = {f.name for f in dataclasses.fields(SubmitSettings)}
    for arg in args:
        key, sep, value = arg.partition("=")
        name = key.removeprefix("submit.")
        if not sep or not key.startswith("submit.") or name not in known:
            raise ConfigError(key or arg, f"{arg!r} is not a golf.submit setting; write submit.KEY=VALUE with KEY one "
                              f"of {', '.join(sorted(known))}")
        setattr(settings, name, value)
    if settings.track not in TRACKS:
        raise ConfigError("submit.track", f"{settings.track!r} is not allowed; allowed: {', '.join(TRACKS)}")
    if settings.name and not FOLDER_NAME.match(settings.name):
        raise ConfigError("submit.name", f"{settings.name!r} is not allowed; allowed: letters, digits, '.', '_' and "
                          "'-', starting with a letter or digit (it names the folder)")
    if settings.date:
        try:
            datetime.date.fromisoformat(settings.date)
        except ValueError:
            raise ConfigError("submit.date", f"{settings.date!r} is not allowed; allowed: a date as YYYY-MM-DD") from None
    return settings

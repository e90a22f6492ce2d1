"""`python -m golf.data prepare [--force] [data=... key=value ...]`: tokenizer and shards, ready to train on."""

from __future__ import annotations

import sys

from golf.cli import USER_ERRORS, compose, exit_with
from golf.config import to_golf_config
from golf.data.prepare import prepare

USAGE = ("usage: python -m golf.data prepare [--force] [data=shakespeare|text_dir|caseops|fineweb_sp1024|...] "
         "[data.key=value ...]")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "prepare":
        print(f"golf.data: expected the command 'prepare'. {USAGE}", file=sys.stderr)
        sys.exit(2)
    force = "--force" in args
    overrides = [a for a in args[1:] if a != "--force"]
    try:
        cfg = to_golf_config(compose(overrides))
        data = prepare(cfg.data, force=force)
    except USER_ERRORS as err:
        exit_with(err)
    sidecars = f", {len(data.val_byte_files)} byte sidecar(s)" if data.val_byte_files else ""
    print(f"ready: {data.shards_dir} ({len(data.train_files)} train shard(s), {data.train_tokens:,} train tokens, "
          f"{len(data.val_files)} val shard(s), {data.val_tokens:,} val tokens{sidecars}; tokenizer "
          f"{data.tokenizer_path})")


if __name__ == "__main__":
    main()

"""`python -m golf.bench [overrides]`: throughput, FLOP utilization and overheads of training, evaluation and TTT,
measured in one run on this machine -> bench.json in the run directory and a table (golf/benchmark/ does the work).

The same overrides as golf.train choose the model, data, hardware, eval and ttt settings; bench.* sets the sizes of
the measurements (golf/benchmark/config.py). One process; see golf/benchmark/run.py for multi-GPU configs.
"""

from __future__ import annotations

from golf.benchmark.run import bench_job, check_bench
from golf.launch import Entry, main as launch_main

ENTRY = Entry(
    module="golf.bench",
    config_name="bench",
    job=bench_job,
    result=lambda bench: bench["train_tokens_per_s"],
    check=check_bench,
    several_processes=False,
)


def main() -> None:
    launch_main(ENTRY)


if __name__ == "__main__":
    main()

"""Evaluation and TTT throughput, TTT against its arithmetic minimum, and evaluation memory at two validation sizes.

Tokens per second are scored targets per second of wall clock (standard: every target once, with no carried context;
sliding: every target once, each window of eval.seq_len scoring its last `stride`).

TTT's arithmetic minimum is the time of exactly the arithmetic that score-first TTT must do over the same tokens, run
as a bare loop: for each chunk, the forward passes that score its windows (no gradients, the same windows in the same
batches), then, except after the last chunk, ttt.epochs passes of the same adaptation steps (forward, backward,
gradient clipping when ttt.grad_clip > 0, the optimizer's step) over the same rows and the same trainable tensors;
every input already on the device before the clock starts, and nothing read back, counted, logged or recorded
(no byte counting, ledger, schedule or per-chunk record). ttt_time_ratio = TTT's time / this minimum. Only the plain
method (ttt.method=full) has a minimum defined here; other methods report the ratio as null.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from golf.benchmark.memory import MemoryPeak, MemoryWatch, release_free_memory
from golf.benchmark.timing import timed
from golf.data.shards import TokenArray
from golf.data.tokenizer import ByteTables
from golf.evaluate.config import EvalConfig
from golf.evaluate.ttt.config import TTTConfig
from golf.evaluate.ttt.engine import run_ttt
from golf.evaluate.ttt.params import build_optimizer, only_these_train, select_adaptable, set_lr
from golf.evaluate.ttt.plan import adaptation_rows, plan_pieces
from golf.evaluate.windows import Window, evaluate_windows, plan_windows

Autocast = Callable[[], contextlib.AbstractContextManager]


@dataclass
class EvalTiming:
    tokens: int
    time_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.time_s


def time_evaluation(model: torch.nn.Module, val: TokenArray, tables: ByteTables, seq_len: int, stride: Optional[int],
                    batch_seqs: int, device: torch.device, autocast: Autocast) -> EvalTiming:
    """Scored targets per second of evaluate_windows (golf's evaluation) over `val`, after a one-batch warm-up."""
    windows = plan_windows(len(val), seq_len, stride)
    evaluate_windows(model, val, tables, windows[:batch_seqs], batch_seqs, device, autocast)  # warm-up
    result = {}

    def run() -> None:
        result["eval"] = evaluate_windows(model, val, tables, windows, batch_seqs, device, autocast)

    seconds = timed(run, device)
    return EvalTiming(result["eval"].tokens, seconds)


def evaluation_memory(model: torch.nn.Module, val: TokenArray, tables: ByteTables, seq_len: int, batch_seqs: int,
                      device: torch.device, autocast: Autocast) -> MemoryPeak:
    """Peak memory of one standard evaluation of `val` (golf's evaluate_windows, no per-token arrays kept)."""
    windows = plan_windows(len(val), seq_len)
    release_free_memory()  # the allocator settings of the watch, then one batch under them, before watching
    evaluate_windows(model, val, tables, windows[:batch_seqs], batch_seqs, device, autocast)
    with MemoryWatch(device) as watch:
        evaluate_windows(model, val, tables, windows, batch_seqs, device, autocast)
    return watch.peak


def ttt_settings(ttt: TTTConfig) -> tuple[TTTConfig, bool]:
    """The TTT the bench times: the configured one when it is score-first, else conf/ttt/score_first's recipe
    (TTTConfig's defaults with protocol score_first); and whether it was the configured one."""
    if ttt.protocol == "score_first":
        return ttt, True
    return dataclasses.replace(ttt, name="score_first", protocol="score_first"), False


def _measure_in_child(conn, model_cfg, vocab_size, state, val_files, n_tokens, tables, seq_len, batch_seqs, hw) -> None:
    from golf.hardware import autocast, setup_device
    from golf.model.gpt import GPT

    device = setup_device(hw)
    model = GPT(model_cfg, vocab_size)
    model.load_state_dict(state)
    del state
    model = model.to(device).eval()
    val = TokenArray.from_files(val_files, max_tokens=n_tokens)
    conn.send(evaluation_memory(model, val, tables, seq_len, batch_seqs, device, lambda: autocast(hw, device)))
    conn.close()


def evaluation_memory_fresh(model, val_files, n_tokens: int, tables: ByteTables, seq_len: int, batch_seqs: int,
                            hw) -> MemoryPeak:
    """evaluation_memory in a fresh process (spawned) that holds only the model and the validation memmap, so that
    nothing the bench did before (training, TTT, their allocator state) shows up in the evaluation's memory, and its
    peak RSS is that of a process that only evaluates."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    child = ctx.Process(target=_measure_in_child, args=(send, model.cfg, model.vocab_size, state,
                                                        [str(f) for f in val_files], n_tokens, tables, seq_len,
                                                        batch_seqs, hw))
    child.start()
    send.close()
    try:
        peak = receive.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"the evaluation-memory process exited with code {child.exitcode} before reporting")
    child.join()
    return peak


@dataclass
class TTTTiming:
    tokens: int  # scored targets
    adapted_tokens: int
    chunks: int
    time_s: float
    score_time_s: float
    adapt_time_s: float
    minimum_s: Optional[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.time_s

    @property
    def time_ratio(self) -> Optional[float]:
        return None if self.minimum_s is None else self.time_s / self.minimum_s


def _device_batches(val: TokenArray, windows: list[Window], batch_seqs: int, device: torch.device):
    out = []
    for i in range(0, len(windows), batch_seqs):
        rows = np.stack([val.read(w.start, w.start + w.length + 1) for w in windows[i:i + batch_seqs]])
        tokens = torch.from_numpy(rows.astype(np.int64)).to(device)
        out.append((tokens[:, :-1], tokens[:, 1:]))
    return out


def minimum_ttt_loop(model: torch.nn.Module, val: TokenArray, windows: list[Window], cfg: TTTConfig,
                     eval_cfg: EvalConfig, device: torch.device, autocast: Autocast,
                     warmup: bool = False, compile_model: bool = False) -> Callable[[], None]:
    """The bare loop of the arithmetic minimum (module docstring), inputs prepared now; call the result to run it.
    warmup: only the first chunk's first scoring batch and first adaptation step (first calls, allocations).
    compile_model: the forward is torch.compile(model), as the engine's is with hardware.compile."""
    pieces = plan_pieces(windows, cfg.chunk_tokens)
    if warmup:
        pieces = pieces[:1]
        pieces[0].windows = pieces[0].windows[:eval_cfg.batch_seqs]
        cfg = dataclasses.replace(cfg, epochs=1)
    work = []
    for c, piece in enumerate(pieces):
        score = _device_batches(val, piece.windows, eval_cfg.batch_seqs, device)
        adapt = []
        if c < len(pieces) - 1 or warmup:
            x, y, mask = adaptation_rows(val, piece.lo, piece.hi, eval_cfg.seq_len)
            for b in range(0, len(x), cfg.batch_seqs):
                m = mask[b:b + cfg.batch_seqs]
                keep = m.any(axis=1)
                adapt.append((torch.from_numpy(x[b:b + cfg.batch_seqs][keep]).to(device),
                              torch.from_numpy(y[b:b + cfg.batch_seqs][keep]).to(device),
                              torch.from_numpy(m[keep]).to(device), int(m.sum())))
        work.append((score, adapt[:1] if warmup else adapt))
    tensors = [a.tensor for a in select_adaptable(model, cfg)]
    optimizer = build_optimizer(select_adaptable(model, cfg), cfg)
    set_lr(optimizer, cfg.lr)  # one lr throughout: the minimum has no schedule
    forward = torch.compile(model) if compile_model else model

    def run() -> None:
        with only_these_train(model, tensors):
            for score, adapt in work:
                model.eval()
                with torch.no_grad():
                    for x, y in score:
                        with autocast():
                            forward(x, y, reduction="none")
                model.train()
                for _ in range(cfg.epochs):
                    for x, y, m, n_valid in adapt:
                        with autocast():
                            nll = forward(x, y, reduction="none").float()
                        (torch.where(m, nll, 0.0).sum() / n_valid).backward()
                        if cfg.grad_clip > 0:
                            torch.nn.utils.clip_grad_norm_(tensors, cfg.grad_clip)
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)

    return run


def time_ttt(model: torch.nn.Module, val: TokenArray, tables: ByteTables, cfg: TTTConfig, eval_cfg: EvalConfig,
             device: torch.device, autocast: Autocast, compile_model: bool = False) -> TTTTiming:
    """Score-first TTT (golf's engine) on a copy of `model`, then its arithmetic minimum on another copy. Neither
    timed run pays for first calls: without compile a warm-up of the minimum's first step goes first; with compile
    each one runs once untimed (compiling) and is then timed on the same copy (weights differ, shapes and graphs
    do not)."""
    windows = plan_windows(len(val), eval_cfg.seq_len, eval_cfg.stride or None)
    quiet = dataclasses.replace(eval_cfg, save_token_nll=False)
    minimum = cfg.method == "full" and cfg.protocol == "score_first"
    run_minimum = None
    if minimum:
        if compile_model:
            run_minimum = minimum_ttt_loop(copy.deepcopy(model), val, windows, cfg, quiet, device, autocast,
                                           compile_model=True)
            timed(run_minimum, device)
        else:
            timed(minimum_ttt_loop(copy.deepcopy(model), val, windows, cfg, quiet, device, autocast, warmup=True),
                  device)
            run_minimum = minimum_ttt_loop(copy.deepcopy(model), val, windows, cfg, quiet, device, autocast)
    result, adapted = {}, copy.deepcopy(model)  # the copy is made before the clock starts

    def engine() -> None:
        result["ttt"] = run_ttt(adapted, val, tables, windows, cfg, quiet, device, autocast, log=lambda _line: None,
                                compile_model=compile_model)

    if compile_model:
        engine()  # compiles
    ttt_s = timed(engine, device)
    minimum_s = timed(run_minimum, device) if run_minimum is not None else None
    out = result["ttt"]
    return TTTTiming(out.result.tokens, out.adapted_tokens, len(out.chunks), ttt_s, out.score_time_s,
                     out.adapt_time_s, minimum_s)

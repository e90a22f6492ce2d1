"""A submission's train_gpt.py: golf's modules that one run's code path needs, minified, compressed and embedded in
one self-extracting script, with the run's config.

Why embed golf's own modules rather than generate a new script: the script then runs the very code the run ran
(the same model, optimizers, export and evaluation), so it reproduces the run's artifact and val_bpb bit for bit on a
CPU, and nothing has to be kept in step with golf by hand. The records do the same (lzma + base85, exec'd).

The modules are the ones golf/submit/standalone_main.py imports, followed import by import (golf/quant/code_size.py's
walk: an import inside a function counts), with the chosen TTT method's module. What the script's environment has
no use for is left out: golf.config (Hydra's schema) is replaced by golf/submit/standalone_config.py, and tqdm,
which golf draws progress bars with, is a silent stand-in when the environment lacks it. The script needs torch,
numpy, sentencepiece, brotli and zstandard (golf/quant/compressors.py imports both), nothing of golf's.
"""

from __future__ import annotations

import base64
import json
import lzma
from pathlib import Path
from typing import Any, Optional

from golf import REPO_ROOT
from golf.quant.code_size import _golf_imports, _module_file
from golf.submit.minify import minify
from golf.submit.provenance import VAL_GLOB, data_digests, golf_commit
from golf.submit.runs import SubmitError
from golf.submit.standalone_config import standalone_dict

ENTRY = "golf/submit/standalone_main.py"
TTT_METHODS = "golf/evaluate/ttt/methods"
# modules a path module imports that the script must not ship, with what stands in for them there
REPLACED = {"golf/config.py": "golf.submit.standalone_config"}
REQUIREMENTS = ("torch", "numpy", "sentencepiece", "brotli", "zstandard")
LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]

# The whole script: the payload (golf's modules as name -> [is a package, source], and the run's config and data
# names), an importer of those modules, golf.config as the plain config module, tqdm as a stand-in when absent, then
# the run.
HEADER = '''\
import base64,json,lzma,sys,importlib.abc as A,importlib.util as U
P=json.loads(lzma.decompress(base64.b85decode(%(payload)r),format=lzma.FORMAT_RAW,filters=[{"id":lzma.FILTER_LZMA2}]))
M=P["modules"]
class F(A.MetaPathFinder,A.Loader):
 def find_spec(s,n,p=None,t=None):
  if n in M:return U.spec_from_loader(n,s,is_package=M[n][0])
 def create_module(s,sp):return None
 def exec_module(s,m):
  if M[m.__name__][0]:m.__path__=[]
  m.__file__=__file__
  exec(compile(M[m.__name__][1],"<"+m.__name__+">","exec"),m.__dict__)
sys.meta_path.insert(0,F())
try:import tqdm
except ImportError:M["tqdm"]=[0,"""class tqdm:
 def __init__(s,*a,**k):pass
 def __getattr__(s,n):return lambda *a,**k:None
 def __iter__(s):return iter(())
 def __enter__(s):return s
 def __exit__(s,*a):pass
 write=staticmethod(lambda *a,**k:None)"""]
%(aliases)s
import golf.submit.standalone_main as S
if __name__=="__main__":S.main(P["run"],__file__)
'''


def bundled_files(ttt_method: str | None, root: Path = REPO_ROOT) -> list[str]:
    """The golf source files the script embeds: the entry's imports, followed, and the TTT method's module."""
    starts = [ENTRY]
    if ttt_method is not None:
        starts.append(f"{TTT_METHODS}/{ttt_method}.py")
    files: list[str] = []
    todo = list(starts)
    while todo:
        file = todo.pop(0)
        if file in files or file in REPLACED:
            continue
        files.append(file)
        parts = Path(file).with_suffix("").parts[:-1]
        names = _golf_imports((root / file).read_text(encoding="utf-8"), ".".join(parts))
        names |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        todo += sorted(f for f in (_module_file(n, root) for n in names) if f is not None and f not in files)
    return files


def module_name(file: str) -> str:
    path = Path(file).with_suffix("")
    return ".".join(path.parts[:-1] if path.name == "__init__" else path.parts)


def provenance(cfg: Any, git_text: Optional[str]) -> dict[str, Any]:
    """What the script checks and records beyond its code: the sha256 of the run's tokenizer and validation shards
    (as they are at cfg.data's paths) and the golf commit of `git_text` (a run's git.txt)."""
    tokenizer, shards = Path(cfg.data.tokenizer), Path(cfg.data.shards_dir)
    if not tokenizer.is_file() or not any(shards.glob(VAL_GLOB)):
        raise SubmitError(f"the run's data is not on disk (data.tokenizer={tokenizer}, data.shards_dir={shards} with "
                          f"its {VAL_GLOB}): train_gpt.py carries their sha256 so that it is scored on the same "
                          "tokenizer and validation text; submit where the run's data is")
    return {"data": data_digests(tokenizer, shards), "golf": golf_commit(git_text)}


def script_text(cfg: Any, dataset: str, tokenizer: str, git_text: Optional[str], root: Path = REPO_ROOT) -> str:
    """train_gpt.py for `cfg` (a GolfConfig), reading ./data/datasets/<dataset> and ./data/tokenizers/<tokenizer>
    unless DATA_PATH / TOKENIZER_PATH say otherwise, refusing data other than the run's (provenance); `git_text`:
    the run's git.txt. The same config, data, commit and golf give the same bytes."""
    method = cfg.ttt.method if cfg.ttt.protocol != "none" else None
    modules = {module_name(f): [f.endswith("__init__.py"), minify((root / f).read_text(encoding="utf-8"))]
               for f in bundled_files(method, root)}
    run = {"config": standalone_dict(cfg), "dataset": dataset, "tokenizer": tokenizer, **provenance(cfg, git_text)}
    packed = json.dumps({"modules": modules, "run": run}, sort_keys=True, separators=(",", ":")).encode("utf-8")
    payload = base64.b85encode(lzma.compress(packed, format=lzma.FORMAT_RAW, filters=LZMA_FILTERS)).decode("ascii")
    aliases = "\n".join(f'import {target} as _a;sys.modules["{module_name(file)}"]=_a'
                        for file, target in REPLACED.items())
    return HEADER % {"payload": payload, "aliases": aliases}


def code_bytes_submission(cfg: Any, dataset: str = "dataset", tokenizer: str = "tokenizer.model") -> int:
    """The size of the train_gpt.py a submission of `cfg` ships, counted as the challenge counts code: the file's
    bytes, with this golf's commit (what the run's git.txt says) and the data's digests. The data names change it by
    a few bytes only."""
    from golf.runs import git_description

    return len(script_text(cfg, dataset, tokenizer, git_description()).encode("utf-8"))

"""scripts/download_fineweb.py without the network: its arguments, the repositories and paths of each variant, and
whole downloads from a fake hub laid out as the Hugging Face repositories are, read back through data=fineweb_*."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from golf import CONF_DIR, REPO_ROOT
from golf.cli import compose
from golf.config import to_golf_config
from golf.data.prepare import DataConfig, locate, prepare
from golf.data.shards import TokenArray, read_shard, shard_name
from test_prepare import VOCAB, data_config, write_varied_corpus


def load_script():
    spec = importlib.util.spec_from_file_location("download_fineweb", REPO_ROOT / "scripts" / "download_fineweb.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


script = load_script()


class FakeHub:
    """Dataset repositories as folders: <root>/<owner>/<name>/<path in the repository>; fetch records each call."""

    def __init__(self, root: Path):
        self.root = root
        self.calls: list[tuple[str, str]] = []

    def put(self, repo_id: str, remote_path: str, source: Path) -> None:
        target = self.root / repo_id / remote_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)

    def put_text(self, repo_id: str, remote_path: str, text: str) -> None:
        target = self.root / repo_id / remote_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def fetch(self, repo_id: str, remote_path: str) -> Path:
        self.calls.append((repo_id, remote_path))
        path = self.root / repo_id / remote_path
        if not path.is_file():
            raise FileNotFoundError(f"404: {repo_id}/{remote_path}")
        return path


def publish(hub: FakeHub, variant, data, n_train: int) -> None:
    """A prepared build as the variant's repository holds it, with its manifest."""
    folder = f"datasets/datasets/{variant.dataset}"
    for file in [*data.train_files[:n_train], *data.val_files, *data.val_byte_files]:
        hub.put(variant.repo_id, f"{folder}/{file.name}", file)
    hub.put(variant.repo_id, f"datasets/tokenizers/{variant.tokenizer}", data.tokenizer_path)
    manifest = {"datasets": [{"name": "some_other_set", "stats": {"files_train": 9, "files_val": 9}},
                             {"name": variant.dataset, "stats": {"files_train": n_train,
                                                                 "files_val": len(data.val_files)}}]}
    hub.put_text(variant.repo_id, "datasets/manifest.json", json.dumps(manifest))


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """A small corpus prepared twice, plain and CaseOps, with several validation shards: stand-ins for FineWeb."""
    root = tmp_path_factory.mktemp("builds")
    corpus = write_varied_corpus(root / "texts", n_files=60)
    plain = prepare(data_config(corpus, root / "plain", shard_tokens=4_000), log=lambda line: None)
    cased = prepare(replace(data_config(corpus, root / "caseops", shard_tokens=4_000), transform="caseops"),
                    log=lambda line: None)
    assert len(plain.val_files) >= 2 and len(cased.val_byte_files) == len(cased.val_files) >= 2
    return plain, cased


def small(variant_name: str, monkeypatch, **changes):
    """The variant with the test tokenizer's size (and whatever else the test changes)."""
    variant = replace(script.VARIANTS[variant_name], vocab_size=VOCAB, **changes)
    monkeypatch.setitem(script.VARIANTS, variant_name, variant)
    return variant


# --- arguments and file lists ----------------------------------------------------------------------------------------

def test_arguments():
    args = script.build_parser().parse_args([])
    assert (args.variant, args.train_shards, args.out, args.verify_only) == \
        ("sp1024", None, Path("outputs/data/fineweb"), False)
    assert set(script.VARIANTS) == {"sp1024", "sp4096", "sp8192", "sp8192_caseops"}
    for bad in (["--variant", "sp2048"], ["--train-shards", "-1"], ["--train-shards", "many"]):
        with pytest.raises(SystemExit) as err:
            script.main(bad, fetch=lambda *a: pytest.fail("nothing is fetched after a bad argument"))
        assert err.value.code == 2


def test_the_records_repositories():
    repos = {name: v.repo_id for name, v in script.VARIANTS.items()}
    assert repos == {"sp1024": "willdepueoai/parameter-golf", "sp4096": "kevclark/parameter-golf",
                     "sp8192": "kevclark/parameter-golf", "sp8192_caseops": "romeerp/parameter-golf-caseops-v1"}
    assert [name for name, v in script.VARIANTS.items() if v.byte_sidecars] == ["sp8192_caseops"]


def test_remote_files_follow_the_repository_layout():
    sp1024, caseops = script.VARIANTS["sp1024"], script.VARIANTS["sp8192_caseops"]
    assert script.remote_files(sp1024, script.Manifest(80, 1), 2) == [
        "datasets/datasets/fineweb10B_sp1024/fineweb_val_000000.bin",
        "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin",
        "datasets/datasets/fineweb10B_sp1024/fineweb_train_000001.bin",
        "datasets/tokenizers/fineweb_1024_bpe.model",
    ]
    assert len(script.remote_files(sp1024, script.Manifest(80, 1), None)) == 82
    folder = "datasets/datasets/fineweb10B_sp8192_lossless_caps_caseops_v1_reserved"
    assert script.remote_files(caseops, script.Manifest(80, 2), 0) == [
        f"{folder}/fineweb_val_000000.bin", f"{folder}/fineweb_val_bytes_000000.bin",
        f"{folder}/fineweb_val_000001.bin", f"{folder}/fineweb_val_bytes_000001.bin",
        "datasets/tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model",
    ]
    with pytest.raises(SystemExit, match="has 80 train shards"):
        script.remote_files(caseops, script.Manifest(80, 2), 81)
    assert script.local_path(Path("/o"), f"{folder}/fineweb_val_000000.bin") == \
        Path("/o/datasets/fineweb10B_sp8192_lossless_caps_caseops_v1_reserved/fineweb_val_000000.bin")
    with pytest.raises(ValueError):
        script.local_path(Path("/o"), "tokenizers/x.model")


@pytest.mark.parametrize("name", sorted(script.VARIANTS))
def test_each_variant_has_a_data_option_that_finds_its_files(name):
    """data=<option> data.path=<out>/datasets/<dataset> points at the very tokenizer the script puts in place."""
    variant = script.VARIANTS[name]
    assert (CONF_DIR / "data" / f"{variant.data_option}.yaml").is_file()
    out = Path("/downloads")
    data = to_golf_config(compose([f"data={variant.data_option}",
                                   f"data.path={script.shards_dir(out, variant)}"])).data
    assert Path(data.tokenizer).resolve() == (out / "tokenizers" / variant.tokenizer).resolve()
    assert data.vocab_size == variant.vocab_size and data.source == "fineweb"
    assert (data.transform == "caseops") == variant.byte_sidecars


# --- whole downloads from the fake hub -------------------------------------------------------------------------------

def fineweb_config(variant, out: Path) -> DataConfig:
    path = str(script.shards_dir(out, variant))
    return DataConfig(name=variant.data_option, source="fineweb", path=path, shards_dir=path,
                      tokenizer=str(out / "tokenizers" / variant.tokenizer), vocab_size=variant.vocab_size,
                      transform="caseops" if variant.byte_sidecars else "none")


def test_download_sp1024_then_train_on_it(builds, tmp_path, capsys, monkeypatch):
    plain, _ = builds
    variant = small("sp1024", monkeypatch, val_tokens=plain.val_tokens)
    hub = FakeHub(tmp_path / "hub")
    publish(hub, variant, plain, n_train=3)
    out = tmp_path / "fineweb"
    assert script.main(["--train-shards", "2", "--out", str(out)], fetch=hub.fetch) == 0
    printed = capsys.readouterr().out
    assert f"data=fineweb_sp1024 data.path={out}/datasets/fineweb10B_sp1024" in printed
    assert "matches the challenge's" in printed
    assert {repo for repo, _ in hub.calls} == {"willdepueoai/parameter-golf"}
    folder = out / "datasets" / "fineweb10B_sp1024"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [shard_name("train", 0), shard_name("train", 1)] + [f.name for f in plain.val_files])
    assert (out / "tokenizers" / variant.tokenizer).read_bytes() == plain.tokenizer_path.read_bytes()
    found = locate(fineweb_config(variant, out))
    assert found.val_tokens == plain.val_tokens and len(found.train_files) == 2 and found.val_byte_files == []

    hub.calls.clear()  # a second run keeps what is there: only the manifest is fetched again
    assert script.main(["--train-shards", "2", "--out", str(out)], fetch=hub.fetch) == 0
    assert [path for _, path in hub.calls] == ["datasets/manifest.json"]

    monkeypatch.setitem(script.VARIANTS, "sp1024", replace(variant, val_tokens=plain.val_tokens + 1))
    assert script.main(["--verify-only", "--out", str(out)]) == 1
    assert "incomplete or different data" in capsys.readouterr().err


def test_download_caseops_with_its_byte_sidecars(builds, tmp_path, capsys, monkeypatch):
    _, cased = builds
    variant = small("sp8192_caseops", monkeypatch)
    hub = FakeHub(tmp_path / "hub")
    publish(hub, variant, cased, n_train=2)
    out = tmp_path / "fineweb"
    assert script.main(["--variant", "sp8192_caseops", "--out", str(out)], fetch=hub.fetch) == 0
    printed = capsys.readouterr().out
    sidecar_total = sum(int(read_shard(f).sum()) for f in cased.val_byte_files)
    assert f"byte sidecars: {sidecar_total:,} bytes" in printed
    assert f"data=fineweb_sp8192_caseops data.path={out}/datasets/{variant.dataset}" in printed
    assert {repo for repo, _ in hub.calls} == {"romeerp/parameter-golf-caseops-v1"}

    found = locate(fineweb_config(variant, out))
    assert [f.name for f in found.val_byte_files] == [f.name for f in cased.val_byte_files]
    val = TokenArray.from_files(found.val_files)
    assert val.byte_counts is not None and int(val.byte_counts.read(0, len(val)).sum()) == sidecar_total

    (script.shards_dir(out, variant) / shard_name("val_bytes", 1)).unlink()
    assert script.main(["--variant", "sp8192_caseops", "--verify-only", "--out", str(out)]) == 1
    assert "fineweb_val_bytes_000001.bin" in capsys.readouterr().err


def test_a_manifest_without_the_dataset_is_named(builds, tmp_path, monkeypatch):
    plain, _ = builds
    variant = small("sp4096", monkeypatch)
    hub = FakeHub(tmp_path / "hub")
    hub.put_text(variant.repo_id, "datasets/manifest.json", json.dumps({"datasets": [{"name": "fineweb10B_sp1024"}]}))
    with pytest.raises(SystemExit) as err:
        script.main(["--variant", "sp4096", "--out", str(tmp_path / "out")], fetch=hub.fetch)
    assert "no dataset fineweb10B_sp4096" in str(err.value) and "fineweb10B_sp1024" in str(err.value)


def test_a_plain_tokenizer_under_a_caseops_name_is_refused(builds, tmp_path, capsys, monkeypatch):
    plain, cased = builds
    variant = small("sp8192_caseops", monkeypatch)
    hub = FakeHub(tmp_path / "hub")
    publish(hub, variant, replace(cased, tokenizer_path=plain.tokenizer_path), n_train=1)
    assert script.main(["--variant", "sp8192_caseops", "--out", str(tmp_path / "out")], fetch=hub.fetch) == 1
    assert "lacks CaseOps' operator pieces" in capsys.readouterr().err

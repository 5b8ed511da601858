"""A user's mistake reads as one line (issue: "One error, once, at the end").

Every mistake below is caught the same way on every rank before the process group exists (rlvr.check_start,
eval.check_start), printed once by rank 0 as `error: <reason>` and every rank exits 1 (model.exit_user_error):
no traceback of ours, no other rank's output, no gloo "Connection reset". Under torchrun, torchrun adds its own
summary after our line; nothing of ours follows it. Single-process commands print the one line and nothing else.
"""
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
# torchrun's own lines: its logging (W1203 15:42:52.255000 pid file:line] ...) and its failure summary.
TORCHRUN_LOG_RE = re.compile(r"^[WEI]\d{4} \d\d:\d\d:\d\d")


def launch(args, torchrun, cwd=REPO):
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun \
        else [sys.executable]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(prefix + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)


def our_lines(proc):
    """Our processes' output: everything but torchrun's log lines and its failure summary (which starts at the
    agent's own "Traceback" and runs to the end)."""
    text = proc.stdout + proc.stderr
    lines = text.splitlines()
    if "ChildFailedError" in text:
        cut = max(i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):"))
        assert all("torch" in line or "<frozen runpy>" in line for line in lines[cut:] if line.startswith("  File")), \
            text[-3000:]
        lines = lines[:cut]
    return [line for line in lines if line.strip() and not TORCHRUN_LOG_RE.match(line) and not set(line) <= {"*"}
            and "OMP_NUM_THREADS" not in line]


def assert_one_line(proc, reason, torchrun):
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1 if not torchrun else proc.returncode != 0, text[-3000:]
    assert "Connection reset" not in text and "GLHF" not in text, text[-3000:]
    ours = our_lines(proc)
    errors = [line for line in ours if line.startswith("error: ")]
    assert len(errors) == 1, text[-3000:]
    assert reason in errors[0], errors[0]
    assert ours[-1] == errors[0], ours[-5:]  # the reason is the last thing our processes print
    assert not any("Traceback" in line for line in ours), text[-3000:]
    if torchrun:  # torchrun names rank 0's exit status 1 as the root cause
        assert re.search(r"Root Cause.*?rank\s*: 0 .*?exitcode\s*: 1 ", text, re.S), text[-2000:]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, data_dir):
    """A bad examples file, an existing run folder, a run checkpointed by one rank, an empty data folder, and a
    model folder with a truncated weights file."""
    from model import save_hf_folder, tiny_model, tiny_tokenizer
    root = tmp_path_factory.mktemp("user_errors")
    (root / "bad.jsonl").write_text(json.dumps({"problem": "2+2?", "answer": "4"}) + "\n" + '{"problem": "3+3?"\n')
    (root / "run").mkdir()
    (root / "run" / "metrics.jsonl").write_text('{"step": 1}\n')
    (root / "run1" / "ckpt" / "step_000002").mkdir(parents=True)
    (root / "run1" / "ckpt" / "step_000002" / "trainer.json").write_text('{"step": 2, "world_size": 1}')
    (root / "empty").mkdir()
    tok = tiny_tokenizer()
    damaged = Path(save_hf_folder(tiny_model(tok), tok, str(root / "damaged")))
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    (root / "notmodel").mkdir()
    return root, damaged, data_dir


TINY = ["rlvr.py", "--preset", "tiny", "--example", "pi1"]

# (what the user got wrong, the command after `torchrun --nproc_per_node=2` or `python`, the reason's words)
RLVR_MISTAKES = [
    ("negative steps", TINY + ["--steps", "-3"], "--steps -3: must be at least 1"),
    ("T = 0 with G = 4", TINY + ["--temperature", "0"], "--temperature 0.0: RLVR samples at T > 0"),
    ("unknown example", ["rlvr.py", "--preset", "tiny", "--example", "pi0"], "--example pi0: unknown example 'pi0'"),
    ("bad data file", ["rlvr.py", "--preset", "tiny", "--example", "{root}/bad.jsonl"], "bad.jsonl line 2: not valid JSON"),
    ("existing run folder", TINY + ["--out", "{root}/run"], "metrics.jsonl exists: pass --resume"),
    ("missing model folder", TINY + ["--model", "{root}/no/such/model"], "no such folder"),
    ("damaged model folder", TINY + ["--model", "{damaged}"], "model.safetensors is damaged"),
    ("missing data", TINY + ["--data-dir", "{root}/empty"], "dsr_sub.jsonl not found"),
    ("world size does not divide the batch", TINY + ["--batch-prompts", "3"], "must divide over 2 ranks"),
    ("resume with another world size", TINY + ["--resume", "--out", "{root}/run1"], "written by 1 ranks, this run has 2"),
]
EVAL_MISTAKES = [
    ("no such model path", ["eval.py", "--model", "{root}/no/such/model", "--engine", "torch"], "no such folder"),
    ("a folder that is not a model", ["eval.py", "--model", "{root}/notmodel", "--engine", "torch"],
     "not a model folder (no config.json in it)"),
    ("a truncated safetensors file", ["eval.py", "--model", "{damaged}", "--engine", "torch"],
     "model.safetensors is damaged (truncated"),
]


def fill(args, folders):
    root, damaged, data_dir = folders
    out = [a.format(root=root, damaged=damaged) for a in args]
    if out[0] in ("rlvr.py", "eval.py") and "--data-dir" not in out:
        out += ["--data-dir", str(data_dir)]
    return out


@pytest.mark.parametrize("what, args, reason", RLVR_MISTAKES, ids=[case[0] for case in RLVR_MISTAKES])
def test_each_mistake_is_caught_before_the_process_group(folders, monkeypatch, what, args, reason):
    """What rlvr.main does on every rank before the process group exists (parse_config, check_start), here in this
    process as a rank of 2 would run it: each mistake raises UserError with its reason. How that error reaches the
    user under torchrun (one line, from rank 0) is the next test's, on a few of these."""
    import rlvr
    from model import UserError
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError) as error:
        rlvr.check_start(rlvr.parse_config(fill(args, folders)[1:]))
    assert reason in str(error.value)


def test_mistakes_under_torchrun_are_one_line_from_rank_0(folders):
    """Under `torchrun --nproc_per_node=2`: status != 0, `error: <reason>` exactly once, as the last line of ours, no
    traceback of ours, no connection reset, rank 0's exit status 1 named as the root cause. One case of each
    kind: a bad flag (parse_config), a bad file (check_start), one that depends on the world size, and eval.py's."""
    cases = [case for case in RLVR_MISTAKES if case[0] in ("negative steps", "bad data file",
                                                             "resume with another world size")] + EVAL_MISTAKES[-1:]
    assert len(cases) == 4
    with ThreadPoolExecutor(len(cases)) as pool:  # mostly imports: all at once keeps this near 20 s
        procs = list(pool.map(lambda case: launch(fill(case[1], folders), torchrun=True), cases))
    for (what, _, reason), proc in zip(cases, procs):
        try:
            assert_one_line(proc, reason, torchrun=True)
        except AssertionError as e:
            raise AssertionError(f"{what}: {e}") from None


@pytest.mark.parametrize("what, args, reason", [RLVR_MISTAKES[1], *EVAL_MISTAKES],
                         ids=lambda x: x if isinstance(x, str) and " " in x else None)
def test_each_mistake_in_one_process_is_one_line(folders, what, args, reason):
    proc = launch(fill(args, folders), torchrun=False)
    assert_one_line(proc, reason, torchrun=False)
    assert (proc.stdout + proc.stderr).strip() == f"error: {proc.stderr.strip().split('error: ', 1)[1]}"


def test_score_only_on_a_malformed_file_is_one_line(tmp_path):
    bad = tmp_path / "rows.jsonl"
    bad.write_text(json.dumps({"benchmark": "math500", "response": "\\boxed{1}", "gold": "1"}) + "\n{oops\n")
    proc = launch(["eval.py", "--score-only", bad], torchrun=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == f"error: {bad} line 2: not valid JSON (Expecting property name enclosed in double quotes)"

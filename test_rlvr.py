"""Tests for rlvr.py (CPU): config precedence, batching helpers, and end-to-end runs of the real loop under
`torchrun --nproc_per_node=2` over gloo: metrics, HF export, exact resume, parity across world sizes and
micro-batch budgets, learning on the toy preset, and clear failures. This file is also the torchrun worker
of the parity test (`torchrun ... test_rlvr.py parity OUT`)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import model as M
import rlvr

HERE = Path(__file__).resolve().parent
STEP_KEYS = {"step", "reward/mean", "reward/format", "rollout/len_mean", "rollout/truncated_frac",
             "rollout/zero_adv_frac", "loss/pg", "loss/kl", "loss/entropy", "loss/clip_frac", "grad_norm",
             "sync/logp_gap", "perf/gen_s", "perf/train_s", "perf/sync_s", "perf/tokens_per_s", "eval/math500"}


def torchrun(args, nproc=2, port=29620, timeout=600):
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={port}", *args]
    return subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def without_timings(metrics):
    return [{k: v for k, v in m.items() if not k.startswith("perf/")} for m in metrics]


def resumed_equals_straight(common, out, ports):
    """`common` for 4 steps into out/a; for 2 steps, then --resume to 4, into out/b (3 torchruns on `ports`).
    Asserts each succeeds and that b's metrics equal a's but for timings; returns a's rows."""
    for args, port in zip(([4, "a"], [2, "b"], [4, "b", "--resume"]), ports):
        proc = torchrun(common + ["--steps", str(args[0]), "--out", str(out / args[1]), *args[2:]], port=port)
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = rows(out / "a" / "metrics.jsonl"), rows(out / "b" / "metrics.jsonl")
    assert [m["step"] for m in b] == [1, 2, 3, 4] and without_timings(a) == without_timings(b)
    return a


def parity_runs(script, tmp_path, port):
    """{(world size, micro-batch budget): result} from `torchrun script parity OUT` on 1 and then 2 ranks."""
    runs = {}
    for world in (1, 2):
        out = tmp_path / f"world{world}.pt"
        proc = torchrun([script, "parity", str(out)], nproc=world, port=port + world)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for budget, result in torch.load(out).items():
            runs[world, budget] = result
    return runs


# ---------------------------------------------------------------------------------------------------
# config and helpers (no processes)
# ---------------------------------------------------------------------------------------------------

def test_config_precedence_defaults_preset_flags():
    cfg = rlvr.parse_config([])
    assert (cfg.model, cfg.lr, cfg.kl_coef, cfg.entropy_coef, cfg.batch_prompts, cfg.samples_per_prompt) == (
        "Qwen/Qwen2.5-Math-1.5B", 1e-6, 0.001, 0.001, 128, 8)
    assert (cfg.temperature, cfg.max_response_tokens, cfg.micro_batch_tokens, cfg.grad_clip) == (0.6, 3072, 24000, 1.0)
    r1 = rlvr.parse_config(["--preset", "r1-distill-qwen-1.5b"])
    assert r1.max_response_tokens == 8192 and r1.model == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    tiny = rlvr.parse_config(["--preset", "tiny", "--steps", "7", "--no-eval-at-start", "--kl-coef", "0"])
    assert (tiny.model, tiny.engine, tiny.steps, tiny.kl_coef, tiny.eval_at_start) == ("tiny", "torch", 7, 0.0, False)
    assert tiny.batch_prompts == rlvr.PRESETS["tiny"]["batch_prompts"]  # preset over default
    assert rlvr.parse_config(["--example", "pi1,pi13"]).out == "runs/qwen2.5-math-1.5b-pi1+pi13"


@pytest.mark.parametrize("argv, message", [(["--preset", "nope"], "unknown preset"),
                                           (["--no-such-flag", "1"], "unrecognized arguments"),
                                           (["--agg", "sum"], "--agg must be one of")])
def test_config_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        rlvr.parse_config(argv)
    assert message in capsys.readouterr().err


def test_help_lists_every_field_with_its_comment():
    out = subprocess.run([sys.executable, "rlvr.py", "--help"], cwd=HERE, capture_output=True, text=True).stdout
    for field in ("--micro-batch-tokens", "--kl-coef", "--entropy-coef", "--pg-coef", "--resume", "--engine"):
        assert field in out
    assert "per-rank token budget" in out


def test_batch_for_step_is_a_pure_function_of_the_step():
    cfg = rlvr.parse_config(["--batch-prompts", "4"])
    one_shot = [{"index": 124}] * 4
    assert rlvr.batch_for_step(one_shot, 1, cfg) == one_shot
    full = [{"index": i} for i in range(10)]  # 2 batches per epoch, 2 examples dropped per epoch
    epoch1 = [x["index"] for s in (1, 2) for x in rlvr.batch_for_step(full, s, cfg)]
    assert len(set(epoch1)) == 8 and epoch1 == [x["index"] for s in (1, 2) for x in rlvr.batch_for_step(full, s, cfg)]
    assert [x["index"] for x in rlvr.batch_for_step(full, 3, cfg)] != epoch1[:4]  # a new permutation next epoch


def test_micro_batches_respect_the_token_budget():
    lengths = [10, 50, 20, 50, 5, 300, 40]
    groups = rlvr.micro_batches(lengths, token_budget=100)
    assert sorted(i for g in groups for i in g) == list(range(7))
    assert groups[0] == [5]  # longer than the budget: alone
    for g in groups:
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 100
    assert rlvr.micro_batches(lengths, token_budget=10**6) == [[5, 1, 3, 6, 2, 0, 4]]


# ---------------------------------------------------------------------------------------------------
# end-to-end: torchrun --nproc_per_node=2 over gloo
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    proc = torchrun(["rlvr.py", "--preset", "tiny", "--example", "pi1", "--steps", "4", "--out", str(out),
                     "--data-dir", str(data_dir)])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_tiny_run_writes_metrics_samples_history_and_config(tiny_run):
    metrics = rows(tiny_run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    for m in metrics:
        assert STEP_KEYS <= set(m), STEP_KEYS - set(m)
        assert 0 <= m["reward/mean"] <= 1 and 0 <= m["eval/math500"] <= 1
    assert metrics[0]["loss/kl"] == 0.0  # the policy equals the reference before its first update
    assert metrics[0]["sync/logp_gap"] < 1e-5  # the engine samples with the policy's weights
    history = json.loads((tiny_run / "accuracy_history.json").read_text())
    assert list(history) == ["124"] and len(history["124"]) == 4  # π1 is DSR-sub row 124, one entry per step
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["preset"] == "tiny" and config["world_size"] == 2 and "git_commit" in config
    samples = rows(tiny_run / "samples.jsonl")
    assert samples[0]["answer"] == "12.8" and "wind" in samples[0]["prompt"]


def test_tiny_run_exports_a_loadable_bf16_hf_folder(tiny_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = tiny_run / "hf" / "step_000004"
    config = json.loads((folder / "config.json").read_text())
    assert config["torch_dtype"] == "bfloat16" and config["dtype"] == "bfloat16"
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.dtype == torch.bfloat16
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.eos_token == "<|endoftext|>" and "Please reason step by step" in tok.chat_template
    assert not list((tiny_run / "hf").glob("*.tmp")) and not list((tiny_run / "ckpt").glob("*.tmp"))


def test_resume_reproduces_the_uninterrupted_run_exactly(tiny_run, data_dir, tmp_path):
    common = ["rlvr.py", "--preset", "tiny", "--example", "pi1", "--out", str(tmp_path), "--data-dir", str(data_dir)]
    first = torchrun(common + ["--steps", "2"], port=29621)
    assert first.returncode == 0, first.stderr[-3000:]
    refused = torchrun(common + ["--steps", "4"], port=29622)  # the folder holds a run: --resume is required
    assert refused.returncode != 0 and "pass --resume" in refused.stderr
    # what a kill -9 during step 3 leaves: its samples row, and a metrics row cut short mid-write
    with open(tmp_path / "samples.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "response": "from the killed run"}) + "\n")
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "reward/me')
    second = torchrun(common + ["--steps", "4", "--resume"], port=29623)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed, straight = rows(tmp_path / "metrics.jsonl"), rows(tiny_run / "metrics.jsonl")
    assert [m["step"] for m in resumed] == [1, 2, 3, 4]
    assert without_timings(resumed) == without_timings(straight)
    assert rows(tmp_path / "samples.jsonl") == rows(tiny_run / "samples.jsonl")  # the killed run's row is gone


def test_broken_and_half_written_checkpoints_are_never_loaded(tiny_run, data_dir, tmp_path):
    import shutil
    shutil.copytree(tiny_run, tmp_path / "run")
    ckpt = tmp_path / "run" / "ckpt"
    (ckpt / "step_000009.tmp").mkdir()  # a newer, half-written checkpoint: ignored
    shard = next((ckpt / "step_000004").glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[:100])  # the complete one, corrupted
    proc = torchrun(["rlvr.py", "--preset", "tiny", "--example", "pi1", "--steps", "6", "--resume", "--out",
                     str(tmp_path / "run"), "--data-dir", str(data_dir)], port=29624)
    assert proc.returncode != 0
    assert f"broken checkpoint {ckpt / 'step_000004'}" in proc.stderr


def test_nan_weights_stop_the_run_with_a_clear_message(data_dir, tmp_path):
    proc = torchrun(["rlvr.py", "--preset", "tiny", "--example", "pi1", "--steps", "3", "--lr", "1e30",
                     "--eval-every", "0", "--out", str(tmp_path), "--data-dir", str(data_dir)], port=29625)
    assert proc.returncode != 0
    assert "FloatingPointError: the engine's logits hold NaN or inf" in proc.stderr


def test_a_crashed_rank_ends_the_run_with_a_clear_message(data_dir, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29626", "rlvr.py",
           "--preset", "tiny", "--example", "pi1", "--steps", "500", "--eval-every", "0", "--save-every", "0",
           "--out", str(tmp_path), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not (tmp_path / "metrics.jsonl").exists() and time.time() < deadline:
            time.sleep(0.5)
        rank1 = [pid for pid in os.listdir("/proc") if pid.isdigit() and _is_rank1_of(int(pid), tmp_path)]
        assert len(rank1) == 1
        os.kill(int(rank1[0]), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)  # the other rank must not hang in a collective
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "Root Cause" in stderr and "rank      : 1" in stderr and "SIGKILL" in stderr


def _is_rank1_of(pid, out):
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"RANK=1" in environ and str(out).encode() in cmdline


def test_toy_preset_learns_to_reward_at_least_0_9_within_5_minutes(tmp_path):
    """Chance level is ~0.05; the real loop (torchrun, FSDP2, TorchEngine, sync, reward.py) must climb to ≥ 0.9.
    This single test proves signs, advantages, masking and sync together."""
    start = time.time()
    proc = torchrun(["rlvr.py", "--preset", "toy", "--out", str(tmp_path)], port=29627, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rewards = [m["reward/mean"] for m in rows(tmp_path / "metrics.jsonl")]
    assert sum(rewards[:3]) / 3 < 0.2  # starts at chance
    assert max(rewards) >= 0.9 and sum(rewards[-5:]) / 5 >= 0.9
    assert time.time() - start < 300


# ---------------------------------------------------------------------------------------------------
# parity: one optimizer step, world size 1 vs 2, small vs large micro-batch budget
# ---------------------------------------------------------------------------------------------------

def fixed_rollout(tok, n_prompts=4, G=4):
    """Deterministic sequences: prompt groups 0-1 with long responses, 2-3 with short ones, so that ranks
    end up with different micro-batch counts (and the equalising split is exercised)."""
    g = torch.Generator().manual_seed(0)
    prompt = tok(rlvr.data.chat_prompt(tok, "What is 3 + 4?"), add_special_tokens=False).input_ids
    seqs, rewards = [], []
    for p in range(n_prompts):
        for i in range(G):
            n = int(torch.randint(30, 45, (1,), generator=g)) if p < 2 else int(torch.randint(2, 8, (1,), generator=g))
            seqs.append({"example": {"index": 0}, "prompt_ids": prompt,
                         "response_ids": torch.randint(0, 256, (n,), generator=g).tolist(), "engine_logp": None})
            rewards.append(float((p + i) % 3 == 0))
    return seqs, torch.tensor(rewards)


def parity_worker(out_path):
    rank, world, device = M.setup_distributed()
    tok = M.tiny_tokenizer()
    results = {}
    for budget in (180, 100_000):
        cfg = rlvr.parse_config(["--preset", "tiny", "--micro-batch-tokens", str(budget), "--kl-coef", "0.1",
                                 "--entropy-coef", "0.01", "--grad-clip", "1e9"])  # the paper's AdamW, lr 1e-6
        policy = M.shard(M.LogProbLM(M.tiny_model(tok, seed=3)), device)
        ref = M.shard(M.LogProbLM(M.tiny_model(tok, seed=4)), device).requires_grad_(False)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        seqs, rewards = fixed_rollout(tok)
        adv = rlvr.L.group_advantages(rewards.view(-1, 4)).view(-1)
        per_rank = len(seqs) // world
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        local_seqs, local_adv = seqs[mine], adv[mine]
        ref_logp = rlvr.sequence_logprobs(ref, local_seqs, cfg, tok.pad_token_id, device)
        rlvr.update_policy(cfg, policy, optimizer, local_seqs, local_adv, ref_logp, None, tok.pad_token_id, device)
        results[budget] = {"param": {n: p.full_tensor() for n, p in policy.named_parameters()},
                           "grad": {n: p.grad.full_tensor() for n, p in policy.named_parameters()}}
    if rank == 0:
        torch.save(results, out_path)
    M.end_distributed()  # not dist.destroy_process_group(): model.end_distributed says why


def test_one_step_is_identical_across_world_sizes_and_micro_batch_budgets(tmp_path):
    """The gradient (to 1e-5 relative: any scaling, masking or counting error shows here; Adam's first step
    is blind to a gradient's scale) and the parameters after the paper's AdamW step (to 1e-6)."""
    runs = parity_runs("test_rlvr.py", tmp_path, port=29630)
    reference = runs[1, 100_000]
    scale = max(g.abs().max().item() for g in reference["grad"].values())
    initial = M.LogProbLM(M.tiny_model(M.tiny_tokenizer(), seed=3)).state_dict()
    assert max((p - initial[n]).abs().max().item() for n, p in reference["param"].items()) > 5e-7  # it moved
    for key, result in runs.items():
        grad_err = max((result["grad"][n] - g).abs().max().item() for n, g in reference["grad"].items())
        param_err = max((result["param"][n] - p).abs().max().item() for n, p in reference["param"].items())
        assert grad_err <= 1e-5 * scale, (key, grad_err, scale)
        assert param_err < 1e-6, (key, param_err)


if __name__ == "__main__":
    if sys.argv[1] == "parity":
        parity_worker(sys.argv[2])

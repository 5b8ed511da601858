"""bench.py — the measurements that span the training path: the one benchmark for a GPU (a training step, the
log-prob kernel, the engine, the weight sync; one table) and the host memory of building the models.

Why its own file: the GPU table times rlvr.py's update, loss.py's kernel, rollout.py's engine and sync on one model,
so it belongs to none of them (STYLE: entry points and benchmarks sit on top of what they import; the files' own
--bench flags each measure one piece on CPU). Random weights at a real shape (model.py's configs), torch only:
no vLLM, no downloads, one process (a one-rank FSDP2 group).

    python bench.py                          # one GPU: Qwen2.5-Math-1.5B shape, bf16 compute (not yet run on a GPU)
    python bench.py --shape tiny --tokens 2048 --seq-len 512 --gen-tokens 8 --batch 16   # the same table on CPU
    python bench.py --write-model 0.5b DIR   # random weights at Qwen2.5-0.5B's shape as an HF folder
    torchrun --nproc_per_node 2 bench.py --build-memory --model DIR --engine torch   # peak host RSS per rank of rlvr.build

--build-memory takes any rlvr.py flags after it and prints one JSON line: per rank, the peak resident set (VmHWM
of /proc/self/status, GiB) before rlvr.build, after it, and after the first sync_weights into the engine.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.distributed as dist

import loss as L
import model as M

SHAPES = {"1.5b": M.QWEN25_MATH_1_5B, "0.5b": M.QWEN25_0_5B}
# Dense bf16 peak of the GPU, TFLOP/s (vendor data sheets: H100 / H200 SXM 989, A100 312), for MFU.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def qwen2_config(shape):
    from transformers import Qwen2Config
    if shape == "tiny":
        return M.tiny_model(M.tiny_tokenizer()).config
    return Qwen2Config(**SHAPES[shape])


def vm_gib(key):
    """VmHWM (peak) or VmRSS (now) of this process, GiB."""
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(key)).split()[1]) / 2**20


def timed(fn, repeats, device):
    """Best wall time of `repeats` calls after one warm-up call (which pays allocation and kernel selection)."""
    fn()
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def peak_gib(fn, device):
    """Peak GPU memory above what was allocated before `fn` (None on CPU: see loss.py --bench for host memory)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def train_step_rows(config, args, device):
    """FSDP2 (one rank) policy with fp32 master weights and bf16 compute, gradient checkpointing, one micro-batch of
    --tokens tokens (sequences of --seq-len: a 200-token prompt and the rest response) through rlvr.update_policy:
    forward, backward, clip, AdamW. MFU counts 6·N + 12·layers·hidden·seq FLOPs per token (PaLM, App. B), not the
    recomputation of checkpointing or of the chunked log-prob kernel."""
    import rlvr
    from transformers import AutoModelForCausalLM
    with torch.device(device):
        lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    mp = torch.bfloat16 if args.dtype == "bf16" else None
    policy = M.shard(M.LogProbLM(lm), device, mp_dtype=mp).train()
    cfg = rlvr.parse_config(["--micro-batch-tokens", str(args.tokens), "--kl-coef", "0", "--dtype", args.dtype,
                             "--samples-per-prompt", "1",  # mini_batch_parts deals whole prompt groups
                             "--logprob-chunk-tokens", "512", "--max-response-tokens", str(args.seq_len)])
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_seqs, prompt = max(1, args.tokens // args.seq_len), min(200, args.seq_len // 2)
    g = torch.Generator().manual_seed(0)
    seqs = [{"prompt_ids": torch.randint(0, config.vocab_size, (prompt,), generator=g).tolist(),
             "response_ids": torch.randint(0, config.vocab_size, (args.seq_len - prompt,), generator=g).tolist(),
             "engine_logp": None} for _ in range(n_seqs)]
    adv = torch.randn(n_seqs, generator=g).to(device)
    step = lambda: rlvr.update_policy(cfg, policy, optimizer, seqs, adv, None, None, 0, device)  # noqa: E731
    seconds = timed(step, args.repeats, device)
    tokens = n_seqs * args.seq_len
    n_params = sum(p.numel() for p in policy.parameters())
    flops = (6 * n_params + 12 * config.num_hidden_layers * config.hidden_size * args.seq_len) * tokens
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in torch.cuda.get_device_name()), None) \
        if device.type == "cuda" else None
    peak = args.peak_tflops or peak
    mfu = f"{100 * flops / seconds / (peak * 1e12):.1f} %" if peak else "n/a (no peak figure for this device)"
    rows = [("train step: fwd+bwd+clip+AdamW", f"{seconds:.3f} s",
             f"{n_seqs} × {args.seq_len} tokens, {n_params / 1e6:,.1f} M params, {args.dtype} compute over fp32"),
            ("train step: tokens/s", f"{tokens / seconds:,.0f}", "the micro-batch's tokens / step time"),
            ("train step: MFU", mfu, f"{flops / 1e12:.1f} TFLOP per step; peak {peak or '?'} TFLOP/s")]
    return rows, policy


def logprob_rows(config, args, device):
    """loss.py's chunked log-prob + entropy kernel against the naive full-logits version, forward + backward on
    --tokens hidden states, in the compute dtype (the lm_head GEMM in bf16, softmax in fp32, as in training)."""
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.tokens, config.hidden_size, generator=g).to(device, dtype).requires_grad_(True)
    weight = (torch.randn(config.vocab_size, config.hidden_size, generator=g) * 0.02).to(device, dtype)
    weight.requires_grad_(True)
    targets = torch.randint(0, config.vocab_size, (args.tokens,), generator=g).to(device)
    rows = []
    for name, fn in (("chunked (loss.py)", lambda: L.token_logprobs_and_entropy(hidden, weight, targets, 0.6, 512)),
                     ("naive (full logits)", lambda: L._naive_logprobs_and_entropy(hidden, weight, targets, 0.6))):
        def run():
            logp, entropy = fn()
            (logp.sum() + 0.001 * entropy.sum()).backward()
            hidden.grad = weight.grad = None
        try:
            seconds, peak = timed(run, args.repeats, device), peak_gib(run, device)
        except torch.OutOfMemoryError:
            rows.append((f"log-prob kernel, {name}", "out of memory", f"{args.tokens} tokens"))
            continue
        memory = f"peak {peak:.2f} GiB above inputs" if peak is not None else "peak memory: GPU only"
        rows.append((f"log-prob kernel, {name}", f"{seconds:.3f} s", f"{args.tokens} tokens fwd+bwd; {memory}"))
    return rows


def engine_rows(config, policy, args, device):
    """TorchEngine at batch --batch (prompts × 8 samples), every row running --gen-tokens (an EOS never sampled),
    in the compute dtype; then sync_weights from the FSDP2 policy into it, one decoder layer at a time."""
    from rollout import TorchEngine, sync_weights
    from transformers import AutoModelForCausalLM
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    with torch.device(device):
        lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    engine = TorchEngine(lm, [config.vocab_size], dtype=dtype)  # id vocab_size: never sampled
    sync_seconds = [sync_weights(policy, engine) for _ in range(args.repeats + 1)][1:]
    prompt = torch.randint(0, config.vocab_size, (150,), generator=torch.Generator().manual_seed(1)).tolist()
    n = 8
    generate = lambda: engine.generate([prompt] * (args.batch // n), n=n, temperature=0.6,  # noqa: E731
                                       max_tokens=args.gen_tokens, seed=0)
    seconds = timed(generate, 1, device)
    return [(f"TorchEngine: tokens/s at batch {args.batch}", f"{args.batch * args.gen_tokens / seconds:,.0f}",
             f"{args.batch // n} prompts × {n}, 150-token prompt, {args.gen_tokens} new tokens, {args.dtype}"),
            ("sync_weights into TorchEngine", f"{min(sync_seconds):.3f} s",
             f"fp32 FSDP2 shards → {args.dtype} engine, best of {len(sync_seconds)}")]


def gpu_table(args):
    """The benchmark: one table, on the GPU when there is one (CPU otherwise, for the test)."""
    rank, world, device = M.setup_distributed()
    config = qwen2_config(args.shape)
    start = time.perf_counter()
    rows, policy = train_step_rows(config, args, device)
    rows += logprob_rows(config, args, device)
    rows += engine_rows(config, policy, args, device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"bench.py --shape {args.shape} on {name}, torch {torch.__version__}, random weights "
          f"({time.perf_counter() - start:.0f} s)")
    print("| measurement | value | setting |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    M.end_distributed()


def build_memory(rlvr_argv):
    """Peak host RSS per rank of rlvr.build with these rlvr.py flags and the first sync_weights into the engine,
    which run() does next (it fills a torch engine's copy, whose pages are not resident before). Under torchrun."""
    import rlvr
    cfg = rlvr.parse_config(rlvr_argv)
    rank, world, device = M.setup_distributed()
    before = vm_gib("VmHWM")
    tokenizer, lm, engine, policy, *_ = rlvr.build(cfg, rank, world, device)
    built = vm_gib("VmHWM")
    rlvr.sync_weights(policy, engine)
    out = [None] * world
    dist.all_gather_object(out, {"rank": rank, "peak_before_gib": round(before, 3), "peak_build_gib": round(built, 3),
                                 "peak_first_sync_gib": round(vm_gib("VmHWM"), 3), "rss_gib": round(vm_gib("VmRSS"), 3)})
    if rank == 0:
        print(json.dumps({"flags": rlvr_argv, "ranks": out}))
    M.end_distributed()


def write_model(shape, path):
    """Random weights (seed 0) at a shape of model.py as an fp32 HF folder with the tiny tokenizer."""
    from transformers import Qwen2ForCausalLM
    torch.manual_seed(0)
    M.save_hf_folder(Qwen2ForCausalLM(qwen2_config(shape)), M.tiny_tokenizer(), path)
    print(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=("tiny", *SHAPES), default="1.5b", help="model shape (default 1.5b)")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16", help="compute dtype (default bf16, the GPU run's)")
    p.add_argument("--tokens", type=int, default=24000, help="micro-batch token budget (default 24000, the paper's)")
    p.add_argument("--seq-len", type=int, default=3000, help="tokens per sequence in the micro-batch (default 3000)")
    p.add_argument("--batch", type=int, default=128, help="engine batch: prompts × 8 samples (default 128)")
    p.add_argument("--gen-tokens", type=int, default=1024, help="new tokens per engine row (default 1024)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats after a warm-up (default 3)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak for MFU "
                   "(default: known for H100/H200/A100)")
    p.add_argument("--write-model", nargs=2, metavar=("SHAPE", "DIR"), help="write random weights as an HF folder")
    p.add_argument("--build-memory", action="store_true", help="peak host RSS per rank of rlvr.build (under "
                   "torchrun); every argument after it is an rlvr.py flag")
    argv = sys.argv[1:] if argv is None else argv
    if "--build-memory" in argv:  # everything after it is rlvr.py's
        build_memory(argv[argv.index("--build-memory") + 1:])
        return
    args = p.parse_args(argv)
    if args.write_model:
        write_model(*args.write_model)
    else:
        args.seq_len = min(args.seq_len, args.tokens)
        gpu_table(args)


if __name__ == "__main__":
    main()

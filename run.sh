#!/usr/bin/env bash
# run.sh — the paper's experiments (Wang et al. 2025, arXiv 2504.20571), one line each, for one node of 8 GPUs
# (80 GB each), after `pip install -r requirements.txt` and `python data/prepare.py`. Every run writes to
# runs/<name>/; evaluate a checkpoint with `python eval.py --model runs/<name>/hf/step_NNNNNN`.
# Expected numbers are the paper's (MATH500 / average of six benchmarks, with its own evaluation pipeline; see
# README "How our numbers can differ"). NOTHING HERE HAS BEEN RUN YET: no GPU was available to this project.
# Comment out what you do not want; each line is a full 2,000-step run (durations not measured here).
set -euo pipefail
R="torchrun --nproc_per_node=8 rlvr.py"

# --- Main results (Qwen2.5-Math-1.5B; base model 36.0 / 17.6) ---
$R --example pi1 --out runs/pi1                      # 1-shot π1 → 73.6 / 35.7 (abstract)
$R --example pi1,pi13 --out runs/pi1+pi13            # 2-shot {π1, π13} → 74.8 / 36.6 (abstract)
$R --example dsr_sub --out runs/dsr_sub              # full set DSR-sub (1,209 examples) → 73.6 / 35.9 (abstract)
$R --example pi13 --out runs/pi13                    # other single examples: see the paper for each
$R --example pi2 --out runs/pi2                      #   "
$R --example pi1209 --out runs/pi1209                #   (the lowest historical variance; zero accuracy in the history)
$R --example pi1,pi2,pi13,pi1209 --out runs/4shot    # 4-shot: 32 rows each, as merge_pi1_pi2_pi13_pi1209_r128

# --- Ablations of the loss (Table 5), π1 ---
$R --example pi1 --kl-coef 0 --entropy-coef 0 --out runs/pi1-pg-only           # policy gradient only
$R --example pi1 --entropy-coef 0 --out runs/pi1-no-entropy                    # without the entropy bonus
$R --example pi1 --kl-coef 0 --out runs/pi1-no-kl                              # without the KL penalty
$R --example pi1 --weight-decay 0 --out runs/pi1-no-wd                         # without weight decay
$R --example pi1 --pg-coef 0 --kl-coef 0 --out runs/pi1-entropy-only           # entropy loss alone: +27.4 on MATH500 (abstract)
$R --example pi1 --label 12.7 --out runs/pi1-label-12.7                        # wrong labels (Table 5 rows 11-13)
$R --example pi1 --label 4 --out runs/pi1-label-4
$R --example pi1 --label 9292725 --out runs/pi1-label-9292725

# --- Format reward, label noise (Appendix C.2.3, C.2.4) ---
$R --example pi1 --reward format --out runs/pi1-format-reward                  # 1 if any \boxed{} is present
$R --example dsr_sub --perturb-labels 0.6 --out runs/dsr_sub-noise60           # 60% of labels replaced (see README: assumption)
$R --example dsr_sub --perturb-labels 0.9 --out runs/dsr_sub-noise90

# --- PPO instead of GRPO (Table 4 / Table 10 PPO rows), π1; verl's GAE and critic defaults (README "PPO") ---
$R --preset qwen2.5-math-1.5b-ppo --example pi1 --out runs/pi1-ppo               # → the paper's Table 4 PPO {π1} row: NOT QUOTED, its text could not be retrieved here

# --- Other models; presets keep the 1.5B script's settings (the release has no scripts for them) ---
$R --preset qwen2.5-math-7b --example pi1 --out runs/7b-pi1
$R --preset llama-3.2-3b-instruct --example pi1 --out runs/llama3b-pi1
$R --preset r1-distill-qwen-1.5b --example pi1 --out runs/r1distill-pi1        # 8,192 response tokens

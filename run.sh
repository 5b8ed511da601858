#!/usr/bin/env bash
# run.sh — the paper's experiments (Wang et al. 2025, arXiv 2504.20571 v3), one line each, for one node of 8 GPUs
# (80 GB each), after `pip install -r requirements.txt`, `python data/prepare.py` and, for the ARC rows,
# `python data/prepare.py --arc`. Every training run writes runs/<name>/ with an HF export every 20 steps.
#
# Each experiment line ends in `# Table N, <row>: <the paper's number>` (docs/experiments.md lists the same rows).
# "M / A" is MATH500 / the average of the six math benchmarks, as the paper reports them with its own grader
# (eval.py's `paper_accuracy`); other numbers name their benchmark. A training row's number is the paper's
# checkpoint with the best six-benchmark average (App. B.5): `$E --sweep runs/<name>` evaluates every export and
# prints the best. Rows from Tables 3 and 5 are the best checkpoint per benchmark (MATH500, AIME24), as reported.
# NOTHING HERE HAS BEEN RUN YET: no GPU was available to this project. Comment out what you do not want; a
# training line is a full 2,000-step run unless it says otherwise (durations not measured here).
set -euo pipefail
R="torchrun --nproc_per_node=8 rlvr.py"
E="torchrun --nproc_per_node=8 eval.py"
BASE=Qwen/Qwen2.5-Math-1.5B

# --- Base model and main results, Qwen2.5-Math-1.5B (Table 8 = Fig. 1) ---
$E --model $BASE --out runs/eval-base                              # Table 8, NA (base model): 36.0 / 17.6
$R --example pi1 --out runs/pi1                                    # Table 8, {π1}: 72.8 / 35.0
$R --example pi13 --out runs/pi13                                  # Table 8, {π13}: 73.6 / 35.7
$R --example pi1,pi13 --out runs/pi1+pi13                          # Table 8, {π1, π13}: 74.8 / 36.6
$R --example dsr_sub --out runs/dsr_sub                            # Table 8, DSR-sub: 73.6 / 35.9

# --- Early checkpoints of the π1 run (Table 15, "Acc. judge by Qwen-Eval"): the cheapest on-track check. ---
# Only steps 20 and 60 are needed for it: stop the π1 line above after step 60 (or add --steps 60), then run these.
$E --model runs/pi1/hf/step_000020 --benchmarks math500 --out runs/eval-pi1-step20   # Table 15, step 20: MATH500 53.8
$E --model runs/pi1/hf/step_000060 --benchmarks math500 --out runs/eval-pi1-step60   # Table 15, step 60: MATH500 69.8
$E --model runs/pi1/hf/step_000500 --benchmarks math500 --out runs/eval-pi1-step500  # Table 15, step 500: MATH500 70.4
$E --model runs/pi1/hf/step_001300 --benchmarks math500 --out runs/eval-pi1-step1300 # Table 15, step 1300: MATH500 72.2
$E --model runs/pi1/hf/step_001860 --benchmarks math500 --out runs/eval-pi1-step1860 # Table 15, step 1860: MATH500 74.0

# --- Other single examples and few-shot sets (Table 9: best per benchmark / best average; Table 3: MATH500, AIME24) ---
$R --example pi2 --out runs/pi2                                    # Table 9, {π2}: 70.6 / 33.5
$R --example pi1201 --out runs/pi1201                              # Table 9, {π1201}: 71.4 / 33.7
$R --example pi1209 --out runs/pi1209                              # Table 9, {π1209}: 72.2 / 33.5
$R --example pi1,pi2,pi13,pi1209 --out runs/4shot                  # Table 9, {π1, π2, π13, π1209}: 74.4 / 36.0
$R --example pi4 --out runs/pi4                                    # Table 3, {π4}: MATH500 65.6 / AIME24 17.1
$R --example pi7 --out runs/pi7                                    # Table 3, {π7}: MATH500 64.0 / AIME24 12.1
$R --example pi11 --out runs/pi11                                  # Table 3, {π11}: MATH500 64.0 / AIME24 13.3
$R --example pi16 --out runs/pi16                                  # Table 3, {π16}: MATH500 67.0 / AIME24 14.6
$R --example pi17 --out runs/pi17                                  # Table 3, {π17}: MATH500 67.2 / AIME24 13.3
$R --example pi605 --out runs/pi605                                # Table 3, {π605}: MATH500 71.8 / AIME24 14.6
$R --example pi606 --out runs/pi606                                # Table 3, {π606}: MATH500 64.4 / AIME24 14.2
$R --example pi1207 --out runs/pi1207                              # Table 3, {π1207} (wrong label in DSR-sub): MATH500 54.0 / AIME24 9.6
$R --example pi1208 --out runs/pi1208                              # Table 3, {π1208} (too difficult): MATH500 45.0 / AIME24 8.8
$R --example pi1,pi2 --out runs/pi1+pi2                            # Table 3, {π1, π2}: MATH500 72.8 / AIME24 15.0
$R --example pi1,pi2,pi3,pi4,pi5,pi6,pi7,pi8,pi9,pi10,pi11,pi12,pi13,pi14,pi15,pi16 --out runs/16shot   # Table 3, {π1 ... π16}: MATH500 71.6 / AIME24 16.7

# --- Ablations of the loss, π1 (Table 5: MATH500 / AIME24, best per benchmark; PG policy gradient, WD weight decay) ---
$R --example pi1 --pg-coef 0 --weight-decay 0 --kl-coef 0 --entropy-coef 0 --out runs/pi1-no-loss   # Table 5, row 1 (no loss): MATH500 39.8 / AIME24 7.5
$R --example pi1 --weight-decay 0 --kl-coef 0 --entropy-coef 0 --out runs/pi1-pg                    # Table 5, row 2 (PG): MATH500 71.8 / AIME24 15.4
$R --example pi1 --kl-coef 0 --entropy-coef 0 --out runs/pi1-pg-wd                                  # Table 5, row 3 (PG + WD): MATH500 71.4 / AIME24 16.3
$R --example pi1 --entropy-coef 0 --out runs/pi1-no-entropy        # Table 5, row 4 (PG + WD + KL) = Table 14, {π1} outcome without entropy: MATH500 70.8 / AIME24 15.0 (Table 14: 68.2 / 32.6)
$R --example pi1 --entropy-coef 0.003 --out runs/pi1-entropy-0.003 # Table 5, row 6 (entropy coefficient -0.003): MATH500 73.6 / AIME24 15.4
$R --example pi1 --weight-decay 0 --kl-coef 0 --out runs/pi1-pg-entropy                             # Table 5, row 7 (PG + entropy): MATH500 75.6 / AIME24 17.1
$R --example pi1 --pg-coef 0 --entropy-coef 0 --out runs/pi1-wd-kl                                  # Table 5, row 8 (WD + KL): MATH500 39.0 / AIME24 10.0
$R --example pi1 --pg-coef 0 --out runs/pi1-no-pg                                                   # Table 5, row 9 (WD + KL + entropy): MATH500 65.4 / AIME24 7.1
$R --example pi1 --pg-coef 0 --weight-decay 0 --kl-coef 0 --steps 20 --out runs/pi1-entropy-only   # Table 6, +Entropy Loss, 20 steps (= Table 5 row 10): 63.4 / 25.0
$R --example pi1 --label 12.7 --out runs/pi1-label-12.7            # Table 5, row 11 (label 12.7): MATH500 73.4 / AIME24 17.9
$R --example pi1 --label 4 --out runs/pi1-label-4                  # Table 5, row 12 (label 4): MATH500 57.0 / AIME24 9.2
$R --example pi1 --label 9292725 --out runs/pi1-label-9292725      # Table 5, row 13 (label 9292725, the text's; the table prints 929725): MATH500 64.4 / AIME24 9.6

# --- Format reward (Table 14; App. C.2.3 (a)): reward 1 for any \boxed{} answer ---
$R --example dsr_sub --reward format --out runs/dsr_sub-format                        # Table 14, DSR-sub format: 65.0 / 28.7
$R --example dsr_sub --reward format --entropy-coef 0 --out runs/dsr_sub-format-no-entropy   # Table 14, DSR-sub format without entropy: 61.4 / 27.6
$R --example pi1 --reward format --out runs/pi1-format                                # Table 14, {π1} format: 65.4 / 29.2
$R --example pi1 --reward format --entropy-coef 0 --out runs/pi1-format-no-entropy    # Table 14, {π1} format without entropy: 61.6 / 27.6

# --- Random wrong labels (Table 17; App. C.2.4): the paper's procedure, data/prepare.py perturb_labels ---
$R --example dsr_sub --perturb-labels 0.6 --out runs/dsr_sub-noise60                  # Table 17, GRPO DSR-sub 60%: 71.8 / 34.6
$R --example dsr_sub --perturb-labels 0.9 --out runs/dsr_sub-noise90                  # Table 17, GRPO DSR-sub 90%: 67.8 / 31.2

# --- PPO instead of GRPO (Table 4 = Table 17 0% rows; verl's GAE and critic defaults, README "PPO") ---
$R --preset qwen2.5-math-1.5b-ppo --example pi1 --out runs/pi1-ppo                    # Table 4, PPO {π1}: 72.4 / 33.8
$R --preset qwen2.5-math-1.5b-ppo --example dsr_sub --out runs/dsr_sub-ppo            # Table 4, PPO DSR-sub: 72.8 / 35.4
$R --preset qwen2.5-math-1.5b-ppo --example dsr_sub --perturb-labels 0.6 --out runs/dsr_sub-ppo-noise60   # Table 17, PPO DSR-sub 60%: 71.6 / 34.6
$R --preset qwen2.5-math-1.5b-ppo --example dsr_sub --perturb-labels 0.9 --out runs/dsr_sub-ppo-noise90   # Table 17, PPO DSR-sub 90%: 68.2 / 32.9

# --- The simplified prompt π1′ = "Calculate ∛2048", label 12.8 (Table 18; App. C.2.5; docs/experiments.md) ---
$R --example pi1s --out runs/pi1s                                  # Table 18, simplified {π1′}: 65.4 / 30.0

# --- In-context learning instead of RLVR (Table 16; App. C.2.3 (c)): the base models with few-shot demos ---
$E --model $BASE --fewshot pi1 --out runs/eval-base-fewshot-pi1              # Table 16, Qwen2.5-Math-1.5B {π1} in-context: 59.0 / 25.5
$E --model $BASE --fewshot qwen4 --out runs/eval-base-fewshot-qwen4          # Table 16, Qwen2.5-Math-1.5B Qwen official 4 examples: 49.8 / 18.0
$E --model $BASE --fewshot qwen1 --out runs/eval-base-fewshot-qwen1          # Table 16, Qwen2.5-Math-1.5B Qwen official Example 1: 34.6 / 14.2
$E --model Qwen/Qwen2.5-Math-7B --fewshot pi1 --out runs/eval-7b-fewshot-pi1       # Table 16, Qwen2.5-Math-7B {π1} in-context: 75.4 / 37.4
$E --model Qwen/Qwen2.5-Math-7B --fewshot qwen4 --out runs/eval-7b-fewshot-qwen4   # Table 16, Qwen2.5-Math-7B Qwen official 4 examples: 59.2 / 21.7
$E --model Qwen/Qwen2.5-Math-7B --fewshot qwen1 --out runs/eval-7b-fewshot-qwen1   # Table 16, Qwen2.5-Math-7B Qwen official Example 1: 54.0 / 20.6
$E --model Qwen/Qwen2.5-Math-7B --out runs/eval-7b                                    # Table 16, Qwen2.5-Math-7B NA (base model): 51.0 / 22.4

# --- ARC-Easy / ARC-Challenge (Table 1; ours: docs/experiments.md "ARC"). The steps are the paper's best-average
# checkpoints (Table 9 "Best Avg. Step"); use your run's best from `$E --sweep runs/<name>` instead. ---
$E --model $BASE --benchmarks arc_e,arc_c --out runs/eval-base-arc                            # Table 1, base: ARC-E 48.0 / ARC-C 30.2
$E --model runs/pi1/hf/step_001540 --benchmarks arc_e,arc_c --out runs/eval-pi1-arc           # Table 1, {π1}: ARC-E 52.0 / ARC-C 32.2
$E --model runs/pi13/hf/step_002000 --benchmarks arc_e,arc_c --out runs/eval-pi13-arc         # Table 1, {π13}: ARC-E 55.8 / ARC-C 33.4
$E --model runs/pi1+pi13/hf/step_001980 --benchmarks arc_e,arc_c --out runs/eval-pi1+pi13-arc   # Table 1, {π1, π13}: ARC-E 52.1 / ARC-C 32.4
$E --model runs/dsr_sub/hf/step_001560 --benchmarks arc_e,arc_c --out runs/eval-dsr_sub-arc   # Table 1, DSR-sub: ARC-E 42.2 / ARC-C 29.9

# --- pass@8 (Table 20): results.json's paper_pass_at_k["8"] on the three sampled benchmarks ---
$E --model $BASE --benchmarks aime24,aime25,amc23 --out runs/eval-base-pass8                  # Table 20, base model: AIME24 26.6 / AIME25 20.0 / AMC23 72.5
$E --model runs/pi1/hf/step_000980 --benchmarks aime24,aime25,amc23 --out runs/eval-pi1-pass8 # Table 20, 1-shot RLVR (highest, step 980): AIME24 36.7 / AIME25 33.3 / AMC23 85.0

# --- Other models (Table 4; Table 12 for R1-Distill at 8k tokens); presets keep the 1.5B script's settings ---
$R --preset qwen2.5-math-7b --example pi1 --steps 1000 --out runs/7b-pi1                      # Table 4, Qwen2.5-Math-7B {π1}: 79.2 / 40.2
$R --preset llama-3.2-3b-instruct --example pi1 --steps 1000 --out runs/llama3b-pi1           # Table 4, Llama-3.2-3B-Instruct {π1}: 45.8 / 19.0
$R --preset r1-distill-qwen-1.5b --example pi1 --steps 1200 --out runs/r1distill-pi1          # Table 12, R1-Distill-Qwen-1.5B {π1}, eval 8k: 80.5 / 42.3
$R --preset qwen2.5-math-7b --example pi1 --pg-coef 0 --weight-decay 0 --kl-coef 0 --steps 4 --out runs/7b-entropy-only   # Table 13, Qwen2.5-Math-7B +Entropy Loss, 4 steps: 57.2 / 25.0
$R --preset llama-3.2-3b-instruct --example pi1 --pg-coef 0 --weight-decay 0 --kl-coef 0 --steps 10 --out runs/llama3b-entropy-only   # Table 13, Llama-3.2-3B-Instruct +Entropy Loss, 10 steps: 47.8 / 19.5

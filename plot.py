"""plot.py — a run the way the paper shows it: training accuracy against MATH500 over steps (the post-saturation
picture), each benchmark of the checkpoint sweep, entropy and response length, self-reflection and boxed share.

    python plot.py runs/pi1                              # PNGs into runs/pi1/, and a last/best table
    python plot.py runs/pi1 runs/pi1-no-kl runs/pi1-no-ent --out runs/table5   # runs overlaid (Table 5 ablations)

It reads what the run wrote: RUN/metrics.jsonl (rlvr.py), RUN/sweep.jsonl (`eval.py --sweep RUN`) and RUN/config.json,
and imports no torch. Each run is labelled by the config fields in which the runs differ (kl_coef=0.0, ...).

    plot_accuracy.png           training accuracy and MATH500 (validation, both graders) vs step: reward/mean,
                                eval/math500_paper (the paper's grader), eval/math500 (ours)
    plot_benchmarks.png         each benchmark and their average vs step, the paper's grader solid and ours dashed:
                                sweep.jsonl (runs with a sweep only)
    plot_entropy_length.png     policy entropy and response length vs step: loss/entropy, rollout/len_mean
    plot_reflection_boxed.png   share of responses with a self-reflection word / a boxed answer vs step:
                                rollout/reflection_frac, reward/format

matplotlib is an optional dependency of this script only (pip install matplotlib); nothing else imports it.
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

from eval import NAMES, OURS_LABEL, PAPER_LABEL, avg_label, last_and_best, read_jsonl, sweep_series

# Config fields that never tell two runs apart for a reader.
NOT_A_LABEL = {"out", "git_commit", "resume", "data_dir", "wandb"}


def load_run(folder):
    """{"dir", "config", "metrics" (rows), "sweep" (rows)} of one run folder."""
    folder = Path(folder)
    if not (folder / "metrics.jsonl").exists():
        raise SystemExit(f"{folder}: no metrics.jsonl (a run folder of rlvr.py --out)")
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    return {"dir": folder, "config": config, "metrics": read_jsonl(folder / "metrics.jsonl"),
            "sweep": read_jsonl(folder / "sweep.jsonl")}


def labels(runs):
    """One legend label per run: "preset · example" for a single run; otherwise the config fields that differ
    between the runs (a different preset or example explains the rest), or the folder names when that says
    nothing (no differing field, more than three, or two runs alike)."""
    configs = [r["config"] for r in runs]
    if len(runs) == 1:
        c = configs[0]
        return [f"{c['preset']} · {c['example']}" if "preset" in c else runs[0]["dir"].name]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    differ = [k for k in keys if k not in NOT_A_LABEL and len({json.dumps(c.get(k)) for c in configs}) > 1]
    differ = [k for k in ("preset", "example") if k in differ] or differ
    names = [", ".join(f"{k}={c.get(k)}" for k in differ) for c in configs]
    if not differ or len(differ) > 3 or len(set(names)) < len(names):
        return [r["dir"].name for r in runs]
    return names


def series(rows, key):
    """(steps, values) of the metrics rows that hold `key`."""
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [s for s, _ in points], [v for _, v in points]


def pretty_example(example):
    return re.sub(r"\bpi(\d+)", r"π\1", example)


# ---------------------------------------------------------------------------------------------------
# Figures (matplotlib's object API, no pyplot state): one function per PNG
# ---------------------------------------------------------------------------------------------------

def _figure(panels, width_per_panel=5.5, height=4.0, rows=1):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    cols = math.ceil(panels / rows)
    fig = Figure(figsize=(width_per_panel * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[panels:]:
        ax.set_visible(False)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes[:panels]


def _percent(ax, label):
    from matplotlib.ticker import PercentFormatter
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    ax.set_ylabel(label)


def _from_zero(ax, min_top):
    """y from 0 (a line at 0 stays visible above the axis) to the data's top, at least min_top."""
    top = max(ax.get_ylim()[1], min_top)
    ax.set_ylim(-0.02 * top, top)


def _colors(n):
    return [f"C{i % 10}" for i in range(n)]


def accuracy_figure(runs, names):
    """(1) The post-saturation picture: training accuracy on the example(s) and MATH500 accuracy vs step."""
    fig, [ax] = _figure(1, width_per_panel=8, height=4.5)
    validated = False
    for run, name, color in zip(runs, names, _colors(len(runs))):
        prefix = "" if len(runs) == 1 else f"{name}: "
        example = pretty_example(run["config"].get("example", "the training set"))
        ax.plot(*series(run["metrics"], "reward/mean"), color=color, label=f"{prefix}training accuracy on {example}")
        for key, style, grader in (("eval/math500_paper", "--", PAPER_LABEL), ("eval/math500", ":", OURS_LABEL)):
            steps, values = series(run["metrics"], key)
            if steps:
                validated = True
                ax.plot(steps, values, color=color, linestyle=style, marker="o", markersize=4,
                        label=f"{prefix}MATH500 accuracy (greedy, {grader})")
    _percent(ax, "accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("Training accuracy and MATH500 over training" if validated else
                 "Training accuracy over training (this run did not validate on MATH500)")
    ax.legend(loc="best", fontsize=9)
    return fig


def benchmarks_figure(runs, names):
    """(2) The checkpoint sweep: each benchmark and their average vs step. None when no run has a sweep."""
    swept = [(run, name, color) for run, name, color in zip(runs, names, _colors(len(runs))) if run["sweep"]]
    if not swept:
        return None
    # Both graders per run: solid = the paper's grader (the number beside the paper's tables), dashed = ours.
    graders = ((PAPER_LABEL, "paper_accuracy", "-"), (OURS_LABEL, "accuracy", "--"))
    all_series = [{grader: sweep_series(run["sweep"], key) for grader, key, _ in graders} for run, _, _ in swept]
    panels = list(dict.fromkeys(b for s in all_series for b in s[OURS_LABEL] if b != "avg")) + ["avg"]
    fig, axes = _figure(len(panels), width_per_panel=4.2, height=3.4, rows=2 if len(panels) > 4 else 1)
    average = avg_label(all_series[0][OURS_LABEL])
    for ax, panel in zip(axes, panels):
        for (_, name, color), s in zip(swept, all_series):
            for grader, _, style in graders:
                points = s[grader].get(panel, [])
                ax.plot([p[0] for p in points], [p[1] for p in points], color=color, linestyle=style, marker="o",
                        markersize=4, label=f"{name}: {grader}" if len(runs) > 1 else grader)
        ax.set_title(NAMES.get(panel, panel) if panel != "avg" else
                     "Avg (mean of the six)" if average == "Avg" else f"{average} benchmarks")
        _percent(ax, "accuracy")
        _from_zero(ax, 0.05)
    axes[0].legend(loc="best", fontsize=8)
    settings = swept[0][0]["sweep"][0]
    fig.suptitle(f"Checkpoint sweep (eval.py --sweep: {settings.get('max_tokens')} new tokens"
                 f"{', first ' + str(settings['limit']) + ' problems' if settings.get('limit') else ''})")
    return fig


def _two_panels(runs, names, panels, title):
    """Two metrics vs step, one panel each: panels = [(key, panel title, y label, share_top)]. A share is drawn
    in percent from 0 to at least share_top (1: the full 0-100%); share_top None plots plain values."""
    fig, axes = _figure(2)
    for ax, (key, panel_title, ylabel, share_top) in zip(axes, panels):
        for run, name, color in zip(runs, names, _colors(len(runs))):
            ax.plot(*series(run["metrics"], key), color=color, label=name)
        ax.set_title(panel_title)
        if share_top is None:
            ax.set_ylabel(ylabel)
        else:
            _percent(ax, ylabel)
            _from_zero(ax, share_top)
    axes[0].legend(loc="best", fontsize=9)
    fig.suptitle(title)
    return fig


def entropy_length_figure(runs, names):
    """(3) Entropy of the policy and response length vs step."""
    return _two_panels(runs, names, [
        ("loss/entropy", "Policy entropy (token mean, at the sampling T)", "entropy (nats per token)", None),
        ("rollout/len_mean", "Response length (mean over the step's responses)", "tokens", None)],
        "Entropy and response length over training")


def reflection_figure(runs, names):
    """(4) Share of responses with a self-reflection word (eval.py's definition) and with a boxed answer."""
    return _two_panels(runs, names, [
        ("rollout/reflection_frac", "Responses with a self-reflection word\n(rethink, recheck, recalculate)",
         "share of responses", 0.05),  # a few percent in real runs: the axis follows the data
        ("reward/format", "Responses with a \\boxed{} answer", "share of responses", 1.0)],
        "Self-reflection and format over training")


FIGURES = {"plot_accuracy.png": accuracy_figure, "plot_benchmarks.png": benchmarks_figure,
           "plot_entropy_length.png": entropy_length_figure, "plot_reflection_boxed.png": reflection_figure}


def make_figures(runs):
    """{file name: matplotlib Figure} for these runs, overlaid; the sweep figure only when a run has a sweep."""
    names = labels(runs)
    figures = {file: make(runs, names) for file, make in FIGURES.items()}
    return {file: fig for file, fig in figures.items() if fig is not None}


# ---------------------------------------------------------------------------------------------------
# Table: last and best step per run, as the paper's tables report them
# ---------------------------------------------------------------------------------------------------

def summary(run):
    """{column: last_and_best figures} of one run: training accuracy, MATH500 validation, the sweep's average."""
    out = {}
    for column, key in (("training accuracy", "reward/mean"),
                        (f"MATH500 (validation, {PAPER_LABEL})", "eval/math500_paper"),
                        (f"MATH500 (validation, {OURS_LABEL})", "eval/math500")):
        steps, values = series(run["metrics"], key)
        if steps:
            out[column] = last_and_best(list(zip(steps, values)))
    for grader, key in ((PAPER_LABEL, "paper_accuracy"), (OURS_LABEL, "accuracy")):
        s = sweep_series(run["sweep"], key) if run["sweep"] else {"avg": []}
        if s["avg"]:
            out[f"sweep {avg_label(s)} ({grader})"] = last_and_best(s["avg"])
    return out


def table(runs):
    names = labels(runs)
    columns = list(dict.fromkeys(c for run in runs for c in summary(run)))
    lines = ["| run | " + " | ".join(f"{c}: last (step) | {c}: best (step)" for c in columns) + " |",
             "|---|" + "---|---|" * len(columns)]
    for run, name in zip(runs, names):
        s = summary(run)
        cells = [f"{100 * s[c]['last']:.1f} ({s[c]['last_step']}) | {100 * s[c]['best']:.1f} ({s[c]['best_step']})"
                 if c in s else "- | -" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (rlvr.py --out); several are overlaid")
    p.add_argument("--out", help="folder for the PNGs (default: each run folder)")
    args = p.parse_args(argv)
    runs = [load_run(folder) for folder in args.runs]
    print(table(runs))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plot.py needs matplotlib, an optional dependency of this script only: pip install matplotlib",
              file=sys.stderr)
        return 1
    figures = make_figures(runs)
    for folder in [Path(args.out)] if args.out else [run["dir"] for run in runs]:
        folder.mkdir(parents=True, exist_ok=True)
        for file, fig in figures.items():
            fig.savefig(folder / file, dpi=100)
            print(f"wrote {folder / file}")
    if not any(run["sweep"] for run in runs):
        print("no sweep.jsonl in these runs, so no plot_benchmarks.png: run `eval.py --sweep RUN` first")
    return 0


if __name__ == "__main__":
    sys.exit(main())

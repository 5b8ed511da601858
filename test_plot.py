"""Tests for the paper's views of a run (CPU): plot.py's figures hold exactly the values of metrics.jsonl and
sweep.jsonl (the data path, not pixels), runs overlay with labels from their configs, `eval.py --sweep` evaluates
every export once and equals `eval.py --model <export>`, and `--wandb` logs the metrics.jsonl history (offline)
while a run without it never imports wandb.

Two runs once per module under torchrun (2 ranks, gloo): a short toy run (no validation) and a tiny π1 run with
2 HF exports, --wandb in offline mode and then a sweep. matplotlib and wandb are test dependencies
(requirements-cpu.txt); without them their tests skip, or fail under CI.
"""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import eval as ev
import plot

HERE = Path(__file__).resolve().parent
SIX = ev.BENCHMARKS
SWEEP_FLAGS = ["--engine", "torch", "--limit", "2", "--max-tokens", "16"]


def needs(module):
    """Import an optional test dependency, or skip (fail under CI, which installs requirements-cpu.txt)."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed (requirements-cpu.txt)")
        pytest.skip(f"{module} is not installed")


def cli(args, torchrun=False, env=None, timeout=300):
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun \
        else [sys.executable]
    return subprocess.run(prefix + [str(a) for a in args], cwd=HERE, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def poison(folder, module):
    """A package `module` in folder that leaves a marker file and raises when imported."""
    (folder / module).mkdir(parents=True)
    marker = folder / f"{module}_was_imported"
    (folder / module / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                                 f"raise ImportError('{module} must not be imported here')\n")
    return marker


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The toy preset (no validation), 8 steps, with an importable-but-poisoned wandb on the path."""
    tmp = tmp_path_factory.mktemp("toy")
    marker = poison(tmp / "poison", "wandb")
    proc = cli(["rlvr.py", "--preset", "toy", "--engine", "torch", "--steps", "8", "--samples-every", "4",
                "--out", tmp / "run"], torchrun=True, env={"PYTHONPATH": str(tmp / "poison")})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tmp / "run", marker


@pytest.fixture(scope="module")
def tiny_run(data_dir, tmp_path_factory):
    """A tiny π1 run: 4 steps, exports at steps 2 and 4 (a large lr so they differ), --wandb offline, then the
    sweep under torchrun."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    wandb_env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(out.parent / "wbc"),
                 "WANDB_CACHE_DIR": str(out.parent / "wbc"), "WANDB_DATA_DIR": str(out.parent / "wbc")}
    proc = cli(["rlvr.py", "--preset", "tiny", "--example", "pi1", "--engine", "torch", "--steps", "4", "--lr", "1e-2",
                "--wandb", "rlvr-test", "--data-dir", data_dir, "--out", out], torchrun=True, env=wandb_env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    sweep = cli(["eval.py", "--sweep", out, *SWEEP_FLAGS, "--data-dir", data_dir], torchrun=True)
    assert sweep.returncode == 0, sweep.stderr[-4000:]
    return out, sweep.stdout


def lines(ax):
    """{legend label: (x, y)} of an Axes' lines, as lists."""
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def column(rows, key):
    points = [(r["step"], r[key]) for r in rows if key in r]
    return [s for s, _ in points], [v for _, v in points]


# ---------------------------------------------------------------------------------------------------
# figures: the data path
# ---------------------------------------------------------------------------------------------------

def test_toy_run_figures_hold_metrics_jsonl(toy_run, tmp_path):
    needs("matplotlib")
    run, _ = toy_run
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 9))
    assert all(0 <= m["rollout/reflection_frac"] <= 1 for m in metrics)
    assert max(m["reward/format"] for m in metrics) > 0  # the toy model boxes some answers: a line that moves
    figures = plot.make_figures([plot.load_run(run)])
    assert set(figures) == {"plot_accuracy.png", "plot_entropy_length.png", "plot_reflection_boxed.png"}  # no sweep
    [ax] = figures["plot_accuracy.png"].axes
    assert lines(ax) == {"training accuracy on toy": column(metrics, "reward/mean")}  # no validation: no MATH500
    entropy, length = figures["plot_entropy_length.png"].axes[:2]
    assert list(lines(entropy).values()) == [column(metrics, "loss/entropy")]
    assert list(lines(length).values()) == [column(metrics, "rollout/len_mean")]
    reflection, boxed = figures["plot_reflection_boxed.png"].axes[:2]
    assert list(lines(reflection).values()) == [column(metrics, "rollout/reflection_frac")]
    assert list(lines(boxed).values()) == [column(metrics, "reward/format")]

    proc = cli(["plot.py", run])  # the CLI writes the PNGs into the run folder and prints the last/best table
    assert proc.returncode == 0, proc.stderr
    for name in figures:
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = metrics[-1]["reward/mean"]
    best = max(metrics, key=lambda m: m["reward/mean"])
    assert f"| toy · toy | {100 * last:.1f} (8) | {100 * best['reward/mean']:.1f} ({best['step']}) |" in proc.stdout
    assert "no sweep.jsonl" in proc.stdout


def test_tiny_run_figures_hold_metrics_and_sweep(tiny_run):
    needs("matplotlib")
    run, _ = tiny_run
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    sweep = ev.read_jsonl(run / "sweep.jsonl")
    figures = plot.make_figures([plot.load_run(run)])
    assert set(figures) == set(plot.FIGURES)
    [ax] = figures["plot_accuracy.png"].axes
    assert lines(ax) == {"training accuracy on π1": column(metrics, "reward/mean"),
                         "MATH500 accuracy (greedy, paper's grader)": column(metrics, "eval/math500_paper"),
                         "MATH500 accuracy (greedy, our grader)": column(metrics, "eval/math500")}
    axes = [a for a in figures["plot_benchmarks.png"].axes if a.get_visible()]
    assert [a.get_title() for a in axes] == [ev.NAMES[b] for b in SIX] + ["Avg (mean of the six)"]
    for ax, name in zip(axes, SIX):  # both graders: the paper's (solid) and ours (dashed)
        assert lines(ax) == {grader: ([2, 4], [r[key] for r in sweep if r["benchmark"] == name])
                             for grader, key in (("paper's grader", "paper_accuracy"), ("our grader", "accuracy"))}
    for grader, key in (("paper's grader", "paper_accuracy"), ("our grader", "accuracy")):
        avg = [sum(r[key] for r in sweep if r["step"] == s) / 6 for s in (2, 4)]
        assert lines(axes[-1])[grader] == ([2, 4], avg)


def test_overlay_of_two_runs_labels_them_by_their_configs(toy_run, tiny_run, tmp_path):
    needs("matplotlib")
    runs = [plot.load_run(toy_run[0]), plot.load_run(tiny_run[0])]
    assert plot.labels(runs) == ["preset=toy, example=toy", "preset=tiny, example=pi1"]
    figures = plot.make_figures(runs)
    [ax] = figures["plot_accuracy.png"].axes
    assert set(lines(ax)) == {"preset=toy, example=toy: training accuracy on toy",
                              "preset=tiny, example=pi1: training accuracy on π1",
                              "preset=tiny, example=pi1: MATH500 accuracy (greedy, paper's grader)",
                              "preset=tiny, example=pi1: MATH500 accuracy (greedy, our grader)"}
    entropy = figures["plot_entropy_length.png"].axes[0]
    assert lines(entropy) == {label: column(run["metrics"], "loss/entropy")
                              for label, run in zip(plot.labels(runs), runs)}
    math500 = figures["plot_benchmarks.png"].axes[0]
    assert set(lines(math500)) == {"preset=tiny, example=pi1: paper's grader",
                                   "preset=tiny, example=pi1: our grader"}  # only the tiny run has a sweep
    proc = cli(["plot.py", toy_run[0], tiny_run[0], "--out", tmp_path])
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(plot.FIGURES)
    assert "| preset=toy, example=toy |" in proc.stdout and "| preset=tiny, example=pi1 |" in proc.stdout


def test_labels_name_the_ablated_fields(tmp_path):
    base = {"preset": "qwen2.5-math-1.5b", "example": "pi1", "kl_coef": 0.001, "entropy_coef": 0.001,
            "out": "x", "git_commit": "a"}
    runs = [{"dir": tmp_path / n, "config": {**base, **change, "out": n}}
            for n, change in [("full", {}), ("no-kl", {"kl_coef": 0.0}), ("none", {"kl_coef": 0.0, "entropy_coef": 0.0})]]
    assert plot.labels(runs) == ["kl_coef=0.001, entropy_coef=0.001", "kl_coef=0.0, entropy_coef=0.001",
                                 "kl_coef=0.0, entropy_coef=0.0"]
    assert plot.labels(runs[:1] * 2) == ["full", "full"]  # nothing differs: the folder names
    assert plot.labels(runs[:1]) == ["qwen2.5-math-1.5b · pi1"]


def test_plot_imports_no_torch_and_says_what_to_install_without_matplotlib(toy_run, tmp_path):
    proc = cli(["-c", "import plot, sys; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"])
    assert proc.returncode == 0, proc.stderr
    poison(tmp_path, "matplotlib")
    proc = cli(["plot.py", toy_run[0], "--out", tmp_path / "out"], env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1 and "pip install matplotlib" in proc.stderr
    assert "| toy · toy |" in proc.stdout  # the table needs no matplotlib


# ---------------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------------

def test_sweep_exports_selects_every_kth_and_the_last(tmp_path):
    for name in ("step_000002", "step_000004", "step_000006", "step_000008.tmp"):
        (tmp_path / "hf" / name).mkdir(parents=True)
    steps = lambda every: [s for s, _ in ev.sweep_exports(tmp_path, every)]  # noqa: E731
    assert steps(1) == [2, 4, 6] and steps(4) == [4, 6] and steps(5) == [6]


def test_sweep_table_reports_last_and_best():
    rows = [{"step": s, "benchmark": b, "accuracy": acc, "paper_accuracy": acc + bonus} for s, b, acc, bonus in
            [(10, "math500", 0.5, 0.3), (10, "aime24", 0.1, 0), (20, "math500", 0.7, 0), (20, "aime24", 0.0, 0),
             (30, "math500", 0.6, 0)]]
    series = ev.sweep_series(rows)
    assert series["avg"] == [(10, 0.3), (20, 0.35)]  # step 30 lacks aime24: no average there
    assert ev.sweep_series(rows, "paper_accuracy")["avg"] == [(10, 0.45), (20, 0.35)]
    text = ev.sweep_table(rows)  # last step, last % (paper's, ours), best step and % per grader
    assert "| MATH500 | 30 | 60.0 | 60.0 | 10 | 80.0 | 20 | 70.0 |" in text
    assert "| AIME24 | 20 | 0.0 | 0.0 | 10 | 10.0 | 10 | 10.0 |" in text
    assert "| **mean of 2** | 20 | 35.0 | 35.0 | 10 | 45.0 | 20 | 35.0 |" in text and text.endswith(ev.GRADER_NOTE)
    assert ev.sweep_series([{"step": 1, "benchmark": "math500", "accuracy": 0.5}], "paper_accuracy")["avg"] == []


def test_sweep_evaluates_every_export_once_and_equals_eval_py(tiny_run, data_dir, tmp_path, capsys):
    run, stdout = tiny_run
    rows = ev.read_jsonl(run / "sweep.jsonl")
    assert [(r["step"], r["benchmark"]) for r in rows] == [(s, b) for s in (2, 4) for b in SIX]
    assert "2 to evaluate" in stdout and "| **Avg** |" in stdout
    before = (run / "sweep.jsonl").read_bytes()
    ev.main(["--sweep", str(run), *SWEEP_FLAGS, "--data-dir", str(data_dir)])  # rerun: nothing left to do
    assert "2 already in sweep.jsonl, 0 to evaluate" in capsys.readouterr().out
    assert (run / "sweep.jsonl").read_bytes() == before
    with pytest.raises(SystemExit):  # never a file that mixes settings: one line, exit status 1
        ev.main(["--sweep", str(run), "--engine", "torch", "--limit", "2", "--max-tokens", "8", "--data-dir", str(data_dir)])
    assert "other settings" in capsys.readouterr().err

    # Step 4 was loaded into the engine built for step 2 (load_export); eval.py --model builds it from scratch.
    export = run / "hf" / "step_000004"
    proc = cli(["eval.py", "--model", export, *SWEEP_FLAGS, "--data-dir", data_dir, "--out", tmp_path], torchrun=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    direct = json.loads((tmp_path / "results.json").read_text())["benchmarks"]
    for name in SIX:
        [row] = [r for r in rows if (r["step"], r["benchmark"]) == (4, name)]
        assert {k: row[k] for k in direct[name]} == direct[name]
        assert ev.read_jsonl(run / "sweep" / "step_000004" / f"{name}.jsonl") == ev.read_jsonl(tmp_path / f"{name}.jsonl")
    # ... and the two exports answer differently, so a sweep that did not load step 4 would fail the above
    two, four = (ev.read_jsonl(run / "sweep" / f"step_00000{s}" / "aime24.jsonl") for s in (2, 4))
    assert [r["response"] for r in two] != [r["response"] for r in four]


# ---------------------------------------------------------------------------------------------------
# Weights & Biases
# ---------------------------------------------------------------------------------------------------

def wandb_records(path):
    """The protobuf Records of an offline run file (run-*.wandb): a 7-byte header (":W&B", 0xBEE1, version),
    then LevelDB-log blocks of 32 KiB holding records of (crc32, length, type) + data, split over blocks."""
    from wandb.proto import wandb_internal_pb2
    data = Path(path).read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    pos, block, chunk = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def test_wandb_offline_history_equals_metrics_jsonl(tiny_run):
    needs("wandb")
    run, _ = tiny_run
    [path] = run.glob("wandb/offline-run-*/run-*.wandb")
    history, config = [], {}
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == "history":
            item = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            history.append({k: v for k, v in item.items() if not k.startswith("_")})
            assert item["_step"] == item["step"]
        elif record.WhichOneof("record_type") == "run":
            config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert history == metrics and len(metrics) == 4
    saved = json.loads((run / "config.json").read_text())
    assert {k: config[k] for k in saved} == saved and config["run_dir"] == str(run.resolve())


def test_a_run_without_the_flag_never_imports_wandb(toy_run, tmp_path):
    run, marker = toy_run
    assert not marker.exists() and not (run / "wandb").exists()
    # the poisoned package is real: importing it is what the marker would have caught
    probe = cli(["-c", "import wandb"], env={"PYTHONPATH": str(marker.parent)})
    assert probe.returncode == 1 and marker.exists()

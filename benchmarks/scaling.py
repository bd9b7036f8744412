"""Multi-GPU scaling of the trainer itself: `torchrun -m trainer` on 1 and on N GPUs, then a resume on fewer.

The speed issue's shape (b): every sample exactly --seq tokens (rows of words longer than that, truncated by the
trainer's --truncate_long_rows), batch 4 and accumulation 2 per GPU (the seed's flags), so each optimizer step on P
GPUs trains 8 x P samples. For each GPU count the trainer runs --steps steps under torchrun; the rate is read from its
metrics.jsonl between the log after --warmup-steps and the last one (model loading, the gate and the first steps'
compilation excluded), and printed as samples/h, useful tok/s, the speed-up over 1 GPU and the scaling efficiency.
--resume then continues the largest run's final checkpoint on 1 GPU for a few steps (a checkpoint written by N
processes resumed by one).

samples/h = the rate of real (non-padding) tokens / the run's tokens per sample (summary.json), so packed rows count
the samples in them. --dataset trains on a JSONL of your own (e.g. var-length chat rows) instead; --trainer-arg adds
trainer flags (e.g. --trainer-arg=--packing --trainer-arg=--torch_compile: the trainer's fast path).

Usage (device, NumPy-1 stack, a model from benchmarks/device/make_llama8b.py):
  python benchmarks/scaling.py --model /tmp/llama8b --stack lora-cu130-2026.11 --gpus 1,2 --steps 16 --resume
Tiny CPU run (gloo; what tests/trainer/test_scaling_cli.py runs):
  python benchmarks/scaling.py --model TINY_DIR --stack cpu-test --gpus 1,2 --seq 32 --words 40 --steps 6 \
      --warmup-steps 2 --resume
Exit code 1 when a run fails or the resume does not continue from the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from envdoctor import write_atomic  # noqa: E402

WORDS = tuple(f"w{i}" for i in range(500)) + ("the", "of", "and", "to", "a", "in", "is", "for")


@dataclass
class ScalingRow:
    gpus: int
    status: str
    samples_per_hour: float | None = None
    useful_tokens_per_s: float | None = None
    measured_steps: int = 0
    speedup: float | None = None
    efficiency: float | None = None
    peak_gib: float | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model directory (bf16 base + tokenizer)")
    parser.add_argument("--stack", required=True, help="envdoctor stack for the trainer's gate")
    parser.add_argument("--gpus", default="1,2", help="comma-separated process counts (default 1,2)")
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per run")
    parser.add_argument("--warmup-steps", type=int, default=4, help="steps left out of the rate")
    parser.add_argument("--seq", type=int, default=2048, help="tokens per sample (rows are truncated to it)")
    parser.add_argument("--words", type=int, default=2300, help="words per generated row (must exceed --seq tokens)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--accum", type=int, default=2)
    parser.add_argument("--dataset", default=None, help="train on this JSONL (format detected) instead of the "
                        "generated fixed-length rows, e.g. benchmarks/device/dataset_words.py's var-length chat rows")
    parser.add_argument("--launcher", choices=("torchrun", "python"), default="torchrun",
                        help="python: plain `python -m trainer` (one process only), as a single-GPU user runs it")
    parser.add_argument("--resume", action="store_true", help="resume the largest run's checkpoint on 1 process")
    parser.add_argument("--resume-steps", type=int, default=4)
    parser.add_argument("--workdir", default="/tmp/scaling")
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--run-timeout", type=float, default=900, help="seconds one torchrun may take")
    parser.add_argument("--trainer-arg", action="append", default=[], help="extra trainer flag (repeatable)")
    args = parser.parse_args(argv)
    try:
        args.gpu_counts = sorted({int(n) for n in args.gpus.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--gpus: expected comma-separated numbers, got {args.gpus!r}")
    if not args.gpu_counts or args.gpu_counts[0] < 1:
        parser.error("--gpus: give at least one count of 1 or more")
    if args.launcher == "python" and args.gpu_counts != [1]:
        parser.error("--launcher python runs one process: use --gpus 1")
    if args.steps <= args.warmup_steps + 1:
        parser.error("--steps must exceed --warmup-steps by at least 2")
    return args


def write_rows(path: Path, count: int, words: int) -> None:
    """Text rows of `words` words each, deterministic; the trainer truncates each to --seq tokens."""
    lines = []
    for row in range(count):
        text = " ".join(WORDS[(row * 7 + i * 13) % len(WORDS)] for i in range(words))
        lines.append(json.dumps({"text": text}) + "\n")
    path.write_text("".join(lines), encoding="utf-8")


def trainer_flags(args: argparse.Namespace, data: Path, output: Path, max_steps: int) -> list[str]:
    data_flags = ["--dataset_format", "text", "--truncate_long_rows"] if args.dataset is None else []
    return ["--model_name", args.model, "--dataset_path", str(data), "--output_dir", str(output),
            "--stack", args.stack, *data_flags, "--max_seq_length", str(args.seq), "--per_device_train_batch_size",
            str(args.batch),
            "--gradient_accumulation_steps", str(args.accum), "--dataloader_num_workers", "4",
            "--num_train_epochs", "100", "--max_steps", str(max_steps), "--save_steps", str(args.steps),
            "--logging_steps", "1", "--warmup_ratio", "0.0", *args.trainer_arg]


def launch(processes: int, flags: list[str], log: Path, timeout: float, launcher: str = "torchrun") -> int:
    """torchrun --nproc_per_node P -m trainer FLAGS, its output to `log`. The launcher runs in a session of its own,
    so on a timeout, Ctrl-C or SIGTERM its whole group (torchrun and the trainers) is killed before this returns."""
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [sys.executable, *(torchrun if launcher == "torchrun" else []), "-m", "trainer", *flags]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
               NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    print(f"$ {' '.join(command[1:])}", flush=True)
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                   start_new_session=True)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return 124
        except BaseException:  # KeyboardInterrupt, or SystemExit from the SIGTERM handler in main()
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise


def training_logs(output: Path) -> list[dict]:
    path = output / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if "loss" in row and "elapsed_s" in row]


def measure(args: argparse.Namespace, processes: int, output: Path) -> ScalingRow:
    """The rate between the first log after the warm-up steps and the last log of a finished run."""
    logs = training_logs(output)
    after_warmup = [row for row in logs if row["step"] > args.warmup_steps]
    if len(after_warmup) < 2:
        return ScalingRow(processes, f"too few logged steps after the warm-up ({len(after_warmup)})")
    first, last = after_warmup[0], after_warmup[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    tokens_per_second = (last["tokens_seen"] - first["tokens_seen"]) / seconds
    summary_path = output / "summary.json"
    if not summary_path.is_file():
        return ScalingRow(processes, f"no {summary_path}")
    summary = json.loads(summary_path.read_text())
    if not summary.get("samples") or not summary.get("tokens"):
        return ScalingRow(processes, f"{summary_path} counts no samples or tokens")
    tokens_per_sample = summary["tokens"] / summary["samples"]  # packed rows hold several samples each
    return ScalingRow(processes, "ok", tokens_per_second * 3600 / tokens_per_sample, tokens_per_second,
                      last["step"] - first["step"], peak_gib=summary.get("peak_gpu_memory_gib"))


def run_scaling(args: argparse.Namespace, data: Path, work: Path) -> list[ScalingRow]:
    rows = []
    for processes in args.gpu_counts:
        output = work / f"gpus-{processes}"
        shutil.rmtree(output, ignore_errors=True)
        code = launch(processes, trainer_flags(args, data, output, args.steps), work / f"gpus-{processes}.log",
                      args.run_timeout, args.launcher)
        row = measure(args, processes, output) if code == 0 else ScalingRow(processes, f"exit {code}")
        rows.append(row)
        print(format_row(row), flush=True)
    single = next((r for r in rows if r.gpus == 1 and r.samples_per_hour), None)
    for row in rows:
        if single and row.samples_per_hour:
            row.speedup = row.samples_per_hour / single.samples_per_hour
            row.efficiency = row.speedup / row.gpus
    return rows


def resume_on_one(args: argparse.Namespace, data: Path, work: Path, processes: int) -> tuple[bool, str]:
    """Continue the P-process run's final checkpoint with 1 process for --resume-steps steps."""
    source = work / f"gpus-{processes}" / f"checkpoint-{args.steps}"
    if not source.is_dir():
        return False, f"no checkpoint at {source}"
    output = work / f"resume-{processes}-on-1"
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    shutil.copytree(source, output / source.name)
    target = args.steps + args.resume_steps
    flags = trainer_flags(args, data, output, target) + ["--resume_from_checkpoint", str(output / source.name)]
    code = launch(1, flags, work / f"resume-{processes}-on-1.log", args.run_timeout)
    log = (work / f"resume-{processes}-on-1.log").read_text(encoding="utf-8", errors="replace")
    state_path = output / f"checkpoint-{target}" / "trainer_state.json"
    if code != 0:
        return False, f"exit {code}; see {work / f'resume-{processes}-on-1.log'}"
    if f"resuming from {output / source.name}" not in log:
        return False, "the run did not say it resumed from the checkpoint"
    steps = [row["step"] for row in training_logs(output)]
    reached = json.loads(state_path.read_text())["global_step"] if state_path.is_file() else None
    if reached != target or not steps or steps[0] != args.steps + 1:
        return False, f"expected steps {args.steps + 1}..{target}, logged {steps}, checkpoint at step {reached}"
    return True, (f"checkpoint-{args.steps} of the {processes}-process run resumed on 1 process: steps "
                  f"{steps[0]}..{steps[-1]} trained, checkpoint-{target} written")


def format_row(row: ScalingRow) -> str:
    if row.status != "ok":
        return f"{row.gpus:>4} GPU(s)  {row.status}"
    extra = f"  x{row.speedup:.2f} ({row.efficiency:.0%} efficiency)" if row.speedup else ""
    peak = f", peak {row.peak_gib:.1f} GiB" if row.peak_gib else ""
    return (f"{row.gpus:>4} GPU(s)  {row.samples_per_hour:>10,.0f} samples/h  {row.useful_tokens_per_s:>9,.0f} "
            f"tok/s over {row.measured_steps} steps{peak}{extra}")


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through launch(), which kills the running torchrun group


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    largest = args.gpu_counts[-1]
    if args.dataset is not None:
        data = Path(args.dataset)
        if not data.is_file():
            print(f"scaling: --dataset {data}: no such file; pass a JSONL file", file=sys.stderr)
            return 2
    else:
        data = work / "fixed.jsonl"
        write_rows(data, (args.steps + args.resume_steps + 2) * args.batch * args.accum * largest, args.words)
    rows = run_scaling(args, data, work)
    shape = f"{args.dataset} (rows of {args.seq} tokens)" if args.dataset else f"{args.seq}-token samples"
    print(f"\nshape: {shape}, batch {args.batch} x accumulation {args.accum} per GPU")
    for row in rows:
        print(format_row(row))
    report: dict = {"rows": [asdict(row) for row in rows]}
    failed = any(row.status != "ok" for row in rows)
    if args.resume:
        resumed, message = resume_on_one(args, data, work, largest)
        report["resume"] = {"ok": resumed, "message": message}
        print(f"resume: {'ok' if resumed else 'FAILED'}: {message}")
        failed = failed or not resumed
    if args.json_out:
        write_atomic(Path(args.json_out), json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Both trainer backends (trainer.backends: hf and unsloth) on the Llama-3.1-8B shape, on the device.

Builds a random bf16 Llama-3.1-8B-shaped model + word-level tokenizer (no hub), then, each backend in its own process
(Unsloth must be imported before transformers and patches it, so they cannot share one):
  1. loads the base + LoRA through trainer.backends.load_lora_model_for (the trainer's own code path),
  2. prints the loss on one fixed batch before training (LoRA B = 0, so both must agree: the base forward),
  3. trains STEPS steps on fixed-length rows (AdamW on the LoRA weights) and prints useful tok/s and peak memory,
  4. saves the adapter (peft format) and its loss on the fixed batch after training,
then checks that each backend's adapter, loaded into the other backend's model, gives the same loss (what a resume
across backends needs), and merges each adapter with trainer.merge.merge_adapter (which reloads and compares logits).

Usage (on the device, with Unsloth's wheels installed: device/make_wheels.sh peers):
  PYTHONPATH=src python benchmarks/unsloth_backend.py [--steps 15] [--batch 2] [--seq 2048] [--layers 32]
                                                      [--workdir /tmp/unsloth_backend] [--no-merge]
--layers 4 gives a quick run. Exit code 1 when a loss check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
VOCAB = 128256
LOSS_RTOL = 2e-2  # bf16 forward through different kernels (Unsloth's fused RoPE/MLP/CE vs transformers')
BACKENDS = ("hf", "unsloth")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", nargs="?", default="all", choices=("all", "build", "run"))
    parser.add_argument("--backend", choices=BACKENDS, default="hf", help="for the run stage")
    parser.add_argument("--other-adapter", default=None, help="run stage: also evaluate this adapter")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3, help="high enough that the adapter moves the loss")
    parser.add_argument("--workdir", default="/tmp/unsloth_backend")
    parser.add_argument("--no-merge", action="store_true")
    return parser.parse_args(argv)


# ---- build (no unsloth in this process) ----------------------------------------------------------------


def build_model(directory: Path, layers: int) -> None:
    """Random bf16 Llama-3.1-8B-shaped weights + a word-level tokenizer, saved as safetensors."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=4096, intermediate_size=14336, num_hidden_layers=layers,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1, pad_token_id=2,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192}, torch_dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(directory), safe_serialization=True)
    vocab = {"<s>": 0, "</s>": 1, "<pad>": 2, "<unk>": 3} | {f"t{i}": i for i in range(4, VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>", model_max_length=131072).save_pretrained(str(directory))


# ---- run one backend (its own process) -----------------------------------------------------------------


def trainer_config(args: argparse.Namespace, model_dir: Path, backend: str) -> Any:
    from trainer.config import TrainConfig

    return TrainConfig(model_name=str(model_dir), max_seq_length=args.seq, lora_r=16, lora_alpha=32,
                       seed=args.seed, backend=backend, gradient_checkpointing=False)


def fixed_batch(args: argparse.Namespace, step: int) -> Any:
    """The same token ids in every process (CPU generator), on the GPU."""
    import torch

    generator = torch.Generator().manual_seed(1000 + step)
    return torch.randint(4, VOCAB, (args.batch, args.seq), generator=generator).cuda()


def batch_loss(model: Any, args: argparse.Namespace) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        ids = fixed_batch(args, -1)
        loss = model(input_ids=ids, labels=ids.clone()).loss.float().item()
    model.train()
    return loss


def train_steps(model: Any, args: argparse.Namespace) -> dict[str, float]:
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    torch.cuda.reset_peak_memory_stats()
    model.train()
    started = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            torch.cuda.synchronize()
            started = time.perf_counter()
        ids = fixed_batch(args, step)
        model(input_ids=ids, labels=ids.clone()).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"tok_per_s": args.steps * args.batch * args.seq / seconds,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


def load_adapter_weights(model: Any, adapter_dir: str) -> None:
    """Put a saved peft adapter's weights into this (peft) model, as a resume does."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    result = set_peft_model_state_dict(model, load_file(str(Path(adapter_dir) / "adapter_model.safetensors")))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise SystemExit(f"{adapter_dir}: {len(unexpected)} adapter keys do not fit this model, e.g. {unexpected[0]}")


def check_unsloth_signature(config: Any) -> None:
    """The arguments trainer.backends passes must bind to the installed Unsloth's real signature."""
    import inspect

    from unsloth import FastLanguageModel

    from trainer.backends import unsloth_load_arguments

    inspect.signature(FastLanguageModel.from_pretrained).bind(**unsloth_load_arguments(config))


def run_backend(args: argparse.Namespace) -> dict[str, Any]:
    from trainer.backends import load_lora_model_for, select_backend

    work = Path(args.workdir)
    choice = select_backend(args.backend, packing=False)  # imports Unsloth first when it is the backend
    print(f"[{args.backend}] {choice.describe()}", flush=True)
    if args.backend == "unsloth":  # what --backend auto picks here, Unsloth installed and imported, per data shape
        for packing in (False, True):
            print(f"[auto, {'--packing' if packing else 'no --packing'}] "
                  f"{select_backend('auto', packing=packing).describe()}", flush=True)
    config = trainer_config(args, work / "base", args.backend)
    if args.backend == "unsloth":
        check_unsloth_signature(config)
    from transformers import set_seed

    set_seed(args.seed)  # as the recipe does, before the LoRA weights are initialised
    started = time.perf_counter()
    model = load_lora_model_for(choice, config)
    if args.backend == "hf":
        model = model.cuda()
    result: dict[str, Any] = {"backend": args.backend, "load_s": time.perf_counter() - started,
                              "loss_before": batch_loss(model, args)}
    result.update(train_steps(model, args))
    result["loss_after"] = batch_loss(model, args)
    adapter = work / f"adapter-{args.backend}"
    shutil.rmtree(adapter, ignore_errors=True)
    model.save_pretrained(str(adapter), safe_serialization=True)
    result["adapter"] = str(adapter)
    if args.other_adapter:
        load_adapter_weights(model, args.other_adapter)
        result["loss_with_other_adapter"] = batch_loss(model, args)
    return result


# ---- orchestration (this process never imports unsloth) ------------------------------------------------


def stage(args: argparse.Namespace, *extra: str) -> dict[str, Any] | None:
    """Run this script's stage in a fresh process; returns the JSON line it prints last (None for build)."""
    base = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch), "--seq",
            str(args.seq), "--layers", str(args.layers), "--seed", str(args.seed), "--lr", str(args.lr),
            "--workdir", args.workdir]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, __file__, *extra, *base], env=env, capture_output=True, text=True,
                          check=False)
    sys.stderr.write(done.stderr[-3000:])
    if done.returncode != 0:
        raise SystemExit(f"stage {' '.join(extra)} failed (exit {done.returncode}); its stderr is above")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    print("\n".join(line for line in done.stdout.splitlines() if not line.startswith("{")), flush=True)
    return json.loads(lines[-1]) if lines else None


def close(a: float, b: float) -> bool:
    return abs(a - b) <= LOSS_RTOL * max(abs(a), abs(b))


def loss_checks(hf: dict[str, Any], unsloth: dict[str, Any], hf_with_unsloth: dict[str, Any]) -> list[str]:
    """Failed checks, as lines (empty when every loss agrees)."""
    checks = {
        "loss before training (base forward), hf vs unsloth": (hf["loss_before"], unsloth["loss_before"]),
        "hf adapter: its loss in hf vs loaded into unsloth": (hf["loss_after"], unsloth["loss_with_other_adapter"]),
        "unsloth adapter: its loss in unsloth vs loaded into hf": (unsloth["loss_after"],
                                                                   hf_with_unsloth["loss_with_other_adapter"]),
    }
    for result in (hf, unsloth):  # a cross-load check only means something when the adapter changes the loss
        moved = result['loss_after'] - result['loss_before']
        print(f"[{result['backend']}] its adapter moves the loss by {moved:+.5f}")
    failed = []
    for name, (a, b) in checks.items():
        verdict = "ok" if close(a, b) else f"FAIL (rtol {LOSS_RTOL})"
        print(f"{name}: {a:.5f} vs {b:.5f} -> {verdict}")
        if not close(a, b):
            failed.append(name)
    return failed


def merge_each(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    from trainer.merge import merge_adapter, render_result

    base = str(Path(args.workdir) / "base")
    for result in results:
        target = Path(args.workdir) / f"merged-{result['backend']}"
        merged = merge_adapter(base, result["adapter"], target, overwrite=True, device="cuda", log=print)
        print(f"[{result['backend']}] merge: {render_result(merged)}")
        shutil.rmtree(target, ignore_errors=True)  # 16 GB each; the check above reloaded it already


def run_all(args: argparse.Namespace) -> int:
    work = Path(args.workdir)
    if not (work / "base" / "config.json").is_file():
        stage(args, "build")
    hf = stage(args, "run", "--backend", "hf")
    unsloth = stage(args, "run", "--backend", "unsloth", "--other-adapter", hf["adapter"])
    hf_with_unsloth = stage(args, "run", "--backend", "hf", "--other-adapter", unsloth["adapter"])
    for result in (hf, unsloth):
        print(f"[{result['backend']}] loss before {result['loss_before']:.5f}, after {result['loss_after']:.5f}; "
              f"{result['tok_per_s']:,.0f} useful tok/s (batch {args.batch} x {args.seq}, {args.steps} steps), "
              f"peak {result['peak_gib']:.1f} GiB, load {result['load_s']:.0f} s")
    failed = loss_checks(hf, unsloth, hf_with_unsloth)
    if not args.no_merge:
        merge_each(args, [hf, unsloth])
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.stage == "build":
        Path(args.workdir, "base").mkdir(parents=True, exist_ok=True)
        build_model(Path(args.workdir) / "base", args.layers)
        return 0
    if args.stage == "run":
        print(json.dumps(run_backend(args)), flush=True)
        return 0
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

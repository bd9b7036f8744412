"""Trainer speed on the Llama-3.1-8B shape: plain HF+PEFT baseline vs packing and the trainer's fast path.

Random bf16 weights built on the GPU (no hub), LoRA r=16 alpha=32 on q,k,v,o,gate,up,down, AdamW. Two data
shapes: `var` (seeded log-normal lengths, mean ~344, median ~247, cap 2048, as benchmarks/peers/ draws them)
and `fixed` (2,048-token samples). Set-ups run one after the other on one model (LoRA weights reset between them):

  baseline      padded batches of 4, accumulation 2, SDPA, gradient checkpointing (always runs first)
  packed-sdpa   rows of --row-tokens, restarting position_ids, use_cache=False, SDPA document mask
  packed-eager  the same with eager attention
  packed-flex   the same with FlexAttention (block-sparse document mask, fixed row shape: compiled once)
  trainer       the trainer's --packing path: trainer.packing + attention "auto" + chunked fused CE + fused LoRA
Options append to a packed set-up with "+": fce (chunked fused cross-entropy), compile (torch.compile each
decoder layer), ckpt (gradient checkpointing), flora (fused LoRA projections, trainer.kernels.fused_lora),
2rows (each micro-batch two rows of half --row-tokens: the trainer CLI's layout, rows of --max_seq_length 2,048,
where a 2,048-token sample fills a row alone and needs no document mask), hfmask (with fce: transformers builds the
packed rows' mask, one host sync a step), eagerce (with fce: the loss's softmax arithmetic eager), 4rows (four
rows of a quarter of --row-tokens: with --row-tokens 8192 the seed's batch of 4 x 2,048), autotune / cudagraphs (with
compile: torch.compile's mode max-autotune-no-cudagraphs / reduce-overhead), budget0.6 (with compile: Inductor may
recompute activations to keep at most that share of them), dropout (LoRA dropout 0.05, the seed's; else 0), rng
(with compile: random ops such as dropout's mask regenerated in backward from their seed instead of kept), kdrop
(with fused LoRA on CUDA: the LoRA dropout mask drawn inside the rank-r product from a seed, trainer.kernels.
lora_dropout, instead of torch's dropout), e.g. `packed-flex+fce+compile`.

Usage: python benchmarks/train_speed.py [--setups a,b] [--shape var|fixed|both] [--steps N] [--warmup N]
       [--row-tokens 4096] [--json-out PATH] [--profile SETUPS [--profile-steps 3]] [--tiny]
       (--tiny: a tiny model on CPU, to test this script; --profile: where the time goes, see profile_breakdown.py)
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from profile_breakdown import Breakdown, breakdown  # noqa: E402

from envdoctor import write_atomic  # noqa: E402
from trainer.attention import packed_rows_mask  # noqa: E402
from trainer.compiling import compile_decoder_layers  # noqa: E402
from trainer.kernels.fused_ce import causal_lm_loss  # noqa: E402
from trainer.kernels.fused_lora import disable_fused_lora, enable_fused_lora  # noqa: E402
from trainer.packing import PackedCollator, enable_packed_attention, pack_examples, packing_efficiency  # noqa: E402
from trainer.types import IGNORE_INDEX, TokenizedExample  # noqa: E402

DEFAULT_SETUPS = "baseline,packed-sdpa,packed-flex,trainer,trainer+compile"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BASELINE_BATCH, BASELINE_ACCUM = 4, 2
LORA_RANK = 16
EPOCH_SAMPLES = 500_000 * 3


@dataclass(frozen=True)
class Setup:
    name: str
    packed: bool = True
    attention: str = "sdpa"  # sdpa | eager | flex | auto
    fused_ce: bool = False
    compile: bool = False
    checkpointing: bool = False
    fused_lora: bool = False
    rows_per_batch: int = 1  # packed: the micro-batch's --row-tokens split into this many rows
    document_mask: bool = True  # fce: the packed rows' mask from trainer.attention (no host sync)
    compiled_ce: bool = True  # fce: the per-chunk softmax arithmetic compiled on a GPU
    compile_mode: str | None = None  # compile: torch.compile's mode (None: its default)
    memory_budget: float = 1.0  # compile: torch._functorch's activation_memory_budget (< 1: recompute to fit)
    lora_dropout: float = 0.0  # the LoRA modules' dropout for this set-up (the seed's flags: 0.05)
    recompute_rng: bool = False  # compile: random ops recomputed in backward from their seed, masks not kept
    kernel_dropout: bool = False  # fused LoRA: dropout drawn inside the rank-r product (Triton, CUDA), not torch's


SEED_LORA_DROPOUT = 0.05  # configs/training_config.yaml's lora_dropout
OPTIONS = {"fce": {"fused_ce": True}, "compile": {"compile": True}, "ckpt": {"checkpointing": True},
           "flora": {"fused_lora": True}, "2rows": {"rows_per_batch": 2}, "4rows": {"rows_per_batch": 4},
           "hfmask": {"document_mask": False}, "eagerce": {"compiled_ce": False},
           "autotune": {"compile_mode": "max-autotune-no-cudagraphs"},
           "cudagraphs": {"compile_mode": "reduce-overhead"}, "dropout": {"lora_dropout": SEED_LORA_DROPOUT},
           "rng": {"recompute_rng": True}, "kdrop": {"kernel_dropout": True}}
BUDGET_OPTION = "budget"  # "budget0.6": activation_memory_budget 0.6


@dataclass(frozen=True)
class Scale:
    """What differs between the real run and --tiny: the model, device, dtype and sample lengths."""

    tiny: bool
    device: str
    dtype: torch.dtype
    length_divisor: int
    fixed_length: int
    matmul_size: int


@dataclass
class Result:
    setup: str
    shape: str
    status: str = "ok"
    samples_per_hour: float | None = None
    useful_tokens_per_s: float | None = None
    mfu: float | None = None
    peak_gib: float | None = None
    hours_500k_x3: float | None = None
    ratio_to_baseline: float | None = None
    fill: float | None = None
    isolation_max_diff: float | None = None
    mean_sample_tokens: float | None = None  # of the data pool: samples/h = useful tok/s / this
    measured_samples: int = 0  # samples in the measured steps (their mean length varies with the rows drawn)
    measured_steps: int = 0
    seconds: float = 0.0


def parse_setup(name: str) -> Setup:
    """'packed-flex+fce' -> Setup. Raises ValueError naming the unknown part."""
    base, *options = name.split("+")
    bases = {
        "baseline": Setup(name, packed=False, checkpointing=True),
        "packed-sdpa": Setup(name), "packed-eager": Setup(name, attention="eager"),
        "packed-flex": Setup(name, attention="flex"),
        "trainer": Setup(name, attention="auto", fused_ce=True, fused_lora=True),
    }
    if base not in bases:
        raise ValueError(f"unknown set-up {base!r} in {name!r}; choose from {', '.join(bases)}")
    setup = bases[base]
    for option in options:
        setup = replace(setup, **option_fields(option, name))
    return setup


def option_fields(option: str, name: str) -> dict[str, Any]:
    if option in OPTIONS:
        return OPTIONS[option]
    if option.startswith(BUDGET_OPTION):
        try:
            budget = float(option[len(BUDGET_OPTION):])
        except ValueError:
            budget = -1.0
        if 0.0 < budget <= 1.0:
            return {"memory_budget": budget}
        raise ValueError(f"option {option!r} in {name!r}: write the activation memory budget as a number in (0, 1], "
                         f"e.g. {BUDGET_OPTION}0.6")
    raise ValueError(f"unknown option {option!r} in {name!r}; options: {', '.join(OPTIONS)}, {BUDGET_OPTION}<0..1>")


# ---------------------------------------------------------------- model


def model_config(tiny: bool) -> Any:
    from transformers import LlamaConfig

    if tiny:
        return LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                           tie_word_embeddings=False, attn_implementation="sdpa")
    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                       rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False,
                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                       attn_implementation="sdpa")


def build_lora_model(scale: Scale) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(scale.device):
        model = AutoModelForCausalLM.from_config(model_config(scale.tiny), dtype=scale.dtype)
    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=LORA_TARGETS)
    return get_peft_model(model, lora)


def training_flops(config: Any, length: int) -> float:
    """Model FLOPs to train on one sample of `length` tokens with a frozen base (no recomputation, LoRA ignored):
    forward, plus backward to the inputs only (1x the matmuls, 2x the attention)."""
    head_dim = config.hidden_size // config.num_attention_heads
    q_width, kv_width = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    per_layer = config.hidden_size * (2 * q_width + 2 * kv_width) + 3 * config.hidden_size * config.intermediate_size
    matmul_params = config.num_hidden_layers * per_layer + config.hidden_size * config.vocab_size
    attention_forward = 2 * length * length * q_width * config.num_hidden_layers
    return 4 * matmul_params * length + 3 * attention_forward


def measure_matmul_peak(scale: Scale) -> float:
    """FLOP/s of a square matmul of random data in the run's dtype (8192^3 bf16 on the GPU)."""
    n = scale.matmul_size
    a, b = (torch.randn(n, n, device=scale.device, dtype=scale.dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    repeats = 10 if scale.device == "cuda" else 2
    synchronize(scale)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(scale)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def synchronize(scale: Scale) -> None:
    if scale.device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- data


def sample_lengths(count: int, scale: Scale, shape: str) -> list[int]:
    """The shared bench scripts' lengths: seeded log-normal, sigma 0.8, mean ~350 before clipping to 16..2048."""
    if shape == "fixed":
        return [scale.fixed_length] * count
    rng = np.random.default_rng(0)
    sigma = 0.8
    mu = np.log(350) - sigma**2 / 2
    lengths = np.clip(rng.lognormal(mu, sigma, count).astype(int), 16, 2048)
    return [max(2, int(n) // scale.length_divisor) for n in lengths]


def make_examples(lengths: list[int], vocab: int) -> list[TokenizedExample]:
    rng = np.random.default_rng(1)
    examples = []
    for length in lengths:
        ids = tuple(rng.integers(4, vocab, length).tolist())
        examples.append(TokenizedExample(ids, ids))
    return examples


Batch = dict[str, torch.Tensor]


def padded_batches(examples: list[TokenizedExample], pad_id: int) -> Iterator[tuple[Batch, list[int]]]:
    """Plain HF batches: groups of 4 padded to the longest, with an attention mask. Yields (batch, sample lengths)."""
    for start in range(0, len(examples) - BASELINE_BATCH + 1, BASELINE_BATCH):
        group = examples[start:start + BASELINE_BATCH]
        longest = max(len(e) for e in group)
        ids = [list(e.input_ids) + [pad_id] * (longest - len(e)) for e in group]
        labels = [list(e.labels) + [IGNORE_INDEX] * (longest - len(e)) for e in group]
        mask = [[1] * len(e) + [0] * (longest - len(e)) for e in group]
        yield {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
               "attention_mask": torch.tensor(mask)}, [len(e) for e in group]


def packed_batches(examples: list[TokenizedExample], row_tokens: int,
                   rows_per_batch: int = 1) -> tuple[Iterator[Any], float]:
    """The trainer's path: pack the pool into rows of row_tokens / rows_per_batch, shuffle the rows (seeded),
    rows_per_batch rows per micro-batch.

    Returns (batches yielding (batch, sample lengths), share of row tokens that are real)."""
    row_length = row_tokens // rows_per_batch
    rows = pack_examples(examples, row_length)
    order = np.random.default_rng(0).permutation(len(rows))
    collate = PackedCollator(row_length, pad_token_id=0)
    groups = [[rows[i] for i in order[start:start + rows_per_batch]]
              for start in range(0, len(order) - rows_per_batch + 1, rows_per_batch)]
    batches = ((collate(group), [length for row in group for length in row.seq_lens]) for group in groups)
    return batches, packing_efficiency(rows, row_length)


# ---------------------------------------------------------------- one set-up


def configure(model: Any, setup: Setup) -> None:
    base = model.get_base_model()
    set_lora_dropout(model, setup.lora_dropout)
    if setup.fused_lora:
        report = enable_fused_lora(model, kernel_dropout=setup.kernel_dropout)
        if setup.kernel_dropout and not report.kernel_dropout:
            print(f"{setup.name}: no CUDA or no Triton here, so torch's dropout (kdrop has no effect)", flush=True)
    else:
        disable_fused_lora(model)
    if setup.packed:
        enable_packed_attention(model, setup.attention)
    else:  # what a user gets by default: SDPA, the config's use_cache, an attention mask per batch
        base.config.use_cache = True
        base.set_attn_implementation("sdpa")
    if setup.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    else:
        model.gradient_checkpointing_disable()
    torch._dynamo.reset()  # a fresh compile per set-up: earlier set-ups' graphs must not use up the recompile limit
    # process-wide, read when the layers compile: dropout masks regenerated in backward (CUDA's Philox) or kept
    torch._functorch.config.functionalize_rng_ops = setup.recompute_rng
    if setup.compile:  # the trainer's own regional compile (--torch_compile)
        compile_decoder_layers(model, "inductor", setup.compile_mode, setup.memory_budget, dynamic=False)
    else:
        for layer in base.get_decoder().layers:
            layer._compiled_call_impl = None  # undo a previous set-up's compile


def set_lora_dropout(model: Any, p: float) -> None:
    """Gives every LoRA module dropout p (PEFT's own modules: nn.Dropout, or nn.Identity for 0)."""
    for module in model.modules():
        if hasattr(module, "lora_dropout") and isinstance(module.lora_dropout, torch.nn.ModuleDict):
            for adapter in module.lora_dropout:
                module.lora_dropout[adapter] = torch.nn.Dropout(p) if p > 0 else torch.nn.Identity()


def loss_of(model: Any, batch: dict[str, torch.Tensor], setup: Setup) -> torch.Tensor:
    if setup.fused_ce:
        return causal_lm_loss(model, batch["input_ids"], batch["labels"], batch.get("position_ids"),
                              batch.get("attention_mask"), document_mask=setup.document_mask,
                              compiled=None if setup.compiled_ce else False)
    return model(**batch).loss


def micro_batches_per_step(setup: Setup) -> int:
    return 1 if setup.packed else BASELINE_ACCUM


@dataclass
class StepTimes:
    lengths: list[int]
    seconds: float
    data_seconds: float  # host time spent taking the next batch and copying it to the device


def train_steps(model: Any, setup: Setup, batches: Iterator[Any], steps: int, scale: Scale,
                on_measure_start: Callable[[], None]) -> StepTimes:
    """Runs `steps` optimizer steps; returns the lengths of the samples trained on and the seconds taken."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    accumulation = micro_batches_per_step(setup)
    on_measure_start()
    start, lengths, data_seconds = time.perf_counter(), [], 0.0
    for _ in range(steps):
        for _ in range(accumulation):
            fetch_started = time.perf_counter()
            batch, batch_lengths = next(batches)
            lengths.extend(batch_lengths)
            batch = {name: to_device(tensor, scale) for name, tensor in batch.items()}
            data_seconds += time.perf_counter() - fetch_started
            (loss_of(model, batch, setup) / accumulation).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(scale)
    return StepTimes(lengths, time.perf_counter() - start, data_seconds)


def to_device(tensor: torch.Tensor, scale: Scale) -> torch.Tensor:
    """As the trainer's DataLoader hands batches over (pin_memory): a copy from pageable memory would make the host
    wait for the GPU to finish all queued work first."""
    if scale.device != "cuda":
        return tensor
    return tensor.pin_memory().to(scale.device, non_blocking=True)


def isolation_check(model: Any, setup: Setup, scale: Scale, row_tokens: int, vocab: int) -> float:
    """Max |hidden(A after B) - hidden(A after B2)|: 0 when packed samples cannot see each other."""
    target_len, before_len = max(2, row_tokens // 8), max(2, row_tokens // 4)
    target, first, second = make_examples([target_len, before_len, before_len], vocab)
    states = []
    for before in (first, second):
        [row] = pack_examples([before, target], row_tokens)
        batch = {k: v.to(scale.device) for k, v in PackedCollator(row_tokens, 0)([row]).items()}
        position_ids = batch["position_ids"]
        ours = setup.fused_ce and setup.document_mask  # the mask the fused loss passes, else transformers' own
        with torch.no_grad():
            hidden = model.get_base_model().get_decoder()(
                input_ids=batch["input_ids"], position_ids=position_ids, use_cache=False,
                attention_mask=packed_rows_mask(model, position_ids) if ours else None)
        states.append(hidden.last_hidden_state[0, before_len:before_len + target_len].float())
    return (states[0] - states[1]).abs().max().item()


def run_setup(model: Any, setup: Setup, shape: str, args: argparse.Namespace, scale: Scale,
              peak_flops: float) -> Result:
    result = Result(setup.name, shape)
    if setup.attention == "flex" and scale.device != "cuda":
        result.status = "skipped: FlexAttention is only run on CUDA"
        return result
    batches, result.fill = prepared_batches(model, setup, shape, args, scale)
    train_steps(model, setup, batches, args.warmup, scale, lambda: None)
    measured = train_steps(model, setup, batches, args.steps, scale, lambda: reset_peak_memory(scale))
    fill_measurements(result, measured.lengths, measured.seconds, model.config, scale, peak_flops,
                      data_mean_tokens(args, scale, shape))
    if setup.packed:
        model.eval()  # LoRA dropout would make the two passes differ for another reason than attention
        result.isolation_max_diff = isolation_check(model, setup, scale, args.row_tokens, model.config.vocab_size)
        model.train()
    result.measured_steps = args.steps
    return result


def prepared_batches(model: Any, setup: Setup, shape: str, args: argparse.Namespace,
                     scale: Scale) -> tuple[Iterator[Any], float | None]:
    """Configure the model for the set-up; returns its batches and (packed) the row fill."""
    configure(model, setup)
    model.train()
    if args.dataset and shape == "var":
        examples = dataset_examples(args)
    else:
        examples = make_examples(sample_lengths(pool_size(args, scale, shape), scale, shape), model.config.vocab_size)
    if setup.packed:
        return packed_batches(examples, args.row_tokens, setup.rows_per_batch)
    return padded_batches(examples, pad_id=0), None


def profile_run(model: Any, setup: Setup, shape: str, args: argparse.Namespace, scale: Scale) -> Breakdown:
    """--profile: warm up, then profile --profile-steps steps of one set-up and sort the time into categories."""
    from torch.profiler import ProfilerActivity, profile

    batches, _ = prepared_batches(model, setup, shape, args, scale)
    train_steps(model, setup, batches, args.warmup, scale, lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if scale.device == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as profiler:
        measured = train_steps(model, setup, batches, args.profile_steps, scale, lambda: None)
    events = profiler.key_averages(group_by_input_shape=True)
    return breakdown(events, measured.seconds, measured.data_seconds, args.profile_steps, LORA_RANK,
                     on_gpu=scale.device == "cuda", top=25)


def pool_size(args: argparse.Namespace, scale: Scale, shape: str) -> int:
    """Var: the whole --pool (packing needs the spread of lengths). Fixed: just the samples the steps consume."""
    if shape == "var":
        return args.pool
    per_step = max(BASELINE_BATCH * BASELINE_ACCUM, args.row_tokens // scale.fixed_length)
    return min(args.pool, (args.warmup + args.steps + 1) * per_step)


def reset_peak_memory(scale: Scale) -> None:
    if scale.device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def dataset_examples(args: argparse.Namespace) -> list[TokenizedExample]:
    """--dataset: the JSONL rows tokenized as the trainer does (trainer.data, loss on the completion only), cut to
    the longest row a 2,048-token layout takes; tokenized once per run."""
    cached = getattr(args, "dataset_cache", None)
    if cached is not None:
        return cached
    from transformers import AutoTokenizer

    from trainer.data import detect_format, normalize, tokenize_record

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    longest = args.row_tokens // 4 if args.row_tokens >= 8192 else args.row_tokens
    examples = []
    for line in Path(args.dataset).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            ids, labels = tokenize_record(normalize(row, detect_format(row)), tokenizer)
            examples.append(TokenizedExample(tuple(ids[:longest]), tuple(labels[:longest])))
    args.dataset_cache = examples
    return examples


def data_mean_tokens(args: argparse.Namespace, scale: Scale, shape: str) -> float:
    """Mean tokens per sample of the whole data pool (what an epoch over this data averages)."""
    if args.dataset and shape == "var":
        examples = dataset_examples(args)
        return sum(len(e) for e in examples) / len(examples)
    lengths = sample_lengths(args.pool, scale, shape)
    return sum(lengths) / len(lengths)


def fill_measurements(result: Result, lengths: list[int], seconds: float, config: Any, scale: Scale,
                      peak_flops: float, mean_tokens: float) -> None:
    """samples/h = useful tok/s over the data's mean sample length: the few packed rows a run measures hold a random
    mix of long and short samples (best-fit packing sorts them into rows), so counting their samples would swing the
    figure by tens of percent while the tokens they hold stay at the row length."""
    result.seconds = seconds
    result.useful_tokens_per_s = sum(lengths) / seconds
    result.mean_sample_tokens = mean_tokens
    result.measured_samples = len(lengths)
    per_second = result.useful_tokens_per_s / mean_tokens
    result.samples_per_hour = per_second * 3600
    result.mfu = sum(training_flops(config, n) for n in lengths) / seconds / peak_flops
    result.hours_500k_x3 = EPOCH_SAMPLES / per_second / 3600
    if scale.device == "cuda":
        result.peak_gib = torch.cuda.max_memory_allocated() / 2**30


# ---------------------------------------------------------------- driver


def reset_lora(model: Any, initial: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in initial:
                parameter.copy_(initial[name])
                parameter.grad = None


def lora_changed(model: Any, initial: dict[str, torch.Tensor]) -> bool:
    """Whether training moved the LoRA weights: a set-up that is fast because no gradient flows is not a result."""
    with torch.no_grad():
        return any(not torch.equal(parameter, initial[name]) for name, parameter in model.named_parameters()
                   if name in initial)


def run_all(args: argparse.Namespace, scale: Scale, setups: list[Setup], profiled: list[Setup]) -> dict[str, Any]:
    peak = measure_matmul_peak(scale)
    print(f"matmul peak: {peak / 1e12:.4g} TFLOP/s ({scale.matmul_size}^3, {scale.dtype})", flush=True)
    model = build_lora_model(scale)
    initial = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    report: dict[str, Any] = {"environment": environment(scale), "peak_tflops": peak / 1e12, "results": []}
    for shape in ("var", "fixed") if args.shape == "both" else (args.shape,):
        baseline_rate = None
        for setup in setups:
            reset_lora(model, initial)
            result = guarded_run(model, setup, shape, args, scale, peak)
            if result.status == "ok" and not lora_changed(model, initial):
                result.status = "error: the LoRA weights did not change (no gradient reached them)"
            baseline_rate = result.samples_per_hour if setup.name == "baseline" else baseline_rate
            if baseline_rate and result.samples_per_hour:
                result.ratio_to_baseline = result.samples_per_hour / baseline_rate
            print(format_line(result), flush=True)
            report["results"].append(asdict(result))
            if args.json_out:
                write_json_atomically(Path(args.json_out), report)
        for setup in profiled:
            report.setdefault("profiles", []).append(guarded_profile(model, initial, setup, shape, args, scale))
            if args.json_out:
                write_json_atomically(Path(args.json_out), report)
    return report


def guarded_profile(model: Any, initial: dict[str, torch.Tensor], setup: Setup, shape: str,
                    args: argparse.Namespace, scale: Scale) -> dict[str, Any]:
    reset_lora(model, initial)
    entry: dict[str, Any] = {"setup": setup.name, "shape": shape}
    try:
        found = profile_run(model, setup, shape, args, scale)
    except torch.OutOfMemoryError:
        entry["status"] = "oom"
    except Exception as error:  # noqa: BLE001 - a benchmark reports a broken profile and goes on
        entry["status"] = f"error: {type(error).__name__}: {str(error)[:200]}"
    else:
        entry.update(status="ok", **found.as_dict())
        print(f"\nprofile {shape} {setup.name}", *found.lines(), sep="\n", flush=True)
    finally:
        release_memory(model, scale)
    return entry


def guarded_run(model: Any, setup: Setup, shape: str, args: argparse.Namespace, scale: Scale,
                peak: float) -> Result:
    """One set-up; an OOM or a failure becomes the result's status so the other set-ups still run."""
    try:
        return run_setup(model, setup, shape, args, scale, peak)
    except torch.OutOfMemoryError:
        return Result(setup.name, shape, status="oom")
    except Exception as error:  # noqa: BLE001 - a benchmark reports a broken set-up and goes on
        return Result(setup.name, shape, status=f"error: {type(error).__name__}: {str(error)[:200]}")
    finally:
        release_memory(model, scale)


def release_memory(model: Any, scale: Scale) -> None:
    for parameter in model.parameters():
        parameter.grad = None
    gc.collect()
    if scale.device == "cuda":
        torch.cuda.empty_cache()


def environment(scale: Scale) -> dict[str, Any]:
    import peft
    import transformers

    device = torch.cuda.get_device_name(0) if scale.device == "cuda" else "cpu"
    return {"device": device, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "tiny": scale.tiny}


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def format_number(value: float | None, pattern: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, pattern)


def format_line(result: Result) -> str:
    if result.status != "ok":
        return f"{result.shape:5} {result.setup:28} {result.status}"
    return (f"{result.shape:5} {result.setup:28} {format_number(result.samples_per_hour, '>10,.0f')} "
            f"{format_number(result.useful_tokens_per_s, '>9,.0f')} {format_number(result.mfu, '>6.1%')} "
            f"{format_number(result.peak_gib, '>6.1f')} {format_number(result.hours_500k_x3, '>8.1f')} "
            f"{format_number(result.ratio_to_baseline, '>6.2f')}x fill {format_number(result.fill, '.1%')} "
            f"isolation {format_number(result.isolation_max_diff, '.3g')}")


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['environment']}  matmul peak {report['peak_tflops']:.4g} TFLOP/s")
    columns = ("samples/h", 10), ("tok/s", 9), ("MFU", 6), ("GiB", 6), ("500kx3 h", 8), ("ratio", 7)
    print(f"{'shape':5} {'set-up':28} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for row in report["results"]:
        print(format_line(Result(**row)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setups", default=DEFAULT_SETUPS, help=f"comma-separated (default {DEFAULT_SETUPS})")
    parser.add_argument("--shape", choices=["var", "fixed", "both"], default="both")
    parser.add_argument("--steps", type=int, default=10, help="measured optimizer steps per set-up")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured steps first (compilation happens here)")
    parser.add_argument("--row-tokens", type=int, default=None, help="packed row length (default 4096; tiny 512)")
    parser.add_argument("--pool", type=int, default=4000, help="samples generated, packed and drawn from")
    parser.add_argument("--json-out", default=None, help="write all results here (atomically, after each set-up)")
    parser.add_argument("--profile", default="", help="comma-separated set-ups to profile after the table's runs "
                        "(per shape): where the step time goes, by category")
    parser.add_argument("--profile-steps", type=int, default=3, help="steps recorded by --profile")
    parser.add_argument("--dataset", default=None, help="var shape: these JSONL rows (tokenized with --tokenizer as "
                        "the trainer does) instead of generated lengths")
    parser.add_argument("--tokenizer", default=None, help="model directory whose tokenizer --dataset uses")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain HF + PEFT baseline")
    parser.add_argument("--tiny", action="store_true", help="tiny Llama on CPU, lengths / 8: tests this script")
    return parser.parse_args(argv)


def scale_for(tiny: bool) -> Scale:
    if tiny:
        return Scale(True, "cpu", torch.float32, length_divisor=8, fixed_length=256, matmul_size=512)
    return Scale(False, "cuda", torch.bfloat16, length_divisor=1, fixed_length=2048, matmul_size=8192)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = scale_for(args.tiny)
    args.row_tokens = args.row_tokens or (512 if args.tiny else 4096)
    try:
        names = [n.strip() for n in args.setups.split(",") if n.strip()]
        setups = ([] if args.no_baseline else [parse_setup("baseline")]) + \
            [parse_setup(n) for n in names if n != "baseline"]
        profiled = [parse_setup(n.strip()) for n in args.profile.split(",") if n.strip()]
    except ValueError as error:
        print(f"train_speed: --setups: {error}", file=sys.stderr)
        return 2
    if args.dataset and not args.tokenizer:
        print("train_speed: --dataset needs --tokenizer DIR (the model directory)", file=sys.stderr)
        return 2
    if scale.device == "cuda" and not torch.cuda.is_available():
        print("train_speed: no CUDA GPU visible; use --tiny to run on CPU", file=sys.stderr)
        return 2
    if args.row_tokens < scale.fixed_length:
        print(f"train_speed: --row-tokens must be at least {scale.fixed_length} (the longest sample)", file=sys.stderr)
        return 2
    print_table(run_all(args, scale, setups, profiled))
    return 0


if __name__ == "__main__":
    sys.exit(main())

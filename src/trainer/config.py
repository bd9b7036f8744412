"""The trainer's settings as dataclasses: one field per command-line flag (cli.py builds the parser from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DATASET_FORMATS = ("auto", "chat", "alpaca", "prompt_completion", "text")
# The stack the trainer is measured on (torch 2.11, transformers 5.17, as on the lent H100/H200) and that
# constraints/lora-cu130-2026.11.txt installs; phase1a-2.0 pins releases older than the [train] extra allows.
DEFAULT_STACK = "lora-cu130-2026.11"
BACKENDS = ("hf", "unsloth", "auto")
AUTO_ON_OFF = ("auto", "on", "off")  # --fused_ce, --fused_lora
AUTO_ON_OFF_FLAGS = ("fused_ce", "fused_lora")
# --torch_compile_mode: torch.compile's modes; auto picks max-autotune-no-cudagraphs for --packing's fixed rows
COMPILE_MODES = ("auto", "default", "max-autotune-no-cudagraphs", "max-autotune", "reduce-overhead")


@dataclass
class DataConfig:
    model_name: str = field(default="", metadata={"help": "local model directory or hub id (bf16/fp32 base)"})
    dataset_path: str = field(default="", metadata={"help": "training data, JSONL"})
    output_dir: str = field(default="./checkpoints/run", metadata={"help": "checkpoints, logs, summary"})
    dataset_format: str = field(default="auto", metadata={"help": "auto|chat|alpaca|prompt_completion|text"})
    on_bad_row: str = field(default="fail", metadata={"help": "fail|skip: what to do with malformed rows"})
    max_seq_length: int = field(default=2048, metadata={"help": "longest tokenized row"})
    truncate_long_rows: bool = field(default=False, metadata={"help": "truncate over-long rows instead of bad"})
    eval_split: float = field(default=0.0, metadata={"help": "fraction of rows held out for eval loss"})
    eval_dataset_path: str | None = field(default=None, metadata={"help": "separate eval JSONL"})
    cache_dir: str | None = field(default=None, metadata={"help": "pre-tokenized cache (default OUTPUT_DIR/tokenized)"})
    dataloader_num_workers: int = field(default=0, metadata={"help": "loader workers and tokenizer processes"})
    seed: int = field(default=42, metadata={"help": "seed for init, shuffling and the eval split"})
    revision: str | None = field(default=None, metadata={"help": "hub revision of the model"})
    trust_remote_code: bool = field(default=False, metadata={"help": "run code shipped with the model (off)"})


@dataclass
class TrainConfig(DataConfig):
    stack: str | None = field(default=None, metadata={"help": "envdoctor stack to check (default: envdoctor.toml's, "
                                                                  "else lora-cu130-2026.11)"})
    load_in_4bit: bool = field(default=False, metadata={"help": "refused: the trainer never quantizes the base"})
    load_in_8bit: bool = field(default=False, metadata={"help": "refused: the trainer never quantizes the base"})
    num_train_epochs: float = field(default=3.0, metadata={"help": "passes over the data, > 0 (fractions allowed)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps to run; overrides --num_train_epochs "
                                                         "when > 0 (-1: off)"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "samples (or packed rows) per step on "
                                                                           "each GPU, >= 1"})
    per_device_eval_batch_size: int = field(default=4, metadata={"help": "samples per eval batch, >= 1"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step, >= 1"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate of the LoRA weights, > 0"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of the steps spent warming up, in [0, 1)"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler: cosine, linear, "
                                                                       "constant, constant_with_warmup..."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay, >= 0"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    grad_norm_limit: float = field(default=1e4, metadata={"help": "stop when the grad norm exceeds this"})
    logging_steps: int = field(default=10, metadata={"help": "log loss, speed and memory every N steps, >= 1"})
    save_steps: int = field(default=500, metadata={"help": "save a checkpoint every N steps, >= 1"})
    save_total_limit: int | None = field(default=None, metadata={"help": "keep at most N checkpoints (default: all)"})
    eval_steps: int | None = field(default=None, metadata={"help": "eval loss every N steps (default: "
                                                                   "--save_steps)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward: "
                                                                          "less memory, about 30% slower"})
    packing: str = field(default="auto", metadata={
        "switch": True, "help": "auto|on|off (--packing alone: on; --no-packing: off): samples packed into rows of "
                                "--max_seq_length with per-sample attention (auto: on where that isolation holds: "
                                "the hf backend, transformers 5.x, no remote code)"})
    memory_fit: str = field(default="auto", metadata={
        "help": "auto|off: before loading weights, estimate the peak GPU memory and, if it would not fit, train with "
                "a lower --activation_memory_budget, a smaller micro-batch with more accumulation (same effective "
                "batch) or --gradient_checkpointing, whichever is fastest and fits (off: as given)"})
    fused_ce: str = field(default="auto", metadata={"help": "auto|on|off: chunked fused cross-entropy (auto: on with "
                                                            "--packing)"})
    fused_lora: str = field(default="auto", metadata={"help": "auto|on|off: q,k,v and gate,up LoRA in one op per "
                                                                "input (auto: on when training on a GPU)"})
    torch_compile: bool = field(default=False, metadata={"help": "compile each decoder layer with torch.compile"})
    torch_compile_backend: str = field(default="inductor", metadata={
        "help": "torch.compile backend for --torch_compile (inductor; aot_eager/eager to debug)"})
    torch_compile_mode: str = field(default="auto", metadata={
        "help": "torch.compile mode for --torch_compile with inductor: auto|default|max-autotune-no-cudagraphs|"
                "max-autotune|reduce-overhead (auto: max-autotune-no-cudagraphs with --packing on a GPU, whose rows "
                "keep one shape, so its GEMMs are tuned once; else default)"})
    activation_memory_budget: float = field(default=1.0, metadata={
        "help": "with --torch_compile (inductor): the share of a layer's activations kept for backward, in (0, 1]; "
                "below 1 the compiler recomputes the cheapest rest (benchmarks/train_speed.py, 4 x 2,048-token rows: "
                "0.6 kept 38.2 GiB instead of 51.3 at 97% of the speed)"})
    backend: str = field(default="hf", metadata={"help": "hf|unsloth|auto: library that loads and trains the model"})
    report_to: str = field(default="jsonl", metadata={"help": "jsonl|tensorboard (JSONL metrics are always written)"})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "PATH or 'auto' (newest complete)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank, >= 1"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scale numerator (the update is scaled by "
                                                          "alpha / r), > 0"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input, in [0, 1)"})
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS), metadata={
        "help": "projections that get a LoRA adapter (default: every attention and MLP projection)"})
    merge: bool = field(default=False, metadata={"help": "merge the adapter into the base after training"})
    validate: bool = field(default=False, metadata={"help": "validate the merged model after merging"})
    validate_test_set: str | None = field(default=None, metadata={
        "help": "JSONL for --validate (default: --eval_dataset_path, else the held-out --eval_split rows)"})
    max_perplexity: float = field(default=10.0, metadata={"help": "--validate fails at or above this perplexity"})

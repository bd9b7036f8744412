"""The trainer's settings as dataclasses: one field per command-line flag (cli.py builds the parser from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DATASET_FORMATS = ("auto", "chat", "alpaca", "prompt_completion", "text")
DEFAULT_STACK = "phase1a-2.0"
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
    stack: str | None = field(default=None, metadata={"help": "envdoctor stack (envdoctor.toml or phase1a-2.0)"})
    load_in_4bit: bool = field(default=False, metadata={"help": "refused: the trainer never quantizes the base"})
    load_in_8bit: bool = field(default=False, metadata={"help": "refused: the trainer never quantizes the base"})
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    grad_norm_limit: float = field(default=1e4, metadata={"help": "stop when the grad norm exceeds this"})
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = None
    eval_steps: int | None = None
    gradient_checkpointing: bool = False
    packing: bool = False
    fused_ce: str = field(default="auto", metadata={"help": "auto|on|off: chunked fused cross-entropy (auto: on with "
                                                            "--packing)"})
    fused_lora: str = field(default="auto", metadata={"help": "auto|on|off: q,k,v and gate,up LoRA in one op per "
                                                                "input (auto: on when training on a GPU)"})
    torch_compile: bool = False
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
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS))
    merge: bool = field(default=False, metadata={"help": "merge the adapter into the base after training"})
    validate: bool = field(default=False, metadata={"help": "validate the merged model after merging"})
    validate_test_set: str | None = field(default=None, metadata={
        "help": "JSONL for --validate (default: --eval_dataset_path, else the held-out --eval_split rows)"})
    max_perplexity: float = field(default=10.0, metadata={"help": "--validate fails at or above this perplexity"})

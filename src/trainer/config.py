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
DEFAULT_MAX_SEQ_LENGTH = 2048  # the longest tokenized row, for training and for validation's perplexity
DTYPE_CHOICES = ("bfloat16", "float16", "float32")  # merge --dtype, validate --dtype


@dataclass
class DataConfig:
    model_name: str = field(default="", metadata={"help": "local model directory or hub id (bf16/fp32 base)",
                                                  "aliases": ("model_name_or_path",)})
    dataset_path: str = field(default="", metadata={"help": "training data, JSONL (or use --dataset_name)"})
    dataset_name: str = field(default="", metadata={
        "help": "training data as `datasets` loads it: a hub dataset id, a local dataset directory, or a JSON, "
                "JSONL, Parquet, CSV or Arrow file (instead of --dataset_path)"})
    dataset_config: str | None = field(default=None, metadata={"help": "configuration (subset) of --dataset_name"})
    dataset_split: str = field(default="train", metadata={"help": "split of --dataset_name to train on",
                                                          "aliases": ("dataset_train_split",)})
    messages_field: str | None = field(default=None, metadata={"help": "--dataset_name column holding the chat "
                                                                        "messages (default: messages)"})
    prompt_field: str | None = field(default=None, metadata={"help": "--dataset_name column holding the prompt "
                                                                      "(default: prompt)"})
    completion_field: str | None = field(default=None, metadata={"help": "--dataset_name column holding the "
                                                                          "completion (default: completion)"})
    text_field: str | None = field(default=None, metadata={"help": "--dataset_name column holding plain text "
                                                                    "(default: text)",
                                                            "aliases": ("dataset_text_field",)})
    chat_template: str | None = field(default=None, metadata={
        "help": "chat template for chat rows: a bundled name (llama3, chatml) or a Jinja file; replaces the "
                "tokenizer's own (needed for a base model without one)", "aliases": ("chat_template_path",)})
    output_dir: str = field(default="./checkpoints/run", metadata={"help": "checkpoints, logs, summary"})
    dataset_format: str = field(default="auto", metadata={"help": "auto|chat|alpaca|prompt_completion|text"})
    on_bad_row: str = field(default="fail", metadata={"help": "fail|skip: what to do with malformed rows"})
    max_seq_length: int = field(default=DEFAULT_MAX_SEQ_LENGTH, metadata={"help": "longest tokenized row",
                                                                          "aliases": ("max_length",)})
    truncate_long_rows: bool = field(default=False, metadata={"help": "truncate over-long rows instead of bad"})
    eval_split: float = field(default=0.0, metadata={"help": "fraction of rows held out for eval loss"})
    eval_dataset_path: str | None = field(default=None, metadata={"help": "separate eval JSONL"})
    cache_dir: str | None = field(default=None, metadata={"help": "pre-tokenized cache (default OUTPUT_DIR/tokenized)"})
    dataloader_num_workers: int = field(default=0, metadata={"help": "loader workers and tokenizer processes"})
    seed: int = field(default=42, metadata={"help": "seed for init, shuffling and the eval split"})
    revision: str | None = field(default=None, metadata={"help": "hub revision of the model",
                                                         "aliases": ("model_revision",)})
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
    fsdp: bool = field(default=False, metadata={
        "help": "shard the frozen base, the LoRA and its optimizer state over the ranks of torchrun --nproc_per_node "
                "N (FSDP2, one unit per decoder layer), for bases that do not fit one GPU; rank 0 writes the adapter "
                "and checkpoints, which resume on any number of ranks"})
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
    report_to: list[str] = field(default_factory=lambda: ["jsonl"], metadata={
        "help": "trackers to log to besides OUTPUT_DIR/metrics.jsonl (always written): any of transformers' "
                "(tensorboard, wandb, mlflow, trackio, comet_ml, ...), or jsonl/none for the JSONL log alone"})
    push_to_hub: bool = field(default=False, metadata={"help": "upload the adapter (and, with --merge, the merged "
                                                               "model) to the Hugging Face Hub once every check "
                                                               "passed"})
    hub_model_id: str | None = field(default=None, metadata={"help": "hub repository for --push_to_hub (default: "
                                                                      "the --output_dir name); the merged model "
                                                                      "goes to HUB_MODEL_ID-merged"})
    hub_private_repo: bool = field(default=False, metadata={"help": "create the hub repositories private"})
    resume_from_checkpoint: str | None = field(default=None, metadata={"help": "PATH or 'auto' (newest complete)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank, >= 1"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scale numerator (the update is scaled by "
                                                          "alpha / r), > 0"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input, in [0, 1)"})
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS), metadata={
        "help": "projections that get a LoRA adapter (default: every attention and MLP projection)",
        "aliases": ("lora_target_modules",)})
    merge: bool = field(default=False, metadata={"help": "merge the adapter into the base after training"})
    validate: bool = field(default=False, metadata={"help": "validate the merged model after merging"})
    validate_test_set: str | None = field(default=None, metadata={
        "help": "JSONL for --validate (default: --eval_dataset_path, else the held-out --eval_split rows)"})
    max_perplexity: float = field(default=10.0, metadata={"help": "--validate fails at or above this perplexity"})


@dataclass
class MergeConfig:
    """`python -m trainer merge`: merge an adapter into its base and prove the merge (trainer.merge)."""

    base_model: str = field(default="", metadata={"required": True, "help": "full-precision base: local dir or "
                                                                            "hub id"})
    adapter_path: str = field(default="", metadata={"required": True, "help": "peft adapter dir "
                                                                              "(adapter_config.json + safetensors)"})
    output_dir: str = field(default="", metadata={"required": True, "help": "where the merged model goes (must not "
                                                                            "exist)"})
    dtype: str | None = field(default=None, metadata={"choices": DTYPE_CHOICES, "help": "default: the dtype the base "
                                                                                         "was saved in"})
    revision: str | None = field(default=None, metadata={"help": "base model revision (hub ids)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --output_dir"})
    allow_base_mismatch: bool = field(default=False, metadata={
        "help": "merge although adapter_config.json names another base (a copy of the same weights)"})
    tolerance: float | None = field(default=None, metadata={
        "help": "logit difference always allowed, as a fraction of the largest logit (default 1e-4); bf16/fp16 "
                "merges are also allowed twice the unmerged model's own difference"})
    device: str = field(default="cpu", metadata={"help": "where to merge and compare: cpu (default) or cuda"})


@dataclass
class ValidateConfig:
    """`python -m trainer validate`: perplexity and a garbled-output check of a (merged) model (trainer.validate)."""

    model_path: str = field(default="", metadata={"required": True, "help": "model dir (the merged model); reports "
                                                                            "are written here"})
    test_set: str = field(default="", metadata={"required": True, "help": "held-out JSONL (chat / alpaca / "
                                                                          "prompt-completion / text)"})
    max_perplexity: float = field(default=10.0, metadata={"help": "fail at or above this (default 10)"})
    base_model: str | None = field(default=None, metadata={"help": "also measure the base's perplexity (before vs "
                                                                   "after)"})
    num_samples: int = field(default=5, metadata={"help": "test prompts to generate from (default 5)"})
    max_new_tokens: int = field(default=64, metadata={"help": "tokens generated per sample"})
    max_garbled_rate: float = field(default=0.2, metadata={"help": "largest share of garbled samples allowed "
                                                                   "(default 0.2)"})
    max_seq_length: int = field(default=DEFAULT_MAX_SEQ_LENGTH, metadata={"help": "longer rows are truncated"})
    batch_size: int = field(default=8, metadata={"help": "rows per perplexity batch"})
    dataset_format: str = field(default="auto", metadata={"choices": DATASET_FORMATS, "help": "format of the test "
                                                                                              "set rows"})
    dtype: str | None = field(default=None, metadata={"choices": DTYPE_CHOICES, "help": "default: the dtype the "
                                                                                        "model was saved in"})
    device: str | None = field(default=None, metadata={"help": "default: cuda when available, else cpu"})

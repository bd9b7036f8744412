"""Checkpoints of an FSDP run that do not depend on the world size (a mixin of trainer.hf_trainer.LoRATrainer).

transformers' Trainer saves an FSDP run as FSDP checkpoints (the whole model's state dict, an FSDP-keyed optimizer
state) that only an FSDP run reads back. Under FSDP this mixin saves what a one-process run saves instead: the
trainable (LoRA) weights gathered from the shards, written by rank 0 as a normal PEFT adapter, and the optimizer
state with full tensors keyed by parameter index; resuming scatters both back into the shards. A checkpoint
therefore resumes on any world size, with or without --fsdp, and the adapter merges as any other.

On CPU (gloo) accelerate 1.15 never enables FSDP: AcceleratorState switches to FSDP only for GPU and other
accelerator process groups and trains MULTI_CPU runs with DDP. With --fsdp the mixin then selects accelerate's FSDP
path itself, so the CPU tests run the same code as a GPU run. Without --fsdp every method is transformers' own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainer.checkpoint import CheckpointError

OPTIMIZER_FILE = "optimizer.pt"  # transformers.trainer.OPTIMIZER_NAME
SCHEDULER_FILE = "scheduler.pt"  # transformers.trainer.SCHEDULER_NAME
ADAPTER_FILE = "adapter_model.safetensors"


class FSDPCheckpoints:
    """Mix in before transformers.Trainer."""

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()  # type: ignore[misc]
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        requested = self.args.fsdp_plugin_args is not None
        state = self.accelerator.state
        if requested and state.distributed_type == DistributedType.MULTI_CPU:
            state.distributed_type = DistributedType.FSDP
            state.fsdp_plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
            self.is_fsdp_enabled = True

    def adapter_state_dict(self) -> dict[str, Any] | None:
        """The trainable weights as full CPU tensors gathered from the shards (a collective: every rank calls it);
        None when the model is not sharded."""
        if not self.is_fsdp_enabled:
            return None
        return {name: full_tensor(parameter).detach().cpu() for name, parameter in self.model.named_parameters()
                if parameter.requires_grad}

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if not self.is_fsdp_enabled:
            return super().save_model(output_dir, _internal_call)  # type: ignore[misc]
        state = self.adapter_state_dict()
        if self.args.should_save:
            self._save(output_dir or self.args.output_dir, state_dict=state)
        return None

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not self.is_fsdp_enabled:
            return super()._save_optimizer_and_scheduler(output_dir)  # type: ignore[misc]
        import torch

        state = self.optimizer.state_dict()
        full = {"state": {index: {key: full_tensor(value).detach().cpu() if is_sharded(value) else value
                                  for key, value in entry.items()} for index, entry in state["state"].items()},
                "param_groups": state["param_groups"]}
        if self.args.should_save:
            torch.save(full, os.path.join(output_dir, OPTIMIZER_FILE))
            torch.save(self.lr_scheduler.state_dict(), os.path.join(output_dir, SCHEDULER_FILE))
        return None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if not self.is_fsdp_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)  # type: ignore[misc]
        from safetensors.torch import load_file

        path = Path(resume_from_checkpoint) / ADAPTER_FILE
        if not path.is_file():
            raise CheckpointError(f"{resume_from_checkpoint}: no {ADAPTER_FILE}; resume from a checkpoint this "
                                  "trainer wrote")
        saved = load_file(str(path))
        adapter_name = getattr(self.model, "active_adapter", "default")
        trainable = [(name, parameter) for name, parameter in self.model.named_parameters() if parameter.requires_grad]
        missing = [name for name, _parameter in trainable if name.replace(f".{adapter_name}", "") not in saved]
        if missing:
            raise CheckpointError(f"{path} lacks {len(missing)} of this run's {len(trainable)} adapter weights (e.g. "
                                  f"{missing[0]}); resume with the run's own --lora_r and --target_modules")
        for name, parameter in trainable:
            copy_into(parameter, saved[name.replace(f".{adapter_name}", "")])  # PEFT saves without the adapter name
        return None

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if not self.is_fsdp_enabled or checkpoint is None:
            return super()._load_optimizer_and_scheduler(checkpoint)  # type: ignore[misc]
        import torch

        saved = torch.load(os.path.join(checkpoint, OPTIMIZER_FILE), map_location="cpu", weights_only=True)
        parameter_of = {}
        for group, saved_group in zip(self.optimizer.param_groups, saved["param_groups"], strict=True):
            parameter_of.update(zip(saved_group["params"], group["params"], strict=True))
        for index, entry in saved["state"].items():
            parameter = parameter_of[index]
            for key, value in entry.items():
                if is_sharded(parameter) and torch.is_tensor(value) and value.shape == parameter.shape:
                    entry[key] = shard_like(parameter, value)
        self.optimizer.load_state_dict(saved)
        self.lr_scheduler.load_state_dict(torch.load(os.path.join(checkpoint, SCHEDULER_FILE), weights_only=True))
        return None


def is_sharded(value: Any) -> bool:
    """A DTensor (FSDP2's parameters and the optimizer state made from them)."""
    return hasattr(value, "device_mesh") and hasattr(value, "full_tensor")


def full_tensor(value: Any) -> Any:
    """A DTensor gathered into a plain tensor on every rank (a collective); a plain tensor as it is."""
    return value.full_tensor() if is_sharded(value) else value


def shard_like(parameter: Any, full: Any) -> Any:
    """`full` (the same on every rank) split as `parameter` is: a DTensor on its mesh with its placements."""
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(device=parameter.device, dtype=parameter.dtype), parameter.device_mesh,
                             parameter.placements)


def copy_into(parameter: Any, full: Any) -> None:
    """Copy a full tensor into a parameter, sharded or not, in place."""
    import torch

    with torch.no_grad():
        if is_sharded(parameter):
            parameter.to_local().copy_(shard_like(parameter, full).to_local())
        else:
            parameter.copy_(full.to(device=parameter.device, dtype=parameter.dtype))

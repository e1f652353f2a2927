"""Training: stage plans (`stages`), FSDP2 wrapping (`strategy`), the loop and `ablate train` (`loop`),
resumable checkpoints (`checkpoint`).  Submodules import torch; this package file does not."""

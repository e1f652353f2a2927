"""ablate: design-space ablation studies of vision-language models."""

"""The paper's wording of each design-axis level (../shared/prismatic/models.csv) → ablate's axis IDs.

Shared by the sweep tests and scripts/prismatic_sweeps.py (which writes sweeps/prismatic/ from models.csv).
"""

OPTIMIZATION = {
    "multi-stage": "two-stage",
    "single-stage": "single-stage",
    "multi-stage-full-finetune": "two-stage-full-ft",
    "single-stage-full-finetune": "single-stage-full-ft",
}
VISION = {
    "CLIP ViT-L/14 @ 336px": "clip-vit-l-336",
    "CLIP ViT-L/14 @ 224px": "clip-vit-l-224",
    "SigLIP ViT-SO/14 @ 384px": "siglip-so400m-384",
    "SigLIP ViT-SO/14 @ 224px": "siglip-so400m-224",
    "DINOv2 ViT-L/14 @ 224px": "dinov2-vit-l-224",
    "ImageNet-21K+1K ViT-L/16 @ 224px": "in1k-vit-l-224",
    "DINOv2 ViT-L/14 + CLIP ViT-L/14 @ 336px": "dinoclip-336",
    "DINOv2 ViT-L/14 + SigLIP ViT-L/14 @ 384px": "dinosiglip-384",
    "DINOv2 ViT-L/14 + SigLIP ViT-SO/14 @ 384px": "dinosiglip-384",
    "DINOv2 ViT-L/14 + SigLIP ViT-SO 14 @ 224px": "dinosiglip-224",
}
IMAGE = {"Letterbox": "letterbox", "Naive Resize": "resize-naive", "Resize Crop": "resize-crop"}
LLM = {
    "Vicuña v1.5 7B": "vicuna-v15-7b",
    "Vicuña v1.5 13B": "vicuna-v15-13b",
    "Llama-2 7B": "llama2-7b",
    "Llama-2 13B": "llama2-13b",
    "Llama-2 Chat 7B": "llama2-chat-7b",
    "Llama-2 Chat 13B": "llama2-chat-13b",
    "Mistral v0.1 7B": "mistral-v01-7b",
    "Mistral Instruct v0.1 7B": "mistral-instruct-v01-7b",
    "Phi-2 3B": "phi-2",
}
DATA = {
    "LLaVa v1.5 Instruct": "llava-v15",
    "LLaVa v1.5 Multimodal-Only": "llava-v15-multimodal-only",
    "LLaVa v1.5 Instruct + LVIS-Instruct-4V": "llava-v15-lvis4v",
    "LLaVa v1.5 Instruct + LRV-Instruct": "llava-v15-lrv",
    "LLaVa v1.5 Instruct + LVIS-Instruct-4V + LRV-Instruct": "llava-v15-lvis4v-lrv",
}

# Prismatic trains its fractional-epoch models to fixed step budgets (prismatic/conf/models.py:
# finetune_max_steps of train-1.25-epochs+7b and train-1.5-epochs+7b), 1.25 / 1.5 x 5,200 steps per epoch
MAX_STEPS = {"1.25": 6500, "1.5": 7800}


def expected_levels(row: dict[str, str]) -> dict[str, str]:
    """Axis levels a models.csv row must have as a design point."""
    vision = VISION[row["visual_representation"]]
    return {
        "recipe": OPTIMIZATION[row["optimization_procedure"]],
        "vision": vision,
        "image": IMAGE[row["image_processing"]],
        "llm": LLM[row["language_model"]],
        "data": DATA[row["datasets"]],
        "train.epochs": row["train_epochs"].removesuffix(".0"),
        "projector": "fused-mlp" if vision.startswith("dino") and "+" in row["visual_representation"] else "mlp",
    }

"""VLM building blocks: vision backbones, projectors, the LLM with its prompt formats, and the VLM."""

"""Known effects of the analysis fixture study (benchmark sizes, per-level accuracy); imported by name."""

BENCHMARKS = {"gqa": 300, "pope": 240, "vsr": 200}
ACCURACY = {"letterbox": 0.60, "resize-naive": 0.58, "resize-crop": 0.42}

"""Stage 2, the teacher: verified weights, fine-tuning (one process or torchrun ranks), test
metrics, the cached scorer and how fast a teacher trains and scores on this machine."""

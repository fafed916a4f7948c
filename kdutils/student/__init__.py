"""Stages 3 and 4, the student: the BiLSTM, its training loop, the distillation losses, the
TF-IDF reference and the distillation runs."""

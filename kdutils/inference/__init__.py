"""Saved models as predictors (eager PyTorch, ONNX, int8), shared by the teacher's scorer, the
server and batch prediction; ONNX export."""

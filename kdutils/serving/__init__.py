"""Stage 5, serving: the FastAPI app, replicas behind nginx, load and micro benchmarks, the
peer servers the service is measured against and the light latency client."""

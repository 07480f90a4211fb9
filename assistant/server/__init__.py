"""The assistant over HTTP: an OpenAI-compatible chat-completions API plus document, feedback, health and metrics
routes (FastAPI + uvicorn). `python -m assistant serve`."""

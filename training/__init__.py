"""Solution B: the private model's life cycle (data → tokenizer → pre-training → SFT → alignment → eval → registry).

Built in its own issue; the assistant's `private` backend already loads any Hugging Face causal-LM folder that the
registry promotes (`<models_dir>/PROMOTED`).
"""

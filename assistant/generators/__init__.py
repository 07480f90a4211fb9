"""Generation backends behind one interface, chosen by settings or per call."""

from assistant.generators.base import GenerationRequest, Generator, GeneratorUnavailable, Usage

BACKENDS = ("extractive", "hosted", "private")


def build_generator(name: str, settings, store, embedder) -> Generator:
    if name == "extractive":
        from assistant.generators.extractive import ExtractiveGenerator

        return ExtractiveGenerator(store, embedder, settings)
    if name == "hosted":
        from assistant.generators.hosted import HostedGenerator

        return HostedGenerator(settings)
    if name == "private" and settings.private_base_url:  # served by vLLM & co: the same client as Solution A
        from assistant.generators.hosted import HostedGenerator

        return HostedGenerator(settings, served_private=True)
    if name == "private":
        from assistant.generators.private import PrivateGenerator

        return PrivateGenerator(settings)
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "GenerationRequest", "Generator", "GeneratorUnavailable", "Usage", "build_generator"]

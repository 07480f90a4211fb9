"""Solution A: any OpenAI-compatible chat API (OpenAI, Azure-style gateways, vLLM, llama.cpp server...)."""

from __future__ import annotations

from collections.abc import Iterator

from assistant.generators.base import GenerationRequest, GeneratorUnavailable, Usage


class HostedGenerator:
    name = "hosted"
    can_condense = True  # has a language model to rewrite follow-up questions
    leaves_company = True

    def __init__(self, settings):
        self.settings = settings
        self._llm = None

    def available(self) -> tuple[bool, str]:
        if self.settings.hosted_api_key is None and not self.settings.hosted_base_url:
            return False, "no hosted API configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI server)"
        return True, ""

    def _client(self):
        ok, why = self.available()
        if not ok:
            raise GeneratorUnavailable(why)
        if self._llm is None:
            from langchain_openai import ChatOpenAI

            s = self.settings
            key = s.hosted_api_key.get_secret_value() if s.hosted_api_key else "not-needed"
            self._llm = ChatOpenAI(
                model=s.hosted_model, base_url=s.hosted_base_url, api_key=key, temperature=s.temperature,
                max_tokens=s.max_answer_tokens, timeout=s.hosted_timeout_s, max_retries=1,
                stream_usage=True,
            )
        return self._llm

    def stream(self, request: GenerationRequest, usage: Usage | None = None) -> Iterator[str]:
        llm = self._client()
        for chunk in llm.stream(request.messages):
            if chunk.content:
                yield chunk.content
            if usage is not None and getattr(chunk, "usage_metadata", None):
                usage.prompt_tokens = chunk.usage_metadata.get("input_tokens", 0)
                usage.completion_tokens = chunk.usage_metadata.get("output_tokens", 0)

    def condense(self, prompt: str) -> str | None:
        return self._client().invoke([{"role": "user", "content": prompt}]).content

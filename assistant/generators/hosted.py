"""Solution A: any OpenAI-compatible chat API (OpenAI, Azure-style gateways, vLLM, llama.cpp server...)."""

from __future__ import annotations

from collections.abc import Iterator

from assistant.generators.base import GenerationRequest, GeneratorUnavailable, Usage


class HostedGenerator:
    """Any OpenAI-compatible chat API. Solution A by default; with `private_base_url` the same client reaches the
    private model served on the company's own machines (vLLM, llama.cpp server, TGI), and nothing leaves."""

    name = "hosted"
    can_condense = True  # has a language model to rewrite follow-up questions
    leaves_company = True

    def __init__(self, settings, served_private: bool = False):
        self.settings = settings
        self._llm = None
        if served_private:
            self.name, self.leaves_company = "private", False
            key = settings.private_api_key
            self._endpoint = (settings.private_base_url, key.get_secret_value() if key else None, settings.private_served_model)
        else:
            key = settings.hosted_api_key
            self._endpoint = (settings.hosted_base_url, key.get_secret_value() if key else None, settings.hosted_model)

    def available(self) -> tuple[bool, str]:
        base_url, key, _ = self._endpoint
        if key is None and not base_url:
            return False, "no hosted API configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI server)"
        return True, ""

    def _client(self):
        ok, why = self.available()
        if not ok:
            raise GeneratorUnavailable(why)
        if self._llm is None:
            from langchain_openai import ChatOpenAI

            s, (base_url, key, model) = self.settings, self._endpoint
            self._llm = ChatOpenAI(
                model=model, base_url=base_url, api_key=key or "not-needed", temperature=s.temperature,
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

    def complete(self, prompt: str, max_tokens: int) -> str:
        """One long reply (training data: training/write_questions.py), beyond the answers' token budget."""
        return self._client().bind(max_tokens=max_tokens).invoke([{"role": "user", "content": prompt}]).content

"""The OpenAI chat-completions wire format (the subset a chat client sends and reads), plus this service's own
routes' bodies. Unknown request fields are accepted and ignored, as OpenAI-compatible servers do."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MODELS = {"assistant-extractive": "extractive", "assistant-private": "private", "assistant-hosted": "hosted"}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(description="`assistant-extractive`, `assistant-private` or `assistant-hosted`")
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(None, max_length=128, description="Your end user's id: their turns are logged under it")
    temperature: float | None = None
    max_tokens: int | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class RagInfo(BaseModel):
    """The extra field: what the answer rests on and what the rails decided."""
    citations: list[dict]
    guards: list[dict]
    refused: bool
    refusal_reason: str | None = None
    handoff: str | None = None
    interaction_id: str | None = None
    role: str
    standalone_question: str | None = None  # the follow-up rewritten with the conversation's context, if it was
    fallback: str | None = None  # the backend that quoted the answer because the one asked failed the output checks


class ChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ChoiceMessage
    finish_reason: str = "stop"


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    rag: RagInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "brightwater-mutual"
    available: bool
    reason: str = ""


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Feedback(BaseModel):
    interaction_id: str = Field(min_length=1, max_length=64)
    rating: Literal["up", "down", 1, -1]
    comment: str | None = Field(None, max_length=2000)


class DocumentInfo(BaseModel):
    id: str
    path: str
    source: str
    audience: str
    chunks: int
    status: str
    ingested_at: str | None = None


class DocumentList(BaseModel):
    object: Literal["list"] = "list"
    total: int
    data: list[DocumentInfo]

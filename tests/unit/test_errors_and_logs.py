"""Foreign exceptions translated in one place; secrets never reach a log line."""

from __future__ import annotations

import io

from loguru import logger
from podfleet.logs import Redactor, configure_logging
from podfleet.pipeline.errors import FatalWorkerError, StageError, StageTimeout
from podfleet.pipeline.translate import translate
from podfleet.settings import Settings


def test_translate_maps_foreign_errors() -> None:
    assert isinstance(translate(TimeoutError("slow")), StageTimeout)
    err = translate(ConnectionRefusedError("refused"), "scrape")
    assert isinstance(err, StageError) and err.retryable and err.stage == "scrape"
    err = translate(ValueError("bad"), "extract")
    assert isinstance(err, StageError) and not err.retryable
    assert "Traceback" not in str(err)

    class CudaBoom(RuntimeError):
        pass

    CudaBoom.__module__ = "torch.cuda"
    assert isinstance(translate(CudaBoom("CUDA error: device-side assert")), FatalWorkerError)


def test_redactor() -> None:
    redact = Redactor(["rpa_SECRETKEY123"])
    assert "SECRETKEY" not in redact("calling with key rpa_SECRETKEY123")
    assert redact("postgresql://user:hunter2@db:5432/x") == "postgresql://user:***@db:5432/x"
    assert "tok123" not in redact("headers={'Authorization': 'Bearer tok123'}")


def test_log_lines_are_redacted_and_carry_ids(clean_env, monkeypatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_TOPSECRET999")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:dbpass777@localhost/x")
    monkeypatch.setenv("LOG_FORMAT", "json")
    configure_logging(Settings(), worker_id="w-1")
    sink = io.StringIO()
    logger.add(sink, serialize=True)
    with logger.contextualize(job_id="job-9"):
        logger.info("using rpa_TOPSECRET999 and postgresql://u:dbpass777@localhost/x")
    text = sink.getvalue()
    assert "TOPSECRET" not in text and "dbpass777" not in text
    assert '"job_id": "job-9"' in text and '"worker_id": "w-1"' in text

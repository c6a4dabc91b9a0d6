"""A minimal HTTP service that computes on ciphertexts only.

``POST /v1/he/predict`` takes a ciphertext archive (``application/octet-stream``, as written by
``bastion he encrypt-inputs``) and answers the encrypted logits archive. The service loads the
*public* context: it refuses a context that holds the secret key. Optional bearer token
(stored as a sha256 digest, compared in constant time). Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response

from bastion.core.errors import BastionError
from bastion.defenses.encrypted import ckks
from bastion.defenses.encrypted.model import HEModel

MAX_BODY_BYTES = 512 << 20


def create_he_app(bundle: str | Path, public_context: str | Path, token_sha256: str | None = None) -> Any:
    model = HEModel.load(bundle)
    ctx = ckks.load_context(public_context, expect_secret=False)
    app = FastAPI(title="Bastion encrypted inference", version="1")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "ckks": model.params.to_dict(), "holds_secret_key": bool(ctx.is_private())}

    @app.post("/v1/he/predict")
    async def predict(request: Request) -> Response:
        if token_sha256 is not None:
            auth = request.headers.get("authorization", "")
            given = auth[7:] if auth.lower().startswith("bearer ") else ""
            digest = hashlib.sha256(given.encode()).hexdigest()
            if not hmac.compare_digest(digest, token_sha256):
                raise HTTPException(status_code=401, detail="missing or wrong bearer token")
        declared = int(request.headers.get("content-length", "0") or 0)
        if declared > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail=f"body over {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail=f"body over {MAX_BODY_BYTES} bytes")
        try:
            batch = ckks.CipherBatch.from_bytes(body, ctx, "request body")
            out = ckks.evaluate(model, batch)
        except BastionError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        data = out.to_bytes(model.params)
        return Response(content=data, media_type="application/octet-stream")

    return app

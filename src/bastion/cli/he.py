"""``bastion he …`` (client/server encrypted inference) and ``bastion harden encrypt-model``."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import harden_app, he_app
from bastion.cli.output import (
    OutputFormat,
    ThreadsOpt,
    console,
    print_fields,
    print_json,
    use_threads,
)

FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="text or json")]


def _emit(info: dict[str, Any], fmt: OutputFormat) -> None:
    if fmt == OutputFormat.json:
        print_json(info)
    else:
        print_fields(info)


def _inputs(data: Path | None, demo: str | None, label: str | None, limit: int | None) -> Any:
    import numpy as np

    from bastion.core.errors import InvalidInputError

    if demo:
        from bastion.datasets import load_demo_data

        x, y = load_demo_data(demo).splits.eval_split()
    elif data:
        from bastion.datasets.files import load_data

        x, y = load_data(data, label=label).eval_split()
    else:
        raise InvalidInputError("give --data FILE or --demo NAME")
    x = np.asarray(x, dtype=np.float64)
    return (x[:limit], y[:limit]) if limit else (x, y)


@harden_app.command("encrypt-model")
def encrypt_model(
    out: Annotated[Path, typer.Option("--out", help="Bundle directory to write.")],
    model: Annotated[Path | None, typer.Option("--model", help="A linear / square-activation model file.")] = None,
    train_demo: Annotated[str | None, typer.Option("--train-demo", help="Train on a demo data set instead.")] = None,
    arch: Annotated[str, typer.Option("--arch", help="With --train-demo: logreg or he-mlp.")] = "he-mlp",
    hidden: Annotated[int, typer.Option("--hidden")] = 32,
    epochs: Annotated[int, typer.Option("--epochs")] = 60,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: FormatOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Turn a linear model or a small square-activation MLP into a CKKS model bundle."""
    use_threads(threads)
    from bastion.core.errors import InvalidInputError
    from bastion.defenses.encrypted.model import HEModel

    if (model is None) == (train_demo is None):
        raise InvalidInputError("give exactly one of --model FILE or --train-demo NAME")
    if model is not None:
        from bastion.models.loaders import load_model

        adapter: Any = load_model(model)
        shape = tuple(adapter.input_spec.shape)
        if getattr(adapter, "module", None) is not None:
            he = HEModel.from_torch(adapter.module, shape)
        elif getattr(adapter, "estimator", None) is not None:
            he = HEModel.from_sklearn(adapter.estimator, shape)
        else:
            raise InvalidInputError(f"{model}: encrypted inference needs a torch or scikit-learn linear/MLP model")
        accuracy = None
    else:
        from bastion.defenses.encrypted.model import train_demo_he_model

        he, accuracy = train_demo_he_model(str(train_demo), arch, hidden, epochs, seed)
    he.save(out)
    _emit(
        {
            "bundle": str(out),
            "layers": [lay.kind for lay in he.layers],
            "depth": he.depth,
            "ckks": he.params.to_dict(),
            "plaintext_test_accuracy": accuracy,
        },
        fmt,
    )


@he_app.command("keygen")
def keygen(
    bundle: Annotated[Path, typer.Option("--bundle", help="HE model bundle (sets the CKKS parameters).")],
    out: Annotated[Path, typer.Option("--out", help="Directory for secret.ctx (0600) and public.ctx.")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Create a CKKS key pair for a bundle: the secret context stays with the client."""
    from bastion.defenses.encrypted import ckks
    from bastion.defenses.encrypted.model import HEModel

    model = HEModel.load(bundle)
    out.mkdir(parents=True, exist_ok=True)
    ctx = ckks.make_context(model.params)
    ckks.save_context(ctx, out / "secret.ctx", out / "public.ctx")
    _emit({"secret_context": str(out / "secret.ctx"), "public_context": str(out / "public.ctx"),
           "ckks": model.params.to_dict()}, fmt)


@he_app.command("encrypt-inputs")
def encrypt_inputs(
    context: Annotated[Path, typer.Option("--context", help="secret.ctx from `bastion he keygen`.")],
    bundle: Annotated[Path, typer.Option("--bundle")],
    out: Annotated[Path, typer.Option("--out", help="Ciphertext archive to write.")],
    data: Annotated[Path | None, typer.Option("--data")] = None,
    demo: Annotated[str | None, typer.Option("--demo")] = None,
    label: Annotated[str | None, typer.Option("--label")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Encrypt only the first N samples.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Encrypt input samples (client side), many samples per ciphertext."""
    from bastion.defenses.encrypted import ckks
    from bastion.defenses.encrypted.model import HEModel

    model = HEModel.load(bundle)
    ctx = ckks.load_context(context, expect_secret=True)
    x, _ = _inputs(data, demo, label, limit)
    t0 = time.perf_counter()
    batch = ckks.encrypt_batch(ctx, x, model.n_features, model.params.slots)
    batch.save(out, model.params)
    _emit({"inputs": str(out), "samples": len(x), "ciphertexts": sum(len(c) for c in batch.chunks),
           "bytes": out.stat().st_size, "duration_s": round(time.perf_counter() - t0, 3)}, fmt)


@he_app.command("infer")
def infer(
    bundle: Annotated[Path, typer.Option("--bundle")],
    context: Annotated[Path, typer.Option("--context", help="public.ctx (a secret context is refused).")],
    inputs: Annotated[Path, typer.Option("--inputs")],
    out: Annotated[Path, typer.Option("--out")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Evaluate the model on ciphertexts (server side, public context only)."""
    from bastion.defenses.encrypted import ckks
    from bastion.defenses.encrypted.model import HEModel

    model = HEModel.load(bundle)
    ctx = ckks.load_context(context, expect_secret=False)
    t0 = time.perf_counter()
    batch = ckks.CipherBatch.load(inputs, ctx)
    result = ckks.evaluate(model, batch)
    result.save(out, model.params)
    dt = time.perf_counter() - t0
    _emit({"outputs": str(out), "samples": batch.n_samples, "duration_s": round(dt, 3),
           "ms_per_sample": round(1000 * dt / max(batch.n_samples, 1), 3)}, fmt)


@he_app.command("serve")
def serve(
    bundle: Annotated[Path, typer.Option("--bundle")],
    context: Annotated[Path, typer.Option("--context", help="public.ctx")],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8100,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="Require this bearer token.")] = None,
) -> None:
    """Serve encrypted inference over HTTP (POST /v1/he/predict)."""
    import uvicorn

    from bastion.defenses.encrypted.server import create_he_app

    digest = None
    if token_file is not None:
        digest = hashlib.sha256(token_file.read_text().strip().encode()).hexdigest()
    app = create_he_app(bundle, context, digest)
    console.print(f"encrypted inference on http://{host}:{port}/v1/he/predict")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@he_app.command("query")
def query(
    url: Annotated[str, typer.Option("--url", help="e.g. http://127.0.0.1:8100/v1/he/predict")],
    inputs: Annotated[Path, typer.Option("--inputs")],
    out: Annotated[Path, typer.Option("--out")],
    token: Annotated[str | None, typer.Option("--token", envvar="BASTION_HE_TOKEN")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Send a ciphertext archive to `bastion he serve` and save the encrypted answer."""
    import httpx

    from bastion.core.errors import InvalidInputError
    from bastion.core.paths import atomic_write_bytes

    headers = {"content-type": "application/octet-stream"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    resp = httpx.post(url, content=inputs.read_bytes(), headers=headers, timeout=600)
    if resp.status_code != 200:
        raise InvalidInputError(f"server answered {resp.status_code}: {resp.text[:300]}")
    atomic_write_bytes(out, resp.content, mode=0o644)
    _emit({"outputs": str(out), "bytes": len(resp.content)}, fmt)


@he_app.command("decrypt-outputs")
def decrypt_outputs(
    context: Annotated[Path, typer.Option("--context", help="secret.ctx")],
    inputs: Annotated[Path, typer.Option("--inputs", help="Encrypted outputs archive.")],
    labels: Annotated[Path | None, typer.Option("--labels", help="Also score against these labels (npz y).")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Decrypt encrypted logits (client side) into predicted labels."""
    import numpy as np

    from bastion.defenses.encrypted import ckks

    ctx = ckks.load_context(context, expect_secret=True)
    logits = ckks.decrypt_outputs(ctx, ckks.CipherBatch.load(inputs, ctx))
    preds = logits.argmax(axis=1)
    info: dict[str, Any] = {"samples": len(preds), "predictions": preds.tolist()}
    if labels is not None:
        with np.load(labels, allow_pickle=False) as z:
            y = z["y"] if "y" in z else z["y_test"]
        info["accuracy"] = float((preds == y[: len(preds)]).mean())
    _emit(info, fmt)

"""Gateway fixtures: a private $BASTION_HOME per module, a signing key, signed model copies."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
DIGITS_SPEC = {"input_shape": [1, 8, 8], "clip_min": 0.0, "clip_max": 1.0}


def make_config(**over: Any) -> Any:
    """A gateway config whose sandbox loader also knows the hostile test models."""
    from bastion.gateway.config import GatewayConfig

    base: dict[str, Any] = {
        "sandbox": {"loader": "hostile_models:load", "python_path": [str(HERE)], "timeout_s": 10,
                    "start_timeout_s": 60},
        "audit": {"checkpoint_every": 50, "checkpoint_interval_s": 1.0},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return GatewayConfig.model_validate(base)


def signed_copy(src: Path, dest_dir: Path, name: str, priv: Path, sidecar: dict[str, Any] | None = None) -> Path:
    """Copy ``src`` to ``dest_dir/name`` with a sidecar, and sign it."""
    from bastion.artifacts.signing import sign_model

    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    shutil.copyfile(src, dest)
    dest.with_name(dest.name + ".bastion.json").write_text(json.dumps(sidecar or DIGITS_SPEC))
    sign_model(dest, priv)
    return dest


@pytest.fixture(scope="module")
def gw_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from bastion.store.db import dispose_engines

    home = tmp_path_factory.mktemp("gw-home")
    zoo = Path(os.environ["BASTION_HOME"]) / "zoo"
    zoo.mkdir(parents=True, exist_ok=True)
    (home / "zoo").symlink_to(zoo, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BASTION_HOME", str(home))
        mp.delenv("BASTION_DB_URL", raising=False)
        mp.delenv("BASTION_REDIS_URL", raising=False)
        mp.delenv("BASTION_GATEWAY_CONFIG", raising=False)
        yield home
    dispose_engines()


@pytest.fixture(scope="module")
def signer(gw_home: Path) -> tuple[Path, Path]:
    from bastion.artifacts.keys import generate_keypair

    return generate_keypair(gw_home / "signer")


@pytest.fixture(scope="module")
def digits_pt() -> Path:
    from bastion.models.zoo import demo_model_path

    return demo_model_path("digits")


class GatewayTools:
    """Helpers handed to tests as a fixture (``--import-mode=importlib`` cannot import conftest)."""

    make_config = staticmethod(make_config)
    signed_copy = staticmethod(signed_copy)
    here = HERE


@pytest.fixture(scope="session")
def gwt() -> type[GatewayTools]:
    return GatewayTools

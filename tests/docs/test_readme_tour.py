"""The README's five-minute tour runs verbatim: the shell sessions of a Markdown page, run and compared with the page.

A session is every fenced block whose info string is ``console`` between ``<!-- tour:start -->`` and
``<!-- tour:end -->``. In a block, a line starting ``$ `` is a command (a trailing ``\\`` continues it
on the next line); the lines after it, up to the next command, are the output the page shows.

- A command must exit 0, or the code its trailing comment names (``# exit 1``).
- Every output line the page shows must appear in what the command printed, compared as a
  *skeleton*: numbers, hex digests and key material are wildcards, whitespace is collapsed, so a
  re-trained demo model may move a metric but a renamed field, a changed sentence or a missing
  line fails. A line holding ``…`` is an elision: its text up to the ``…`` must be the start of
  an output line's skeleton.

All commands run in one bash process (``cd``, ``export`` and ``&`` carry over) in an empty folder.
``python tests/docs/test_readme_tour.py PAGE.md`` runs the page and prints each command's real output;
``--fill`` writes the first lines of it under every command that shows no output yet.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- tour:start -->", "<!-- tour:end -->"
_EXIT = re.compile(r"#\s*exit\s+(\d+)")
_HEX = re.compile(r"(?<![.\d])\b(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b(?![-+]?\d)|\bbst_[A-Za-z0-9_\-]+|\bcl_[0-9a-f]+")
_NUM = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Step:
    command: str
    expected_rc: int = 0
    shown: list[str] = field(default_factory=list)
    line: int = 0


def skeleton(text: str) -> str:
    s = _HEX.sub("H", text)
    s = _NUM.sub("N", s)
    s = re.sub(r"[│┃|]", " ", s)  # table borders: widths follow the data
    s = re.sub(r"[─━┏┓┗┛┡┩└┘┌┐╇╈┳┻╋┼├┤┬┴]+", "-", s)
    return " ".join(s.split())


def parse(markdown: str) -> list[Step]:
    """The steps of the page's sessions (every START … END section, in order)."""
    if START not in markdown or END not in markdown:
        raise ValueError(f"no {START} … {END} section")
    steps: list[Step] = []
    in_block, pending = False, ""
    lines = markdown.splitlines()
    inside = False
    for no, raw in enumerate(lines, start=1):
        if raw.strip() == START:
            inside = True
            continue
        if raw.strip() == END:
            inside, in_block = False, False
            continue
        if not inside:
            continue
        if raw.startswith("```"):
            in_block = raw.strip() == "```console" if not in_block else False
            continue
        if not in_block:
            continue
        if pending:
            pending += "\n" + raw
            if not raw.endswith("\\"):
                steps[-1].command = pending
                pending = ""
            continue
        if raw.startswith("$ "):
            cmd = raw[2:]
            m = _EXIT.search(cmd)
            steps.append(Step(cmd, int(m.group(1)) if m else 0, line=no))
            if cmd.endswith("\\"):
                pending = cmd
        elif steps:
            steps[-1].shown.append(raw)
    return steps


def run(steps: list[Step], workdir: Path, env: dict[str, str], timeout: float = 900.0) -> list[tuple[int, str]]:
    """Run the steps in one bash process; (exit code, output) per step."""
    marker = f"__STEP_{uuid.uuid4().hex}__"
    script = ["set +e", "exec 2>&1", "trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT"]
    for i, st in enumerate(steps):
        background = st.command.rstrip().endswith("&") or re.search(r"&\s*(#.*)?$", st.command) is not None
        script.append(st.command)
        script.append(f"__rc=$?; echo; echo {marker} {i} $__rc" if not background else f"echo; echo {marker} {i} 0")
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout
    results: list[tuple[int, str]] = []
    chunks = re.split(rf"^{marker} (\d+) (\d+)$", proc.stdout, flags=re.M)
    # chunks: [out0, i, rc, out1, i, rc, ...]
    for k in range(1, len(chunks), 3):
        results.append((int(chunks[k + 1]), chunks[k - 1]))
    if len(results) != len(steps):
        raise RuntimeError(f"ran {len(results)} of {len(steps)} steps; output tail:\n{out[-3000:]}")
    return results


def mismatches(step: Step, rc: int, output: str) -> list[str]:
    """What differs between the page and the run for one step (empty when they agree)."""
    problems: list[str] = []
    if rc != step.expected_rc:
        problems.append(f"exit {rc}, the page says {step.expected_rc}")
    actual = [skeleton(line) for line in output.splitlines() if line.strip()]
    for shown in step.shown:
        if not shown.strip():
            continue
        if "…" in shown:
            head = skeleton(shown.split("…", 1)[0])
            if head and not any(a.startswith(head) for a in actual):
                problems.append(f"no output line starts like: {shown.strip()}")
            continue
        want = skeleton(shown)
        if want not in actual:
            problems.append(f"not printed: {shown.strip()}")
    return problems


def tour_env(home: Path, bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "PYTEST"))}
    env.update(BASTION_HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}")
    zoo = os.environ.get("BASTION_HOME")
    if zoo and (Path(zoo) / "zoo").is_dir():  # the demo zoo trained once for the test session
        home.mkdir(parents=True, exist_ok=True)
        (home / "zoo").symlink_to(Path(zoo) / "zoo", target_is_directory=True)
    return env


def test_skeleton_keeps_words_and_drops_numbers_digests_and_borders() -> None:
    assert skeleton("│ auc  │ 0.5615 │") == skeleton("| auc | 0.61 |") == "auc N"
    assert skeleton("digest f58bc10b482416b05a88") == "digest H"
    # floats are numbers even when their digits look like hex: 18 decimals, or an exponent
    assert skeleton("[[0.002522133057937026,0.00001765880915627349,") == skeleton("[[5.147690558260365e-7,0.97,")
    assert skeleton("fidelity 0.98 after 500 queries") != skeleton("fidelity 0.98 after 500 calls")


def test_parse_reads_commands_exit_codes_continuations_and_shown_output() -> None:
    page = ("x\n<!-- tour:start -->\n```console\n$ a --b     # exit 1\nout 1\n$ c \\\n    d\nout 2\n```\n"
            "```python\n$ not a command\n```\n<!-- tour:end -->\n")
    steps = parse(page)
    assert [(s.command, s.expected_rc, s.shown) for s in steps] == [
        ("a --b     # exit 1", 1, ["out 1"]), ("c \\\n    d", 0, ["out 2"])]


def test_a_changed_line_or_exit_code_is_reported() -> None:
    step = Step("x", 0, ["verdict: unsafe — 4 finding(s)", "head 3b6f5661c7820b8f…"])
    assert mismatches(step, 0, "verdict: unsafe — 5 finding(s)\nhead 9f40a3da647d9ea4…\n") == []
    assert mismatches(step, 1, "verdict: safe\nhead 9f40a3da647d9ea4\n") == [
        "exit 1, the page says 0", "not printed: verdict: unsafe — 4 finding(s)"]


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SESSIONS = [p for p in PAGES if START in p.read_text()]
TOUR_PORTS = {"README.md": 8765, "gateway.md": 8796}


def test_every_page_that_shows_real_output_runs_it() -> None:
    claims = [p.name for p in PAGES if "real output" in p.read_text().lower()]
    untested = [n for n in claims if n not in {p.name for p in SESSIONS}]
    assert not untested, f"pages that say 'real output' without a tested session ({START}): {untested}"
    assert "README.md" in {p.name for p in SESSIONS}


@pytest.mark.parametrize("page", SESSIONS, ids=[p.name for p in SESSIONS])
def test_page_sessions_run_verbatim(page: Path, tmp_path: Path) -> None:
    port = TOUR_PORTS.get(page.name)
    if port is not None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} is busy: the gateway of {page.name}'s session cannot start")
    steps = parse(page.read_text())
    assert steps, f"{page.name}: no commands between the markers"
    if page.name == "README.md":
        assert len(steps) >= 30 and steps[0].command.startswith("bastion tour")
    env = tour_env(tmp_path / "home", Path(sys.executable).parent)
    work = tmp_path / "work"
    work.mkdir()
    problems = []
    for st, (rc, out) in zip(steps, run(steps, work, env), strict=True):
        problems += [f"{page.name} line {st.line}: $ {st.command}\n    {p}" for p in mismatches(st, rc, out)]
        if rc != st.expected_rc:
            problems.append(f"    output: {out.strip()[-1500:]}")
    assert not problems, "\n".join(problems)
    for marker in work.rglob("PWNED-if-this-exists"):
        pytest.fail(f"a malicious tour file was loaded: {marker}")


def fill(page: Path, outputs: list[tuple[Step, str]], keep: int = 6, width: int = 150) -> str:
    """The page with real output under every command that shows none yet (first ``keep`` lines, long
    lines elided with …) — for writing a page; the test then holds the page to it."""
    lines = page.read_text().splitlines()
    inserts: dict[int, list[str]] = {}
    for st, out in outputs:
        if st.shown:
            continue
        last = st.line - 1 + st.command.count("\n")
        real = [ln.rstrip() for ln in out.splitlines() if ln.strip() and not set(ln.strip()) <= set("━─┏┓┗┛┡┩└┘╇┳┻")]
        inserts[last] = [ln if len(ln) <= width else ln[:width].rstrip() + "…" for ln in real[:keep]]
    out_lines: list[str] = []
    for i, ln in enumerate(lines):
        out_lines.append(ln)
        out_lines.extend(inserts.get(i, []))
    return "\n".join(out_lines) + "\n"


def main(argv: list[str]) -> int:  # pragma: no cover - a writer's tool
    import tempfile

    page = Path(argv[1] if len(argv) > 1 else "README.md")
    steps = parse(page.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        env = tour_env(Path(tmp) / "home", Path(sys.executable).parent)
        work = Path(tmp) / "work"
        work.mkdir()
        results = run(steps, work, env)
        bad = 0
        for st, (rc, out) in zip(steps, results, strict=True):
            print(f"$ {st.command}    [exit {rc}]")
            print(out.rstrip())
            for p in mismatches(st, rc, out):
                bad += 1
                print(f"  !! {shlex.quote(p)}", file=sys.stderr)
        if "--fill" in argv:
            page.write_text(fill(page, [(st, out) for st, (_, out) in zip(steps, results, strict=True)]))
        return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv))

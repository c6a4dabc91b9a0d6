"""Column-level PII verdicts: Bastion vs presidio-structured, in one run, on the seeded corpus.

Tables come from :mod:`bastion.data.privacy.pii_corpus` (families ``tuning``, ``fresh``,
``holdout``; every column has an expected verdict). Each table is written to CSV and read back the
way ``bastion data pii`` reads it (cells as text). Both tools use the same offline Presidio
``AnalyzerEngine`` (blank spaCy, Bastion's recognizers, score ≥ 0.4):

- Bastion: ``scan_dataframe`` — share thresholds, sporadic matches, cell rules.
- presidio-structured ``PandasAnalysisBuilder.generate_analysis(selection_strategy=...)`` — the
  Presidio project's own column classifier (``most_common``, its default, and ``mixed``).

Per family it prints: look-alike columns reported as PII (false PII columns), PII columns missed
or given the wrong entity, and seconds per table; the tables of each seed are scored by both
tools back to back. Scoring: a free-text column counts as found when its reported entities are
planted ones (Bastion: all the planted ones its documented row rule requires); presidio-structured
names one entity per column, so any planted one counts, and its ``DATE_TIME`` counts as
``DATE_OF_BIRTH``. ``PERSON`` needs NER, which neither has offline; Bastion's comes from name-like
column names, so PERSON columns are listed apart.

Run: .venv/bin/python bench/pii_columns.py [--seeds 10] [--rows 120] [--families holdout] [--start 500]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import time
from typing import Any

import pandas as pd

from bastion.data.privacy.pii import PiiScanner, scan_dataframe
from bastion.data.privacy.pii_columns import PRECISE_ENTITIES, PiiThresholds
from bastion.data.privacy.pii_corpus import FAMILIES, CorpusTable

FIRST_SEED = {"tuning": 1000, "fresh": 2000, "holdout": 3000}


def as_read_by_cli(df: pd.DataFrame) -> pd.DataFrame:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return pd.read_csv(io.StringIO(buf.getvalue()), dtype=str)


def bastion_verdicts(df: pd.DataFrame, scanner: PiiScanner) -> dict[str, set[str]]:
    rep = scan_dataframe(df, scanner=scanner)
    return {c["column"]: set(c["entities"]) for c in rep["columns"]}


def structured_verdicts(df: pd.DataFrame, analyzer: Any, strategy: str) -> dict[str, set[str]]:
    from presidio_structured import PandasAnalysisBuilder

    builder = PandasAnalysisBuilder(analyzer=analyzer, analyzer_score_threshold=0.4)
    mapping = builder.generate_analysis(df.fillna(""), selection_strategy=strategy).entity_mapping
    out: dict[str, set[str]] = {c: set() for c in df.columns}
    for col, ent in mapping.items():
        out[col] = {"DATE_OF_BIRTH" if ent == "DATE_TIME" else ent}
    return out


def score(table: CorpusTable, got: dict[str, set[str]], strict_free_text: bool) -> dict[str, list[str]]:
    th = PiiThresholds()
    false_pii, missed, person = [], [], []
    for col, expected in table.expected.items():
        found = got.get(col, set())
        if col in table.notes_truth:
            truth = table.notes_truth[col]
            need = {e for e, rows in truth.items()
                    if len(rows) >= (1 if e in PRECISE_ENTITIES else th.free_text_min_rows)}
            ok = bool(found) and found <= set(truth) and (need <= found if strict_free_text else True)
        else:
            ok = found == expected
        if not expected and found:
            false_pii.append(f"{col}:{'/'.join(sorted(found))}")
        elif not ok and expected == {"PERSON"}:
            person.append(col)
        elif not ok:
            missed.append(f"{col}:{'/'.join(sorted(found)) or '-'}")
    return {"false_pii": false_pii, "missed": missed, "person_missed": person}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="tables per family")
    ap.add_argument("--rows", type=int, default=120, help="rows per table")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated: tuning,fresh,holdout")
    ap.add_argument("--start", type=int, default=None, help="first seed of every family (default 1000/2000/3000)")
    args = ap.parse_args()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    scanner = PiiScanner()
    analyzer = scanner.analyzer()
    tools = ["bastion", "structured:most_common", "structured:mixed"]
    print(f"load average {os.getloadavg()}, {args.seeds} tables x {args.rows} rows per family", flush=True)
    for family in args.families.split(","):
        build = FAMILIES[family]
        first = FIRST_SEED[family] if args.start is None else args.start
        totals = {t: {"false_pii": 0, "missed": 0, "person_missed": 0, "seconds": 0.0} for t in tools}
        examples: dict[str, set[str]] = {t: set() for t in tools}
        n_lookalike = n_pii = 0
        for seed in range(first, first + args.seeds):
            table = build(seed, n=args.rows)
            df = as_read_by_cli(table.df)
            n_lookalike += sum(1 for e in table.expected.values() if not e)
            n_pii += sum(1 for e in table.expected.values() if e)
            for tool in tools:
                t0 = time.perf_counter()
                got = (bastion_verdicts(df, scanner) if tool == "bastion"
                       else structured_verdicts(df, analyzer, tool.split(":")[1]))
                totals[tool]["seconds"] += time.perf_counter() - t0
                s = score(table, got, strict_free_text=tool == "bastion")
                for k, v in s.items():
                    totals[tool][k] += len(v)
                    examples[tool].update(x.split(":")[0] for x in v if k == "false_pii")
        print(f"\n{family}: {args.seeds} tables (seeds {first}-{first + args.seeds - 1}), {n_lookalike} look-alike "
              f"columns, {n_pii} PII columns")
        for tool in tools:
            t = totals[tool]
            print(f"  {tool:24s} false PII columns {t['false_pii']:4d}/{n_lookalike}  missed/wrong PII columns "
                  f"{t['missed']:3d}/{n_pii} (+{t['person_missed']} PERSON)  {t['seconds'] / args.seeds:.2f} s/table"
                  + (f"  false: {', '.join(sorted(examples[tool]))}" if examples[tool] else ""), flush=True)
    print(f"\nload average {os.getloadavg()}")


if __name__ == "__main__":
    main()

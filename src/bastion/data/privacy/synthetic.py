"""Synthetic people table with valid PII and decoys (Luhn-failing cards, invalid SSNs, bad IBANs), for demos and tests."""

from __future__ import annotations

import random

import pandas as pd

VALID_CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "3400 000000 00009"]
DECOY_CARDS = ["4111 1111 1111 1112", "5500 0000 0000 0005"]
VALID_SSNS = ["536-22-8435", "212-67-4411", "401-33-2190"]
DECOY_SSNS = ["000-12-3456", "666-45-1234", "123-00-4567", "455-66-0000"]
VALID_IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00"]
DECOY_IBANS = ["GB82 WEST 1234 5698 7654 33", "DE89 3704 0044 0532 0130 01"]


def synthetic_people(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, dict[str, set[int]]]:
    """Rows with a ground-truth map of which rows hold a valid card/SSN/IBAN in ``notes``."""
    rng = random.Random(seed)
    first = ["Alice", "Bob", "Chen", "Dana", "Emil", "Fatima", "Gus", "Hana"]
    last = ["Smith", "Jones", "Okafor", "Muller", "Rossi", "Tanaka"]
    rows = []
    truth: dict[str, set[int]] = {"CREDIT_CARD": set(), "US_SSN": set(), "IBAN_CODE": set()}
    for i in range(n):
        name = f"{rng.choice(first)} {rng.choice(last)}"
        kind = i % 6
        if kind == 0:
            note = f"paid with card {rng.choice(VALID_CARDS)} yesterday"
            truth["CREDIT_CARD"].add(i)
        elif kind == 1:
            note = f"customer SSN {rng.choice(VALID_SSNS)} verified by phone"
            truth["US_SSN"].add(i)
        elif kind == 2:
            note = f"refund to IBAN {rng.choice(VALID_IBANS)} please"
            truth["IBAN_CODE"].add(i)
        elif kind == 3:
            note = f"ticket ref {rng.choice(DECOY_CARDS)} and id {rng.choice(DECOY_SSNS)} look like numbers"
        elif kind == 4:
            note = f"old account {rng.choice(DECOY_IBANS)} was closed, nothing else to say"
        else:
            note = "no personal data in this free text comment at all"
        rows.append({
            "customer_id": 1000 + i,
            "name": name,
            "email": f"{name.split()[0].lower()}.{i}@example.org",
            "phone": f"+1 415 555 {rng.randint(1000, 9999)}",
            "birth_date": f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
            "zip": f"{rng.randint(10000, 99999)}",
            "age": rng.randint(18, 90),
            "gender": rng.choice(["F", "M"]),
            "diagnosis": rng.choice(["flu", "asthma", "diabetes", "healthy"]),
            "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "notes": note,
        })
    return pd.DataFrame(rows), truth

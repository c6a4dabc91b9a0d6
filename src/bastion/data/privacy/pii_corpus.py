"""Seeded customer tables with the PII verdict expected of every column (issue 15, item 4).

Three families, all generated here (no Faker, no download): Luhn-valid card numbers, mod-97-valid
IBANs, SSA-valid SSNs, phone numbers in published fictional/drama ranges and real area codes.

- ``tuning_table``: US-leaning customer table; the thresholds in
  :mod:`bastion.data.privacy.pii_columns` were chosen on it.
- ``fresh_table``: EU-leaning, other column names, formats and look-alikes; written after the
  thresholds were fixed (a sweep over it then led to fixes of value-level patterns: French
  ``rue de la …`` and German ``Berliner Allee`` streets, ``Last, First`` names).
- ``holdout_table``: clinic/HR table written last and run once before one fix
  (a phone in parentheses, ``Name (415-555-0134)``); see docs/data-security.md.

``CorpusTable.expected[column]`` is the set of entity types the column must be reported as
(empty: a look-alike that must not be a PII column; sporadic matches are allowed there);
``CorpusTable.notes_truth[column][entity]`` the rows where PII was planted in free text.
Used by ``tests/data/test_data_pii_corpus.py`` and ``bench/pii_columns.py``.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

FIRST = ["Alice", "Bob", "Chen", "Dana", "Emil", "Fatima", "Gus", "Hana", "Ivan", "Jorge", "Keiko", "Liam", "Maya",
         "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yusuf", "Zoe"]
LAST = ["Smith", "Jones", "Okafor", "Muller", "Rossi", "Tanaka", "O'Brien", "Garcia", "Nguyen", "Kowalski", "Haddad",
        "Fischer", "Dubois", "Silva", "Kim", "Andersson", "Mbeki", "Novak", "Patel", "Ivanova"]
STREETS = ["Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park", "Sunset", "Mill", "River"]
SUFFIXES = ["Street", "Avenue", "Road", "Lane", "Drive", "Boulevard", "Court", "Way", "St", "Ave", "Rd"]
CITIES = [("Springfield", "IL"), ("Portland", "OR"), ("Austin", "TX"), ("Denver", "CO"), ("Madison", "WI")]
US_AREAS = ["212", "415", "312", "617", "206", "303", "512", "646", "718", "202", "305", "404"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "example.co.uk", "test.example.de"]


def _digits(rng: random.Random, k: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(k))


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # the digit left of the check digit is doubled
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def card_number(rng: random.Random) -> str:
    kind = rng.choice(["visa", "mc", "amex"])
    if kind == "amex":
        return luhn_complete(rng.choice(["34", "37"]), 15, rng)
    return luhn_complete("4" if kind == "visa" else str(rng.randint(51, 55)), 16, rng)


def iban(rng: random.Random, country: str | None = None) -> str:
    """A mod-97-valid IBAN (GB, DE, NL or FR), compact."""
    country = country or rng.choice(["GB", "DE", "NL", "FR"])
    banks = {"GB": ["WEST", "NWBK", "BARC"], "NL": ["ABNA", "RABO", "INGB"]}.get(country)
    lengths = {"GB": 14, "NL": 10, "DE": 18, "FR": 23}
    bban = (rng.choice(banks) if banks else "") + _digits(rng, lengths[country])
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - num % 97:02d}{bban}"


def spaced(s: str, k: int = 4) -> str:
    return " ".join(s[i : i + k] for i in range(0, len(s), k))


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def us_phone(rng: random.Random) -> str:
    a, e, s = rng.choice(US_AREAS), rng.randint(201, 989), rng.randint(1000, 9999)
    return rng.choice([f"({a}) {e}-{s}", f"{a}-{e}-{s}", f"+1 {a} {e} {s}", f"+1-{a}-{e}-{s}", f"{a}.{e}.{s}"])


def intl_phone(rng: random.Random) -> str:
    return rng.choice([
        f"+44 20 7946 0{rng.randint(100, 999)}", f"020 7946 0{rng.randint(100, 999)}",
        f"07700 900{rng.randint(100, 999)}", f"+49 30 {rng.randint(1000000, 9999999)}",
        f"+49 151 {rng.randint(10000000, 99999999)}", f"0151 {rng.randint(10000000, 99999999)}",
        f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
    ])


def email(first: str, last: str, i: int, rng: random.Random) -> str:
    local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{i}", f"{last}.{first}{rng.randint(1, 99)}"])
    return f"{local.lower().replace(chr(39), '')}@{rng.choice(DOMAINS)}"


def us_address(rng: random.Random) -> str:
    city, state = rng.choice(CITIES)
    return f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}, {city}, {state} {rng.randint(10000, 99999)}"


def eu_address(rng: random.Random) -> str:
    return rng.choice([
        f"{rng.choice(['Haupt', 'Linden', 'Goethe', 'Schiller'])}{rng.choice(['straße', 'strasse', 'weg', 'allee'])} "
        f"{rng.randint(1, 180)}, {rng.randint(10115, 14199)} Berlin",
        f"Berliner {rng.choice(['Straße', 'Allee', 'Ring'])} {rng.randint(1, 180)}, {rng.randint(10115, 14199)} Berlin",
        f"{rng.randint(1, 120)} rue {rng.choice(['de la Paix', 'Victor Hugo', 'du Faubourg Saint-Honoré', 'Lafayette'])}, "
        f"{rng.randint(75001, 75020)} Paris",
        f"{rng.randint(1, 300)}{rng.choice(['', 'B'])} {rng.choice(['Baker', 'Abbey', 'Kings', 'Station'])} "
        f"{rng.choice(['Street', 'Road', 'Lane', 'Close', 'Crescent'])}, London",
    ])


def ipv4_public(rng: random.Random) -> str:
    first = rng.choice([a for a in range(11, 224) if a not in (127, 172, 192)])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ip_any(rng: random.Random) -> str:
    return rng.choice([
        ipv4_public(rng), ipv4_public(rng), f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        f"2001:db8:{rng.randint(0, 0xffff):x}:{rng.randint(0, 0xffff):x}::{rng.randint(1, 0xffff):x}",
    ])


def order_ref(rng: random.Random) -> str:
    return f"ORD-2024-{rng.randint(100000, 999999)}"


@dataclass
class CorpusTable:
    df: pd.DataFrame
    expected: dict[str, set[str]]
    notes_truth: dict[str, dict[str, set[int]]] = field(default_factory=dict)  # column → entity → rows


def _planted(rng: random.Random, i: int, truth: dict[str, set[int]],
             planted: list[tuple[float, str, Callable[[], str]]], otherwise: Callable[[], str]) -> str:
    """Free text for row ``i``: one draw picks the first ``(below, entity, text)`` with draw < ``below``, whose
    text plants that entity (the row is added to ``truth[entity]``); above them all, ``otherwise()``."""
    k = rng.random()
    for below, entity, text in planted:
        if k < below:
            truth.setdefault(entity, set()).add(i)
            return text()
    return otherwise()


def _table(seed: int, n: int, row: Callable[[random.Random, int, dict[str, set[int]]], dict[str, object]],
           free_text: str, pii: dict[str, set[str]]) -> CorpusTable:
    """``n`` rows from ``row(rng, i, truth)``; the PII columns ``pii`` (every other column is a look-alike), and
    the free-text column ``free_text`` expected to report what its rows planted in ``truth``."""
    rng = random.Random(seed)
    truth: dict[str, set[int]] = {}
    rows = [row(rng, i, truth) for i in range(n)]
    expected: dict[str, set[str]] = {c: set() for c in rows[0]}
    expected.update(pii)
    expected[free_text] = set(truth)
    return CorpusTable(pd.DataFrame(rows), expected, {free_text: truth})


def _notes(rng: random.Random, i: int, first: str, last: str, truth: dict[str, set[int]]) -> str:
    """A support note; about one row in four carries PII, others mention look-alikes."""
    return _planted(rng, i, truth, [
        (0.05, "EMAIL_ADDRESS",
         lambda: f"Customer asked us to use {email(first, last, i, rng)} for invoices from now on."),
        (0.10, "PHONE_NUMBER", lambda: f"Please call back on {us_phone(rng)} after 5pm, customer prefers phone contact."),
        (0.14, "CREDIT_CARD", lambda: _card_note(rng)),
        (0.18, "IBAN_CODE",
         lambda: f"Refund of the deposit should go to IBAN {spaced(iban(rng))} as agreed with the customer."),
        (0.21, "US_SSN", lambda: f"Identity verified with SSN {ssn(rng)} during the onboarding call today."),
        (0.24, "STREET_ADDRESS", lambda: f"Parcel returned, new shipping address is {us_address(rng)} per customer."),
    ], lambda: rng.choice([
        f"Order {order_ref(rng)} delayed by the carrier, customer informed and happy with the update.",
        f"Refund of {rng.uniform(5, 900):.2f} EUR issued for order {rng.randint(100000, 999999)} after complaint.",
        f"Upgraded the app to {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 255)} and "
        "the sync problem went away.",
        f"Ticket 2024-{rng.randint(100000, 999999)} closed, duplicate of an earlier request about delivery times.",
        f"Customer wants {rng.randint(2, 40)} units of SKU-{rng.randint(10000, 99999)}-{rng.choice('ABC')} by Friday.",
        "No personal data in this comment, just a general question about opening hours.",
    ]))


def _card_note(rng: random.Random) -> str:
    card = card_number(rng)
    return f"Customer read out card {spaced(card) if rng.random() < 0.5 else card} over the phone, refused to use portal."


def tuning_table(seed: int, n: int = 120) -> CorpusTable:
    """US-leaning customer table: the family the thresholds were tuned on."""

    def row(rng: random.Random, i: int, truth: dict[str, set[int]]) -> dict[str, object]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        card = card_number(rng)
        return {
            "customer_id": 10_000 + i,
            "customer_name": f"{first} {last}",
            "email": email(first, last, i, rng),
            "phone": us_phone(rng) if rng.random() < 0.7 else intl_phone(rng),
            "address": us_address(rng),
            "iban": spaced(iban(rng)),
            "card_number": spaced(card) if rng.random() < 0.5 else card,
            "ssn": ssn(rng),
            "date_of_birth": f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "ip_address": ip_any(rng),
            "notes": _notes(rng, i, first, last, truth),
            # look-alikes
            "amount": round(rng.uniform(1, 9999), 2),
            "order_ref": order_ref(rng),
            "sku": f"SKU-{rng.randint(10000, 99999)}-{rng.choice('ABCD')}",
            "zip": rng.randint(10000, 99999),
            "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                          f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
            "score": rng.gauss(0, 1000),
            "session_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "app_version": f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 255)}",
            "device_id": rng.randint(10**9, 10**10 - 1),
            "quantity": rng.randint(1, 50),
            "product_name": rng.choice(["Acme Widget", "Turbo Blender", "Garden Hose", "Desk Lamp", "USB Cable"]),
            "status": rng.choice(["shipped", "pending", "returned", "cancelled"]),
        }

    return _table(seed, n, row, "notes", {
        "customer_name": {"PERSON"}, "email": {"EMAIL_ADDRESS"}, "phone": {"PHONE_NUMBER"},
        "address": {"STREET_ADDRESS"}, "iban": {"IBAN_CODE"}, "card_number": {"CREDIT_CARD"}, "ssn": {"US_SSN"},
        "date_of_birth": {"DATE_OF_BIRTH"}, "ip_address": {"IP_ADDRESS"}})


def ean13(rng: random.Random) -> str:
    body = rng.choice(["400", "401", "590", "800", "871"]) + _digits(rng, 9)
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def user_agent(rng: random.Random) -> str:
    return rng.choice([
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{rng.randint(100, 125)}"
        f".0.{rng.randint(4000, 6999)}.{rng.randint(10, 250)} Safari/537.36",
        f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_{rng.randint(0, 5)} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        f"Version/17.{rng.randint(0, 5)} Mobile/15E148 Safari/604.1",
        f"okhttp/4.{rng.randint(0, 12)}.{rng.randint(0, 9)} MyShopApp/{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
    ])


def _fresh_notes(rng: random.Random, i: int, first: str, last: str, truth: dict[str, set[int]]) -> str:
    return _planted(rng, i, truth, [
        (0.06, "EMAIL_ADDRESS",
         lambda: f"Kunde bittet um Rechnung an {email(first, last, i, rng)}, bitte im CRM aktualisieren."),
        (0.12, "PHONE_NUMBER", lambda: f"Rückruf erwünscht unter {intl_phone(rng)}, am besten vormittags."),
        (0.16, "CREDIT_CARD", lambda: f"Payment failed twice on card {'-'.join(spaced(card_number(rng)).split())}, "
                                      "the customer will retry tomorrow."),
        (0.20, "IBAN_CODE",
         lambda: f"SEPA mandate signed for {iban(rng, rng.choice(['DE', 'FR', 'NL']))} and sent to the bank."),
        (0.24, "STREET_ADDRESS", lambda: f"Moved house: the customer now lives at {eu_address(rng)} since last month."),
        (0.27, "DATE_OF_BIRTH", lambda: f"Age check passed, customer was born {rng.randint(1, 28)}/"
                                        f"{rng.randint(1, 12):02d}/{rng.randint(1950, 2004)} per the ID."),
    ], lambda: rng.choice([        f"Invoice INV/2023/{rng.randint(1, 99999):05d} paid late, reminder fee of {rng.uniform(1, 40):.2f} waived.",
        f"Replacement part AB-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)} ordered, delivery in {rng.randint(2, 9)} days.",
        f"Crash fixed in release {rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}.{rng.randint(0, 200)}, "
        "customer confirmed it works now.",
        f"Parcel tracking 1Z{rng.randint(100, 999)}AA1{rng.randint(10**9, 10**10 - 1)} shows it stuck at the depot.",
        f"Customer disputes the {rng.randint(10, 500)} EUR charge from {rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.2024, "
        "forwarded to billing.",
        "General feedback about the website, nothing to follow up on.",
    ]))


def fresh_table(seed: int, n: int = 120) -> CorpusTable:
    """EU-leaning table with other names and formats, written after the thresholds were fixed."""

    def row(rng: random.Random, i: int, truth: dict[str, set[int]]) -> dict[str, object]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        card = card_number(rng)
        dob = (rng.randint(1, 28), rng.randint(1, 12), rng.randint(1940, 2005))
        months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return {
            "Full Name": f"{last}, {first}" if rng.random() < 0.3 else f"{first} {last}",
            "contact_email": email(first, last, i, rng).upper() if rng.random() < 0.2 else email(first, last, i, rng),
            "mobile": intl_phone(rng),
            "contact": email(first, last, i, rng) if rng.random() < 0.5 else intl_phone(rng),
            "billing_address": eu_address(rng),
            "account_iban": iban(rng),
            "card": "-".join(spaced(card).split()) if rng.random() < 0.5 else card,
            "card_on_file": int(luhn_complete("4", 16, rng)),
            "birthdate": rng.choice([f"{dob[1]:02d}/{dob[0]:02d}/{dob[2]}", f"{dob[0]} {months[dob[1] - 1]} {dob[2]}",
                                     f"{dob[2]}-{dob[1]:02d}-{dob[0]:02d}"]),
            "last_login_ip": ip_any(rng),
            "comments": _fresh_notes(rng, i, first, last, truth),
            # look-alikes
            "invoice_no": f"INV/2023/{rng.randint(1, 99999):05d}",
            "po_number": f"PO-{rng.randint(10000, 99999)}-2024",
            "ticket": f"2024-{rng.randint(100000, 999999)}-{rng.randint(10, 99)}",
            "part_no": f"AB-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
            "total": round(rng.lognormvariate(5, 1.2), 2),
            "total_display": f"{rng.uniform(10, 99999):,.2f}",
            "lat": round(rng.uniform(-60, 70), 6),
            "lon": round(rng.uniform(-180, 180), 6),
            "event_time": rng.randint(1_600_000_000, 1_750_000_000),
            "created": f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2024 {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            "account_number": rng.randint(10**9, 10**10 - 1),
            "postcode": rng.randint(1000, 99999),
            "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "client": f"{rng.randint(1, 6)}.{rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 255)}",
            "firmware": f"10.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}",
            "user_agent": user_agent(rng),
            "barcode": ean13(rng),
            "rating": round(rng.uniform(1, 5), 1),
            "price_cents": rng.randint(99, 999_999),
        }

    return _table(seed, n, row, "comments", {
        "Full Name": {"PERSON"}, "contact_email": {"EMAIL_ADDRESS"}, "mobile": {"PHONE_NUMBER"},
        "contact": {"EMAIL_ADDRESS", "PHONE_NUMBER"}, "billing_address": {"STREET_ADDRESS"},
        "account_iban": {"IBAN_CODE"}, "card": {"CREDIT_CARD"}, "card_on_file": {"CREDIT_CARD"},
        "birthdate": {"DATE_OF_BIRTH"}, "last_login_ip": {"IP_ADDRESS"}})


def holdout_table(seed: int, n: int = 100) -> CorpusTable:
    """Clinic/HR table, written and run once after every rule and threshold was final (held out)."""
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December"]

    def row(rng: random.Random, i: int, truth: dict[str, set[int]]) -> dict[str, object]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        note = _planted(rng, i, truth, [
            (0.08, "US_SSN", lambda: f"Patient provided SSN {ssn(rng)} for the insurance claim, copy scanned."),
            (0.16, "EMAIL_ADDRESS",
             lambda: f"Send the lab results to {email(first, last, i, rng)} as requested by the patient."),
            (0.22, "PHONE_NUMBER", lambda: f"Daughter can be reached on {us_phone(rng)} in an emergency, she has "
                                           "power of attorney."),
        ], lambda: rng.choice([
            f"BP {rng.randint(100, 160)}/{rng.randint(60, 100)}, HbA1c {rng.uniform(5, 9):.1f} %, follow-up in "
            f"{rng.randint(2, 12)} weeks.",
            f"Prescribed {rng.choice(['metformin', 'lisinopril', 'atorvastatin'])} {rng.choice([5, 10, 20, 500])} mg, "
            f"batch {rng.randint(100000, 999999)}-{rng.randint(10, 99)}.",
            f"Referred to ward {rng.choice('ABC')}-{rng.randint(100, 499)}, ICD-10 {rng.choice(['E11.9', 'I10', 'J45.909'])}.",
            "Routine visit, no concerns raised by the patient today.",
        ]))
        dob = (rng.randint(1, 28), rng.randint(0, 11), rng.randint(1935, 2010))
        return {
            "patient_name": f"{first} {last}" if rng.random() < 0.8 else f"{first[0]}. {last}",
            "dob": rng.choice([f"{months[dob[1]][:3]} {dob[0]}, {dob[2]}", f"{months[dob[1]]} {dob[0]}, {dob[2]}",
                               f"{dob[1] + 1}/{dob[0]}/{dob[2]}"]),
            "home_phone": us_phone(rng),
            "fax": f"+1 {rng.choice(US_AREAS)} {rng.randint(201, 989)} {rng.randint(1000, 9999)}",
            "emergency_contact": f"{rng.choice(FIRST)} {last} ({us_phone(rng)})",
            "street": us_address(rng),
            "employee_iban": spaced(iban(rng, "GB")),
            "corporate_card": "-".join(spaced(card_number(rng)).split()),
            "ssn": ssn(rng),
            "workstation_ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "clinician_notes": note,
            # look-alikes
            "mrn": rng.randint(10**7, 10**8 - 1),
            "insurance_member_id": f"XGH{rng.randint(10**8, 10**9 - 1)}",
            "visit_date": f"{rng.randint(2022, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "visit_time": f"{rng.randint(7, 18):02d}:{rng.choice(['00', '15', '30', '45'])}",
            "icd10": rng.choice(["E11.9", "I10", "J45.909", "M54.5", "Z00.00"]),
            "room": f"{rng.choice('ABC')}-{rng.randint(100, 499)}",
            "bp": f"{rng.randint(100, 160)}/{rng.randint(60, 100)}",
            "weight_kg": round(rng.uniform(40, 140), 1),
            "lab_value": rng.lognormvariate(0, 2),
            "phone_ext": rng.randint(1000, 9999),
            "agent": f"{rng.randint(2, 5)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}.{rng.randint(0, 255)}",
            "claim_no": f"CLM{rng.randint(2022, 2024)}{rng.randint(10**6, 10**7 - 1)}",
            "batch": f"{rng.randint(100000, 999999)}-{rng.randint(10, 99)}",
            "npi": luhn_complete("80840" + str(rng.randint(1, 2)), 15, rng)[5:],  # 10-digit NPI (Luhn over 80840+NPI)
        }

    return _table(seed, n, row, "clinician_notes", {
        "patient_name": {"PERSON"}, "dob": {"DATE_OF_BIRTH"}, "home_phone": {"PHONE_NUMBER"},
        "fax": {"PHONE_NUMBER"}, "emergency_contact": {"PHONE_NUMBER"}, "street": {"STREET_ADDRESS"},
        "employee_iban": {"IBAN_CODE"}, "corporate_card": {"CREDIT_CARD"}, "ssn": {"US_SSN"},
        "workstation_ip": {"IP_ADDRESS"}})


FAMILIES: dict[str, Callable[..., CorpusTable]] = {
    "tuning": tuning_table, "fresh": fresh_table, "holdout": holdout_table}

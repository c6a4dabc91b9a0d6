"""A pre-filled compliance document (Annex IV, DPIA): sections of fields, each either filled from
Bastion's evidence (with its source) or marked for a human to write."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

TODO = "TO BE WRITTEN BY A HUMAN"


@dataclass
class DocField:
    label: str
    value: str = ""
    source: str = ""

    @property
    def todo(self) -> bool:
        return not self.value.strip()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "todo": self.todo}


@dataclass
class DocSection:
    id: str
    title: str
    fields: list[DocField] = field(default_factory=list)

    def add(self, label: str, value: Any = "", source: str = "") -> DocSection:
        text = value if isinstance(value, str) else "" if value is None else _fmt(value)
        self.fields.append(DocField(label, text, source))
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "fields": [f.to_dict() for f in self.fields]}


@dataclass
class Document:
    kind: str
    title: str
    system: str
    intro: str
    sections: list[DocSection] = field(default_factory=list)
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def section(self, id_: str, title: str) -> DocSection:
        s = DocSection(id_, title)
        self.sections.append(s)
        return s

    @property
    def todo_count(self) -> int:
        return sum(f.todo for s in self.sections for f in s.fields)

    @property
    def filled_count(self) -> int:
        return sum(not f.todo for s in self.sections for f in s.fields)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "system": self.system, "intro": self.intro,
                "generated_at": self.generated_at, "filled": self.filled_count, "to_write": self.todo_count,
                "sections": [s.to_dict() for s in self.sections]}

    def to_markdown(self) -> str:
        lines = [f"# {self.title}", "", f"*System:* {self.system} · *generated:* {self.generated_at} by Bastion", "",
                 self.intro, "", f"*{self.filled_count} fields filled from evidence, {self.todo_count} marked "
                 f"**{TODO}**.*", ""]
        for s in self.sections:
            lines += [f"## {s.id}. {s.title}", ""]
            for f in s.fields:
                if f.todo:
                    lines.append(f"- **{f.label}:** ✍ *{TODO}*")
                else:
                    src = f" _(source: {f.source})_" if f.source else ""
                    value = f.value.replace("\n", "\n  ")
                    lines.append(f"- **{f.label}:** {value}{src}")
            lines.append("")
        return "\n".join(lines)

    def to_html(self) -> str:
        from bastion.govern.render import render_template

        return render_template("document.html.j2", d=self.to_dict(), todo=TODO)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)

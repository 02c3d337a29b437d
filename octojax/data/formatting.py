"""Render records as OctoCoder Question/Answer text, remembering where the answer starts.

The answer boundary is the character where the template's answer field begins
(``{new_contents}`` for commits, ``{completion}`` for instructions); everything from there on,
including any template text after the field, is the answer (the part ``loss_on="answer"`` trains on).
"""

from __future__ import annotations

from collections.abc import Mapping

from octojax.data.config import COMMIT_ANSWER_FIELD, INSTRUCTION_ANSWER_FIELD


class Template:
    """A str.format template split at its answer field."""

    def __init__(self, template: str, answer_field: str):
        marker = "{" + answer_field + "}"
        cut = template.index(marker)
        self.template = template
        self.question = template[:cut]
        self.answer = template[cut:]

    def render(self, fields: Mapping[str, str]) -> tuple[str, int]:
        """(full text, character offset where the answer starts)."""
        question = self.question.format_map(fields)
        return question + self.answer.format_map(fields), len(question)


def commit_template(template: str) -> Template:
    return Template(template, COMMIT_ANSWER_FIELD)


def instruction_template(template: str) -> Template:
    return Template(template, INSTRUCTION_ANSWER_FIELD)

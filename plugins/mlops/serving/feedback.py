"""What the model server trusts in feedback: the ids it answered, one label per row, labels of the right kind.

Request ids come from the server (:func:`new_request_id`); a client's ``X-Request-ID`` is only a correlation
id. Row ``i`` of a request ``<id>`` is addressed as ``<id>:<i>``; a one-row request also as ``<id>``. The
inference log names each row so (:func:`row_ids`), and ``POST /feedback`` accepts a label only for a row the
server answered and has not labelled yet (a correction must say so).

:class:`AnsweredIds` is an in-memory index of the most recent ``serving.answered_ids`` requests: ids older than
that, or answered before a restart, are "unknown or expired" (404), except the rows the inference log's journal
replays after a crash (:meth:`AnsweredIds.restore`).
"""

from __future__ import annotations

import math
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.serving.inputs import InputError

if TYPE_CHECKING:
    from mlops.config import PipelineConfig

#: Separates a request id from a row number in a row's address (never in a server-made id).
ROW_SEPARATOR = ":"


def new_request_id() -> str:
    """A fresh server request id: 24 hex digits (96 random bits)."""
    return secrets.token_hex(12)


def row_ids(request_id: str, rows: int) -> list[str]:
    """The address of each row of a request: the id itself for one row, ``<id>:<row>`` in a batch."""
    if rows == 1:
        return [request_id]
    return [f"{request_id}{ROW_SEPARATOR}{row}" for row in range(rows)]


class FeedbackError(InputError):
    """Feedback the server refuses: 404 unknown id, 409 already labelled, 422 a label of the wrong kind."""

    code = "INVALID_FEEDBACK"

    def __init__(self, status: int, message: str, code: str, field: str | None = None) -> None:
        super().__init__(status, message, field)
        self.code = code


@dataclass(frozen=True, slots=True)
class Answered:
    """One answered request: how many rows, which model version answered."""

    rows: int
    version: int


class AnsweredIds:
    """The most recent answered request ids (at most ``limit``), and which of their rows have a label.

    Used from the event loop only (the routes are coroutines), so it takes no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._answered: OrderedDict[str, Answered] = OrderedDict()
        self._labelled: set[str] = set()

    def __len__(self) -> int:
        return len(self._answered)

    def add(self, request_id: str, rows: int, version: int) -> None:
        self._answered[request_id] = Answered(rows, version)
        while len(self._answered) > self.limit:
            old, entry = self._answered.popitem(last=False)
            for row_id in row_ids(old, entry.rows):
                self._labelled.discard(row_id)

    def restore(self, predictions: Iterable[tuple[str, int]], labelled: Iterable[str]) -> None:
        """Add the rows the journal replayed after a crash (row ids and versions, labelled row ids)."""
        counts: dict[str, list[int]] = {}
        for row_id, version in predictions:
            request_id, _, row = row_id.partition(ROW_SEPARATOR)
            entry = counts.setdefault(request_id, [0, version])
            entry[0] = max(entry[0], int(row) + 1 if row.isdigit() else 1)
        for request_id, (rows, version) in counts.items():
            self.add(request_id, rows, version)
        self._labelled.update(labelled)

    def resolve(self, address: str) -> tuple[str, Answered]:
        """The canonical row address and its request; raises :class:`FeedbackError` (404) for an unknown one."""
        request_id, _, row_text = address.partition(ROW_SEPARATOR)
        entry = self._answered.get(request_id)
        if entry is None:
            raise FeedbackError(
                404,
                f"unknown or expired request id '{request_id}': this server answered no such request, or it "
                f"is older than the {self.limit} most recent (serving.answered_ids) or the server restarted",
                "UNKNOWN_REQUEST_ID",
                "request_id",
            )
        if not row_text:
            if entry.rows != 1:
                raise FeedbackError(
                    422,
                    f"request '{request_id}' scored {entry.rows} rows: label each as '{request_id}:<row>' "
                    f"(0 to {entry.rows - 1})",
                    "ROW_REQUIRED",
                    "request_id",
                )
            return request_id, entry
        if not row_text.isdigit() or int(row_text) >= entry.rows:
            raise FeedbackError(
                404,
                f"request '{request_id}' has no row '{row_text}': it scored {entry.rows} row(s), 0 to "
                f"{entry.rows - 1}",
                "UNKNOWN_REQUEST_ID",
                "request_id",
            )
        return row_ids(request_id, entry.rows)[int(row_text)], entry

    def is_labelled(self, row_id: str) -> bool:
        return row_id in self._labelled

    def label(self, row_id: str) -> None:
        self._labelled.add(row_id)


class LabelRule:
    """What a true label may be: the config's ``allowed`` values of the target, else (classification) the
    classes the answering model knows, else the kind of value the task takes."""

    def __init__(self, config: PipelineConfig) -> None:
        self.target = config.target
        self.task = config.task
        rule = config.expectations.columns.get(config.target)
        self.allowed: tuple[Any, ...] | None = (
            tuple(rule.allowed) if rule is not None and rule.allowed else None
        )
        self._classes: dict[int, tuple[Any, ...] | None] = {}

    def remember(self, version: int, model: Any) -> None:
        """Keep the classes of a model version (``classes_`` of a scikit-learn classifier), once per version."""
        if version in self._classes:
            return
        classes = getattr(model, "classes_", None)
        self._classes[version] = tuple(classes.tolist()) if hasattr(classes, "tolist") else None

    def check(self, label: Any, version: int) -> Any:
        """The label as logged (an integral number as an int where the values are ints), or 422."""
        values = self.allowed if self.allowed is not None else self._classes.get(version)
        where = "expectations.columns" if self.allowed is not None else f"the classes of v{version}"
        if self.task == "regression" and values is None:
            if isinstance(label, bool) or not isinstance(label, (int, float)) or not math.isfinite(label):
                raise self._wrong(label, "a finite number (regression target)")
            return label
        if values is None:
            if isinstance(label, float):
                if not label.is_integer():
                    raise self._wrong(label, "a class: a string, an integer or a boolean")
                return int(label)
            return label
        for value in values:
            if _same_kind(label, value) and label == value:
                return value
        shown = ", ".join(repr(v) for v in values[:20])
        raise self._wrong(label, f"one of {shown} ({where})")

    def _wrong(self, label: Any, expected: str) -> FeedbackError:
        shown = repr(label)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return FeedbackError(
            422,
            f"label {shown} is not a valid value of '{self.target}': expected {expected}",
            "INVALID_LABEL",
            "label",
        )


def _same_kind(label: Any, value: Any) -> bool:
    """JSON kinds: a boolean is not a number, a string is not a number."""
    if isinstance(value, bool) or isinstance(label, bool):
        return isinstance(value, bool) and isinstance(label, bool)
    if isinstance(value, (int, float)):
        return isinstance(label, (int, float))
    return isinstance(label, str) and isinstance(value, str)

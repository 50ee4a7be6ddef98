"""import-overrides: import gate, holdout, experiment, layer and segment id overrides from a file.

The file is CSV with the header ``kind,id,unit_id,value,environment,unit_type``, or
JSON lines with those fields::

    kind,id,unit_id,value,environment,unit_type
    gate,checkout_one_click,u_1001,pass,,
    gate,checkout_one_click,u_1002,fail,staging,
    experiment,checkout_button_color,u_1003,Test,,
    segment,beta_testers,u_1004,,,

``kind`` is gate, holdout, experiment, layer or segment (an ``id_list`` segment).
``value`` is pass or fail for gates and holdouts; a group for experiments and layers
(its id, or its name when no other experiment of the layer has a group of that
name); empty for segments. An empty ``environment`` means all environments, an
empty ``unit_type`` means userID. For gates and holdouts, userID rows for all
environments go to ``passingUserIDs``/``failingUserIDs``; any other environment or
unit type goes to ``environmentOverrides``.

Modes (``--mode``):

* ``add`` (default): send only the ids a target does not hold where the file puts
  them. An id the file moves (a user failing a gate the file says it passes, or in
  another group of the experiment) leaves its old place; undo puts it back.
* ``replace``: each target the file names ends up with exactly the file's id
  overrides (the gate and segment conditions of experiments and layers are kept):
  ``POST`` replaces for gates, holdouts, experiments and layers; a segment's id list
  is reset, or trimmed and topped up when that takes fewer requests.
* ``remove``: remove the listed ids where the target holds them.

The whole file is checked before anything is sent: unknown kind, empty id or unit
id, a target, group, environment or unit type the project does not have, one unit
id given two values in one scope, a segment that is not an id list, a list that
would exceed the API's limit. Any problem stops the job with every bad row named by its
line, rows with the same problem on one line in ranges (exit 2); ``--skip-invalid`` sends
the valid rows and lists the skipped lines.

Ids are grouped per target and chunked to the API's limits: 2,000 per gate or
holdout list, 1,000 per experiment or layer group entry, 1,000 per segment id-list
request (which spends the ``id_list`` quota). A target that already holds every id
gets no request, so importing a file a second time sends nothing. Undo removes
exactly the ids the run added and restores what a replace overwrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from bulkops.errors import InputError
from bulkops.job import JobContext, Mutation, listing

from .parser import RowProblem, read_overrides_file
from .planning import Mode, plan_chunks
from .reading import read_catalog, read_current

__all__ = ["Params", "plan"]


class Params(BaseModel):
    """Options of import-overrides."""

    model_config = ConfigDict(extra="forbid")

    file: Path = Field(
        description="CSV (kind,id,unit_id,value,environment,unit_type) or JSON-lines rows"
    )
    mode: Mode = Field(
        default="add", description="add (default), replace (exactly the file's), or remove"
    )
    skip_invalid: bool = Field(
        default=False, description="send the valid rows and list the skipped lines"
    )


# -- the job ------------------------------------------------------------------------------


def _problem_lines(problems: Sequence[RowProblem]) -> list[str]:
    """One line per kind of problem, naming every row it was found on (in ranges): 98,000
    rows over a list's limit are one line, not 98,000."""
    rows: dict[str, list[int]] = {}
    for p in sorted(problems, key=lambda p: (p.line, p.message)):
        rows.setdefault(p.message, []).append(p.line)
    return [f"{_rows(lines)}: {message}" for message, lines in rows.items()]


def _rows(lines: Sequence[int], *, most: int = 10) -> str:
    """``line 7``, ``lines 3, 9-12`` or, past ``most`` ranges, the first ones and a count."""
    if len(lines) == 1:
        return f"line {lines[0]}"
    spans: list[list[int]] = []
    for line in lines:
        if spans and line <= spans[-1][1] + 1:
            spans[-1][1] = line
        else:
            spans.append([line, line])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans[:most])
    if len(spans) > most:
        text += ", …"
    return f"lines {text} ({len(lines):,} rows)"


async def plan(ctx: JobContext, params: Params) -> AsyncIterator[Mutation]:
    """Check the whole file, read each target's overrides, yield the chunked writes.

    Raises:
        InputError: any bad row (all of them listed, by line) unless ``skip_invalid``.
    """
    catalog = await read_catalog(ctx.client)
    targets, problems = read_overrides_file(params.file, catalog)
    current = await read_current(ctx.client, list(targets))
    mutations, more = plan_chunks(
        targets, current, catalog, mode=params.mode, project=ctx.project_id
    )
    found = [*problems, *more]
    bad = len({p.line for p in found})
    if found and not params.skip_invalid:
        raise InputError(
            listing(f"{params.file}: {bad:,} bad row(s); nothing was sent", _problem_lines(found)),
            hint="fix those rows, or pass --skip-invalid to send the valid ones",
        )
    if found:
        ctx.note(listing(f"{params.file}: skipped {bad:,} invalid row(s)", _problem_lines(found)))
    for mutation in mutations:
        yield mutation

"""Tag gates: add a tag to every gate whose id matches a pattern.

A complete one-off job in one file: ``bulkops run ./examples/my_job.py --pattern
'checkout_*' --tag checkout`` plans it (a dry run), ``--apply`` applies it with the
quota limiter, a checkpoint, ``bulkops resume`` and ``bulkops undo`` for free.

The tag is created first when the project does not have it; every gate change
depends on that create, and restores the gate's previous tags on undo.

Reads go through ``ctx.client``'s resources, which yield each object as the API sent
it; the paths of the writes (and of their undo) come from routes, with no I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field

from bulkops.job import CREATED_ID, GATES, TAGS, Expect, InverseCall, JobContext, Mutation


class Params(BaseModel):
    """Options: which gates, which tag."""

    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description="gate ids to tag, a shell pattern such as 'checkout_*'")
    tag: str = Field(min_length=1, max_length=100, description="the tag to add")


async def plan(ctx: JobContext, params: Params) -> AsyncIterator[Mutation]:
    """Yield the tag's create (if needed), then one PATCH per matching gate."""
    names = {t.get("name") async for t in ctx.client.tags.items()}
    depends: tuple[str, ...] = ()
    if params.tag not in names:
        create = Mutation(
            key=f"tag:create:{params.tag}",
            project=ctx.project_id,
            action="create",
            object=f"tag/{params.tag}",
            method="POST",
            path=TAGS.path(),
            body={"name": params.tag, "description": f"added by bulkops plan {ctx.plan_id}"},
            read=TAGS.path(),
            before=Expect(excludes={"*.name": [params.tag]}),
            after=Expect(contains={"*.name": [params.tag]}),
            inverse=(
                InverseCall(
                    method="DELETE",
                    path=f"{TAGS.path()}/{CREATED_ID}",  # the id the create is given
                    idempotent=True,
                    action="delete",
                ),
            ),
        )
        depends = (create.key,)
        yield create
    async for gate in ctx.client.gates.items():
        gate_id = str(gate["id"])
        old = list(gate.get("tags") or [])
        if not fnmatchcase(gate_id, params.pattern) or params.tag in old:
            continue
        new = [*old, params.tag]
        path = GATES.path(gate_id)
        yield Mutation(
            key=f"gate:tag:{gate_id}",
            project=ctx.project_id,
            action="tag",
            object=f"gate/{gate_id}",
            method="PATCH",
            path=path,
            body={"tags": new},
            read=path,
            before=Expect(fields={"tags": old}),
            after=Expect(fields={"tags": new}),
            before_image={"tags": old},
            inverse=(InverseCall(method="PATCH", path=path, body={"tags": old}),),
            depends_on=depends,
        )

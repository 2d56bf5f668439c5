"""The Thread actor's interface, shared by the actor host and every caller's ActorProxy.

Each method takes and returns a JSON object: a request and an answer of the contract in
actors/threads/contract.py, which says what each method accepts and may answer. Outcomes a caller
must tell apart (a thread that does not exist, a thread busy with a run) are answers, told
apart by `outcome`, not errors, so they cross the sidecar intact.
"""

from typing import Any

from dapr.actor import ActorInterface, actormethod

Payload = dict[str, Any]


class ThreadActorInterface(ActorInterface):
    @actormethod(name="Create")
    async def create(self, request: Payload) -> Payload: ...

    @actormethod(name="Fork")
    async def fork(self, request: Payload) -> Payload: ...

    @actormethod(name="ConfigurePush")
    async def configure_push(self, request: Payload) -> Payload: ...

    @actormethod(name="Describe")
    async def describe(self, request: Payload) -> Payload: ...

    @actormethod(name="PostMessage")
    async def post_message(self, request: Payload) -> Payload: ...

    @actormethod(name="ListRuns")
    async def list_runs(self, request: Payload) -> Payload: ...

    @actormethod(name="Delete")
    async def delete(self, request: Payload) -> Payload: ...

    @actormethod(name="CancelRun")
    async def cancel_run(self, request: Payload) -> Payload: ...

    @actormethod(name="ResumeRun")
    async def resume_run(self, request: Payload) -> Payload: ...

    @actormethod(name="GetRun")
    async def get_run(self, request: Payload) -> Payload: ...

    @actormethod(name="ReadHistory")
    async def read_history(self, request: Payload) -> Payload: ...

    @actormethod(name="WatchdogFired")
    async def watchdog_fired(self, request: Payload) -> Payload: ...

    @actormethod(name="StartChildRun")
    async def start_child_run(self, request: Payload) -> Payload: ...

    @actormethod(name="ChildRunEnded")
    async def child_run_ended(self, request: Payload) -> Payload: ...

    @actormethod(name="ImportHistory")
    async def import_history(self, request: Payload) -> Payload: ...

    @actormethod(name="ScheduleFollowup")
    async def schedule_followup(self, request: Payload) -> Payload: ...

    @actormethod(name="ListFollowups")
    async def list_followups(self, request: Payload) -> Payload: ...

    @actormethod(name="CancelFollowup")
    async def cancel_followup(self, request: Payload) -> Payload: ...

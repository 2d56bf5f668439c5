"""What this host process has done with thread actors: counts a person or a test can read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ActorLifecycle:
    activations: int = 0
    deactivations: int = 0
    active: set[str] = field(default_factory=set)
    steps_running: int = 0
    steps_taken: int = 0
    # Steps whose result was thrown away because the run had moved on elsewhere.
    steps_discarded: int = 0

    def activated(self, thread_id: str) -> None:
        self.activations += 1
        self.active.add(thread_id)

    def deactivated(self, thread_id: str) -> None:
        self.deactivations += 1
        self.active.discard(thread_id)

    def step_started(self) -> None:
        self.steps_running += 1

    def step_finished(self) -> None:
        self.steps_running -= 1
        self.steps_taken += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "activations": self.activations,
            "deactivations": self.deactivations,
            "active": sorted(self.active),
            "steps_running": self.steps_running,
            "steps_taken": self.steps_taken,
            "steps_discarded": self.steps_discarded,
        }


# One per process, like the SDK's ActorRuntime it mirrors.
lifecycle = ActorLifecycle()

"""On the split stack with two actor hosts and the real runtime: many runs at once against
a vendor that refuses requests above its concurrency; with the bound set at the vendor's
limit, every run completes, none is refused, and the vendor never sees more than the bound
at once."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import TEST_AGENTS, Api, make_stack_config, wait_for
from tests.fakes.bounded_vendor import BoundedVendor
from threadhost.stack import Stack

BOUND, RUNS = 4, 40
CHECKIN = {"name": "checkin", "model": "openai:gpt-4o-mini", "system_prompt": "Check in."}


def test_a_herd_of_runs_queues_under_the_bound_instead_of_failing(
    dapr_bin: Path, tmp_path: Path
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "checkin.json").write_text(json.dumps(CHECKIN))
    vendor = BoundedVendor(limit=BOUND, latency=0.1).start()
    env = {
        "THREADHOST_AGENTS_DIRS": json.dumps(
            [*json.loads(TEST_AGENTS["THREADHOST_AGENTS_DIRS"]), str(agents)]
        ),
        "THREADHOST_OPENAI_BASE_URL": vendor.url,
        "THREADHOST_OPENAI_API_KEY": "sk-herd-0000",
        # One attempt: a request the vendor refused would fail its run.
        "THREADHOST_RETRY": json.dumps({"attempts": 1}),
        "THREADHOST_MODEL_CONCURRENCY": json.dumps({"openai": BOUND}),
    }
    config = make_stack_config(dapr_bin, tmp_path, uuid.uuid4().hex[:10], env=env)
    try:
        with Stack(config, split=True, actor_hosts=2) as stack:
            api = Api(stack.api.url)
            threads = [api.create_thread(agent="checkin") for _ in range(RUNS)]

            def start(thread: str) -> str:
                answer = api.http.post(
                    f"/v1/threads/{thread}/messages",
                    json={"content": "Any news?", "mode": "background"},
                )
                assert answer.status_code == 202, answer.text
                return answer.json()["run"]["run_id"]

            with ThreadPoolExecutor(RUNS) as pool:
                runs = list(pool.map(start, threads))
            wait_for(lambda: vendor.served == RUNS, 120, "every run's model call")

            def stopped() -> list[str] | None:
                statuses = [api.run(t, r)["status"] for t, r in zip(threads, runs, strict=True)]
                return statuses if "running" not in statuses else None

            statuses = wait_for(stopped, 60, "every run to stop")
    finally:
        vendor.stop()
    assert statuses == ["completed"] * RUNS
    assert vendor.refused == 0 and vendor.peak <= BOUND

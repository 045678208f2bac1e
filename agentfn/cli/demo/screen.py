"""The demo on screen: the live view while it runs, and the final report."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.text import Text

from ...client.formats import duration
from ...constants import WorkflowState
from ..views import state_text, table
from .fleet import AGENTS, VICTIM
from .tracker import Tracker


def live_view(tracker: Tracker, where: str) -> RenderableType:
    """The live screen: agents, every workflow step, and the latest lines."""
    agents_heading, agents = table("Agents", "agent", "role", "state", "doing")
    for agent_id, role in AGENTS.items():
        state = tracker.agents[agent_id]
        doing = ", ".join(f"{t.id} {t.workflow}/{t.step}" for t in tracker.running_on(agent_id))
        if state.startswith("killed") and tracker.recovery is not None:
            doing = f"SIGKILL while holding {tracker.recovery.task_id}"
        agents.add_row(agent_id, role, state_text(state.split(",")[0]), doing or "-")
    steps_heading, steps = table(
        "Workflows", "workflow", "step", "state", "agent", "attempts", "ran"
    )
    for info in tracker.workflows.values():
        for step in info.steps:
            task = tracker.tasks.get(step.task or "")
            ran = (
                duration(step.finished_ms - step.started_ms)
                if step.finished_ms and step.started_ms
                else "-"
            )
            steps.add_row(
                info.id,
                step.id,
                state_text(step.state.value),
                (task.agent if task else None) or "-",
                str(step.attempts or "-"),
                ran,
            )
    header = Text.assemble(
        ("agentfn demo", "bold"), f"  {where}  ", (f"{tracker.elapsed():.1f} s", "cyan")
    )
    return Group(
        header,
        Text(),
        agents_heading,
        agents,
        Text(),
        steps_heading,
        steps,
        Text(),
        Text("\n".join(tracker.log), style="dim"),
    )


def report(console: Console, tracker: Tracker, total_s: float) -> None:
    """The final results, per-step timings and totals."""
    console.print()
    console.rule("Results")
    for info in tracker.workflows.values():
        console.print(
            Text.assemble(
                ("workflow ", "bold"), (info.id, "bold"), "  ", state_text(info.state.value)
            )
        )
        for step in info.steps:
            result = step.result if isinstance(step.result, dict) else {}
            if "article" in result:
                console.print(f"  {step.id}: {result['article']}", soft_wrap=True)
                console.print(
                    f"  {' ' * len(step.id)}  (sources {', '.join(result['sources'])}; "
                    f"fact checked by {result['fact_checked_by']})"
                )
            elif "code" in result:
                console.print(f"  {step.id}:")
                for line in str(result["code"]).splitlines():
                    console.print(f"      {line}", soft_wrap=True)
    heading, timings = table(
        "Per-step timings", "workflow", "step", "agent", "attempts", "waited", "ran"
    )
    attempts = 0
    for info in tracker.workflows.values():
        for step in info.steps:
            task = tracker.tasks.get(step.task or "")
            attempts += step.attempts
            waited = (
                duration(step.started_ms - step.queued_ms)
                if step.started_ms and step.queued_ms
                else "-"
            )
            ran = (
                duration(step.finished_ms - step.started_ms)
                if step.finished_ms and step.started_ms
                else "-"
            )
            timings.add_row(
                info.id,
                step.id,
                (task.agent if task else None) or "-",
                str(step.attempts),
                waited,
                ran,
            )
        if info.finished_ms:
            timings.add_row(
                info.id,
                Text("whole workflow", style="bold"),
                "",
                "",
                "",
                duration(info.finished_ms - info.created_ms),
            )
    console.print()
    console.print(heading)
    console.print(timings)
    console.print()
    completed = sum(
        1 for info in tracker.workflows.values() if info.state == WorkflowState.COMPLETED
    )
    steps = sum(len(info.steps) for info in tracker.workflows.values())
    console.print(
        f"Totals: {completed} of {len(tracker.workflows)} workflows completed, {steps} steps, "
        f"{attempts} attempts ({attempts - steps} retried), {tracker.messages} messages, "
        f"{tracker.events} events, {total_s:.1f} s in all"
    )
    recovery = tracker.recovery
    if recovery is not None and recovery.finished_by:
        console.print(
            f"Recovered: {recovery.task_id} was held by {VICTIM} (pid {recovery.pid}, attempt "
            f"{recovery.attempt}) when it was killed; {recovery.reason or 'its lease expired'}; "
            f"{recovery.finished_by} completed it on attempt {recovery.finished_attempt}, "
            f"{recovery.finished_at - recovery.killed_at:.1f} s after the kill"
        )

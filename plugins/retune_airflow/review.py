"""The promotion review in Airflow: a human-in-the-loop approval, and recording its answer.

The approval task only asks when the gate passed under policy ``review``; otherwise it is
skipped. Its only default is Reject, so when nobody answers before the timeout Airflow
resumes it with Reject and no responder — recorded as a timeout, never as an approval.

Who may approve: the model key's ``reviewers`` (config) become the task's ``assigned_users``,
less the user who triggered the run, so Airflow itself refuses anyone else (HTTP 403, audited
by the plugin's middleware). The task checks again when it resumes — four-eyes also holds where
Airflow lets every user answer (no reviewers configured, or ``simple_auth_manager_all_admins``):
an approval by the triggering user, or a second one by the same person, is refused, audited and
asked again. ``approvals_required: 2`` asks until two distinct reviewers approved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskAwaitingInput
from airflow.sdk.execution_time.hitl import HITLUser

from pipelines.terms import AuditAction, ConfigState, Decision

log = logging.getLogger(__name__)

APPROVE, REJECT = "Approve", "Reject"
# an answer as the api-server records it in our audit (middleware), and back
ANSWERED = {APPROVE: AuditAction.ANSWERED_APPROVE, REJECT: AuditAction.ANSWERED_REJECT}
ANSWER_OPTION = {action: option for option, action in ANSWERED.items()}
REVIEW_TASK = "review"
AIRFLOW_ACTOR = "airflow:"  # the audit log's actor prefix for what an Airflow user did


class PromotionReviewOperator(HITLOperator):
    """Ask operations staff to approve the run's proposed config, with the gate in the body."""

    # ``config`` is the fleet group's mapped config name, resolved like any templated field
    template_fields = (*HITLOperator.template_fields, "config")

    def __init__(
        self, *, dag_name: str, config: str | None = None, params: Any = None, **kwargs: Any
    ) -> None:
        # The form asks for a reason (see _form_params_only for the DAG's own Params).
        reason = Param("", type="string", maxLength=1000, description="Why (goes to the audit)")
        super().__init__(
            subject="Retune: approve the proposed config?",
            options=[APPROVE, REJECT],
            defaults=[REJECT],  # what a timeout applies: never approve by default
            params={**(params or {}), "reason": reason},
            response_timeout=timedelta(days=1),
            **kwargs,
        )
        self.dag_name = dag_name
        self.config = config

    def execute(self, context: Any) -> Any:
        from retune_airflow.tasks import run_context

        outcome = pull_sibling(context["ti"], "promote") or {}
        if outcome.get("decision") != Decision.AWAITING_APPROVAL:
            raise AirflowSkipException(f"nothing to review: {outcome.get('decision', 'no proposal')}")
        self.response_timeout = timedelta(minutes=int(context["params"]["review_timeout_minutes"]))
        ctx = run_context(self.dag_name, context, self.config)
        self.assigned_users = assigned_reviewers(ctx.config.reviewers, triggering_user(context))
        self.body = review_body(self.dag_name, context, self.config, self.assigned_users)
        self._form_params_only()
        deadline = datetime.now(UTC) + self.response_timeout
        # a retried task (see review_tail) keeps the approvals its first try received
        approvals = recorded_approvals(ctx)
        lost = answer_lost_to_a_retry(ctx)
        if lost is not None:  # process it as the failed try would have; a new request would not hold it
            return self.execute_complete(context, lost, deadline.isoformat(), approvals)
        try:
            return super().execute(context)
        except TaskAwaitingInput as waiting:  # what execute_complete needs when it resumes
            waiting.kwargs = {"deadline": deadline.isoformat(), "approvals": approvals}
            raise

    def execute_complete(
        self,
        context: Any,
        event: dict[str, Any],
        deadline: str | None = None,
        approvals: list[str] | None = None,
    ) -> Any:
        self._form_params_only()  # a resumed task is a fresh operator: same form as the request
        answer = super().execute_complete(context, event)
        responder = answer.get("responded_by_user")
        if responder is None or APPROVE not in (answer.get("chosen_options") or []):
            return answer  # a timeout or a reject: record_review applies it
        from retune_airflow.tasks import run_context

        ctx = run_context(self.dag_name, context, self.config)
        # a resumed task is a fresh operator: who may approve, as execute() asked
        self.assigned_users = assigned_reviewers(ctx.config.reviewers, triggering_user(context))
        approvals = list(approvals or [])
        who = str(responder.get("id") or responder.get("name"))
        refused = approval_refusal(who, triggering_user(context), approvals, self.assigned_users)
        if refused is None:
            approvals.append(who)
            if len(approvals) >= ctx.config.approvals_required:
                return {**answer, "approvals": approvals}
            audit_attempt(
                ctx,
                AuditAction.APPROVE_PARTIAL,
                who,
                f"approval {len(approvals)} of {ctx.config.approvals_required}",
            )
        else:
            audit_attempt(ctx, AuditAction.REFUSED, who, refused)
            log.warning("approval by %s refused: %s", who, refused)
        self._ask_again(context, deadline, approvals)

    def _ask_again(self, context: Any, deadline: str | None, approvals: list[str]) -> None:
        """Clear the answer and wait again, until the original deadline (not a fresh one)."""
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        upsert_hitl_detail(  # on an answered request, Airflow clears the answer and keeps the rest
            ti_id=context["task_instance"].id,
            options=self.options,
            subject=self.subject,
            body=self.body,
            defaults=self.defaults,
            multiple=self.multiple,
            params=self.serialized_params,
            assigned_users=self.assigned_users,
        )
        end = datetime.fromisoformat(deadline) if deadline else datetime.now(UTC) + timedelta(days=1)
        remaining = max(end - datetime.now(UTC), timedelta(seconds=1))
        raise TaskAwaitingInput(
            method_name="execute_complete",
            kwargs={"deadline": end.isoformat(), "approvals": approvals},
            timeout=remaining,
        )

    def _form_params_only(self) -> None:
        """The review form holds the reason only; the DAG's run Params are merged into a task's
        params at run time and do not belong in it."""
        self.params = ParamsDict({"reason": self.params.get_param("reason")})


def answer_lost_to_a_retry(ctx: Any) -> dict[str, Any] | None:
    """The answer Airflow accepted for this run's review but no try processed, as a resume event,
    or None.

    Under load Airflow's scheduler can read the paused try's late "success" after the answer has
    re-queued the task, fail that try and retry it (review_tail). The retry is a new task
    instance with a new, unanswered request, and a task cannot read the failed try's answer from
    Airflow (its supervisor does not serve that request), so the api-server records every answer
    it accepts in our audit (middleware) and the retry takes it from there.
    """
    with _store(ctx) as repo:
        row = repo.unprocessed_answer(ctx.model_key, ctx.run_id)
    if row is None:
        return None
    who = row.actor.removeprefix(AIRFLOW_ACTOR)
    log.warning("processing %s's answer, which Airflow accepted for a failed try of this review", who)
    return {
        "chosen_options": [ANSWER_OPTION[row.action]],
        "params_input": {"reason": row.reason or ""},
        "responded_at": row.at.replace(tzinfo=row.at.tzinfo or UTC),
        "responded_by_user": {"id": who, "name": who},
    }


def triggering_user(context: dict[str, Any]) -> str | None:
    """Who triggered the run (None for a scheduled run)."""
    return getattr(context.get("dag_run"), "triggering_user_name", None) or None


def assigned_reviewers(reviewers: tuple[str, ...], triggered_by: str | None) -> list[HITLUser] | None:
    """The review task's ``assigned_users``: the configured reviewers (``role:NAME`` expanded to
    the simple auth manager's users of that role), without the user who triggered the run.
    None when no reviewers are configured (Airflow then lets any user with access answer)."""
    if not reviewers:
        return None
    users: list[str] = []
    for entry in reviewers:
        for user in role_members(entry[5:]) if entry.startswith("role:") else [entry]:
            if user not in users:
                users.append(user)
    allowed = [u for u in users if u != triggered_by]
    if not allowed:
        raise AirflowFailException(
            f"no reviewer may approve this run: the configured reviewers ({', '.join(reviewers)}) are "
            f"{', '.join(users) or 'nobody'}, and {triggered_by} triggered it (four-eyes). Add reviewers "
            "to the model key's config, or decide with `retune approve` / `retune reject`."
        )
    return [HITLUser(id=u, name=u) for u in allowed]


def role_members(role: str) -> list[str]:
    """Users of ``role`` in ``[core] simple_auth_manager_users`` (``name:role`` pairs)."""
    from airflow.providers.common.compat.sdk import conf

    users = conf.get("core", "simple_auth_manager_users", fallback="")
    pairs = [p.strip().split(":") for p in users.split(",")]
    return [p[0] for p in pairs if len(p) >= 2 and p[1].lower() == role.lower()]


def approval_refusal(
    who: str, triggered_by: str | None, approvals: list[str], assigned: list[HITLUser] | None
) -> str | None:
    """Why ``who`` may not approve (None: the approval counts)."""
    if triggered_by is not None and who == triggered_by:
        return f"four-eyes: {who} triggered this run and cannot approve it"
    if who in approvals:
        return f"{who} already approved this run; a second approval must come from someone else"
    if assigned is not None and who not in {u["id"] for u in assigned}:
        return f"{who} is not a reviewer of this model key"
    return None


def recorded_approvals(ctx: Any) -> list[str]:
    """The Airflow users whose approvals this run's proposal already received (audited as
    ``approve_partial`` by ``airflow:<user>``)."""
    with _store(ctx) as repo:
        actors = repo.partial_approvals(ctx.model_key, ctx.run_id)
    return [actor.removeprefix(AIRFLOW_ACTOR) for actor in actors]


def audit_attempt(ctx: Any, action: str, who: str, reason: str) -> None:
    """An audit row in our store for a review step that changes nothing."""
    with _store(ctx) as repo:
        actor = f"{AIRFLOW_ACTOR}{who}"
        repo.record_attempt(ctx.model_key, ctx.run_id, action=action, actor=actor, reason=reason)


@contextmanager
def _store(ctx: Any) -> Iterator[Any]:
    """The run's Retune store, inside a task (the ``retune_db`` Connection when there is one)."""
    from pipelines.store.repository import Repository
    from retune_airflow.connection import use_retune_connection

    use_retune_connection()
    repo = Repository(ctx.settings.db_url)
    try:
        yield repo
    finally:
        repo.close()


def review_body(
    dag_name: str,
    context: dict[str, Any],
    config: str | None = None,
    assigned: list[HITLUser] | None = None,
) -> str:
    """Markdown: the gate's checks with their numbers, the proposed change and the report."""
    from pipelines.reporting.numbers import for_people
    from pipelines.runfolder import GateRecord, SearchRecord
    from retune_airflow.tasks import run_context

    ctx = run_context(dag_name, context, config)
    params = context["params"]
    gate = ctx.folder.read(GateRecord)
    search = ctx.folder.read(SearchRecord)
    rows = "\n".join(
        f"| {c['name']} | {for_people(c['value'])} | {for_people(c['threshold'])} | "
        f"{'pass' if c['passed'] else 'FAIL'} |"
        for c in gate.checks
    )
    params_text = ", ".join(f"{k}={for_people(v)}" for k, v in sorted(search.best_params.items()))
    reviewers = ", ".join(u["name"] for u in assigned) if assigned else "any Airflow user who may answer"
    triggered = triggering_user(context)
    who = f"May approve: {reviewers}; {ctx.config.approvals_required} distinct approval(s) needed" + (
        f"; not {triggered}, who triggered the run (four-eyes)" if triggered else ""
    )
    return (
        f"**{ctx.model_key}**, run `{ctx.run_id}`: best {search.objective} "
        f"{for_people(search.best_value)} over {search.n_trials} trials.\n\n"
        f"| check | value | threshold | result |\n|---|---|---|---|\n{rows}\n\n"
        f"Proposed params: {params_text}\n\n{who}.\n\n"
        f"Report: [/retune/reports/{ctx.run_id}/](/retune/reports/{ctx.run_id}/) "
        f"(file `{ctx.report_dir / 'report.html'}`)\n\n"
        f"Approve to make it the production config; Reject (or no answer within "
        f"{params['review_timeout_minutes']} minutes) keeps the current one. "
        f"CLI: `retune approve {ctx.run_id}` / `retune reject {ctx.run_id} --reason TEXT`."
    )


def record_review(dag_name: str, config: str | None = None, **context: Any) -> dict[str, Any]:
    """Apply the reviewer's answer (or the timeout) to the config store and production.yaml."""
    from pipelines.store.repository import Repository
    from retune_airflow.connection import use_retune_connection
    from retune_airflow.tasks import run_context

    use_retune_connection()
    answer = pull_sibling(context["ti"], REVIEW_TASK) or {}
    ctx = run_context(dag_name, context, config)
    responder = answer.get("responded_by_user")
    chosen = answer.get("chosen_options") or []
    reason = (answer.get("params_input") or {}).get("reason") or ""
    repo = Repository(ctx.settings.db_url)
    try:
        return _apply_answer(ctx, repo, responder, chosen, reason, answer.get("approvals"))
    except (ValueError, LookupError) as exc:  # decided differently elsewhere (CLI) first: keep that
        log.warning("review answer not applied: %s", exc)
        return {"changed": False, "note": str(exc)}
    finally:
        repo.close()


def _apply_answer(
    ctx: Any,
    repo: Any,
    responder: dict | None,
    chosen: list[str],
    reason: str,
    approvals: list[str] | None = None,
) -> dict[str, Any]:
    """The answer as a store decision: no responder means Airflow applied the default on timeout."""
    from pipelines.promotion.service import review

    if responder is None:
        approve, actor = False, f"{AIRFLOW_ACTOR}timeout"
        reason = f"no answer within {ctx.params.review_timeout_minutes} minutes"
    else:
        approvers = approvals or [str(responder.get("name") or responder.get("id"))]
        approve, actor = APPROVE in chosen, AIRFLOW_ACTOR + "+".join(approvers)
        reason = reason or ("approved" if approve else "rejected")
    version = review(
        ctx.settings,
        repo,
        ctx.model_key,
        ctx.run_id,
        approve=approve,
        timed_out=responder is None,
        actor=actor,
        reason=reason,
    )
    changed = version.state == ConfigState.ACTIVE
    return {"config_version": version.version, "state": version.state, "changed": changed}


def publish_if_changed(**context: Any) -> dict[str, Any]:
    """Succeed (and so emit the production-config Asset event) only when the active version changed."""
    ti = context["ti"]
    promoted = (pull_sibling(ti, "promote") or {}).get("decision") == "promoted"
    approved = (pull_sibling(ti, "record_review") or {}).get("changed", False)
    if not (promoted or approved):
        raise AirflowSkipException("the active config did not change")
    return {"changed": True}


def pull_sibling(ti: Any, task_id: str) -> Any:
    """The XCom of ``task_id`` in the caller's task group; in a fleet run's mapped group, the one
    of the same model key (map index) — unqualified, Airflow would return every key's."""
    group = ti.task_id.rpartition(".")[0]
    if not group:
        return ti.xcom_pull(task_ids=task_id)
    return ti.xcom_pull(task_ids=f"{group}.{task_id}", map_indexes=ti.map_index)

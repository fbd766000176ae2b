"""The promotion review in Airflow: a human-in-the-loop approval, and recording its answer.

The approval task only asks when the gate passed under policy ``review``; otherwise it is
skipped. Its only default is Reject, so when nobody answers before the timeout Airflow
resumes it with Reject and no responder — recorded as a timeout, never as an approval.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowSkipException

log = logging.getLogger(__name__)

APPROVE, REJECT = "Approve", "Reject"
REVIEW_TASK = "review"


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
        outcome = pull_sibling(context["ti"], "promote") or {}
        if outcome.get("decision") != "awaiting approval":
            raise AirflowSkipException(f"nothing to review: {outcome.get('decision', 'no proposal')}")
        self.response_timeout = timedelta(minutes=int(context["params"]["review_timeout_minutes"]))
        self.body = review_body(self.dag_name, context, self.config)
        self._form_params_only()
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        self._form_params_only()  # a resumed task is a fresh operator: same form as the request
        return super().execute_complete(context, event)

    def _form_params_only(self) -> None:
        """The review form holds the reason only; the DAG's run Params are merged into a task's
        params at run time and do not belong in it."""
        self.params = ParamsDict({"reason": self.params.get_param("reason")})


def review_body(dag_name: str, context: dict[str, Any], config: str | None = None) -> str:
    """Markdown: the gate's checks with their numbers, the proposed change and the report."""
    from pipelines.artifacts import load_json
    from retune_airflow.tasks import run_context

    ctx = run_context(dag_name, context, config)
    params = context["params"]
    gate = load_json(ctx.run_dir / "gate.json")
    search = load_json(ctx.run_dir / "search.json")
    rows = "\n".join(
        f"| {c['name']} | {c['value']} | {c['threshold']} | {'pass' if c['passed'] else 'FAIL'} |"
        for c in gate["checks"]
    )
    params_text = ", ".join(f"{k}={v}" for k, v in sorted(search["best_params"].items()))
    return (
        f"**{ctx.model_key}**, run `{ctx.run_id}`: best {search['objective']} "
        f"{search['best_value']:.3f} over {search['n_trials']} trials.\n\n"
        f"| check | value | threshold | result |\n|---|---|---|---|\n{rows}\n\n"
        f"Proposed params: {params_text}\n\n"
        f"Report: [/retune/reports/{ctx.run_id}](/retune/reports/{ctx.run_id}) "
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
        return _apply_answer(ctx, repo, responder, chosen, reason)
    except (ValueError, LookupError) as exc:  # decided differently elsewhere (CLI) first: keep that
        log.warning("review answer not applied: %s", exc)
        return {"changed": False, "note": str(exc)}
    finally:
        repo.close()


def _apply_answer(
    ctx: Any, repo: Any, responder: dict | None, chosen: list[str], reason: str
) -> dict[str, Any]:
    """The answer as a store decision: no responder means Airflow applied the default on timeout."""
    from pipelines.promotion.service import review

    if responder is None:
        approve, actor = False, "airflow:timeout"
        reason = f"no answer within {ctx.params.review_timeout_minutes} minutes"
    else:
        approve, actor = APPROVE in chosen, f"airflow:{responder.get('name') or responder.get('id')}"
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
    return {"config_version": version.version, "state": version.state, "changed": version.state == "active"}


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

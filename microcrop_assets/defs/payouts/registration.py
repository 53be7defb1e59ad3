"""Policies on the payout receiver: what the receiver's admin registers for each policy of the active
plots, its sum insured and its beneficiary (the farmer's address), before any report for it is taken.

A policy's sum insured is the total of its active plots' (a policy usually covers one plot); all its
plots must name one farmer. Only policies the receiver does not hold with exactly these terms are
sent; the receiver keeps what each policy has been paid and refuses a sum insured below it.
Run by `microcrop chain register-policies` with RECEIVER_ADMIN_PRIVATE_KEY, never by a Dagster run.
"""

from dataclasses import dataclass, field

from microcrop_assets.resources.chain import PolicyTerms, ReceiverAdmin
from microcrop_assets.resources.timescaledb import TimescaleDBResource

_ACTIVE_PLOTS_SQL = """
SELECT policy_id, plot_id, farmer_address, sum_insured_micro_usdc FROM plots WHERE active ORDER BY policy_id, plot_id
"""


@dataclass
class RegistrationSummary:
    registered: list[str] = field(default_factory=list)  # policy ids sent and confirmed
    unchanged: int = 0  # already registered with these terms
    refused: dict[str, str] = field(default_factory=dict)  # policy id -> why not registered


def active_policy_terms(db: TimescaleDBResource) -> tuple[list[PolicyTerms], dict[str, str]]:
    """The terms of every active plot's policy, and the policies that have none (why, by policy id)."""
    plots = db.read_frame(_ACTIVE_PLOTS_SQL)
    terms, refused = [], {}
    for policy_id, group in plots.groupby("policy_id", sort=True):
        farmers = sorted(set(group["farmer_address"].str.lower()))
        if len(farmers) > 1:
            refused[policy_id] = f"its active plots {', '.join(group['plot_id'])} name different farmers {farmers}"
            continue
        try:
            terms.append(PolicyTerms(policy_id, int(group["sum_insured_micro_usdc"].sum()), farmers[0]))
        except ValueError as error:  # a policy id over the contract's 64 bytes, an unusable address
            refused[policy_id] = f"plots {', '.join(group['plot_id'])}: {error}"
    return terms, refused


def register_policies(db: TimescaleDBResource, admin: ReceiverAdmin) -> RegistrationSummary:
    """Register every active plot's policy whose terms the receiver does not hold yet."""
    terms, refused = active_policy_terms(db)
    summary = RegistrationSummary(refused=refused)
    changed = []
    for policy in terms:
        if admin.policy(policy.policy_id).matches(policy):
            summary.unchanged += 1
        else:
            changed.append(policy)
    for policy_id, failure in admin.register_policies(changed).items():
        if failure is None:
            summary.registered.append(policy_id)
        else:
            summary.refused[policy_id] = failure
    return summary

"""Which ad accounts a snapshot covers: the active ones, narrowed by the destination's allow-list.

Apart from the snapshot (and its Parquet machinery), so the preflight job and the definitions that
import it do not load pyarrow.
"""

from __future__ import annotations

from audit_assets.platforms.base import AccountsNotFound, AdAccount


def _statuses(accounts: list[AdAccount]) -> str:
    """``1000000003 CLOSED, 1000000004 (no status)``, at most five, then how many more."""
    shown = [f"{a.id} {a.status or '(no status)'}" for a in accounts[:5]]
    more = f" and {len(accounts) - 5} more" if len(accounts) > 5 else ""
    return ", ".join(shown) + more


def choose_accounts(
    discovered: list[AdAccount], allow_list: frozenset[str] | None, who: str
) -> tuple[list[AdAccount], tuple[str, ...]]:
    """The accounts a snapshot covers (active, and allow-listed if there is a list), and the allow-listed
    ids not among them. Raise AccountsNotFound, saying which filter removed every account, when none is
    left: an empty discovery is a misconfiguration to fix, never an empty snapshot to record.
    """
    if not discovered:
        raise AccountsNotFound(
            f"{who}: these credentials see no ad account at all; give the user or app behind them access "
            "to the ad accounts to snapshot"
        )
    active = [a for a in discovered if a.active]
    if not active:
        raise AccountsNotFound(
            f"{who}: these credentials see {len(discovered)} ad account(s), none of them active "
            f"({_statuses(discovered)}); only active accounts are snapshotted"
        )
    if allow_list is None:
        return active, ()
    chosen = [a for a in active if a.id in allow_list]
    not_found = tuple(sorted(allow_list - {a.id for a in chosen}))
    if not chosen:
        inactive = [a for a in discovered if a.id in allow_list and not a.active]
        why = f"; inactive: {_statuses(inactive)}" if inactive else ""
        raise AccountsNotFound(
            f"{who}: none of ad_account_ids {sorted(allow_list)} is an active account these credentials can "
            f"see ({len(active)} active account(s) are visible{why}); check the ids and the token's access"
        )
    return chosen, not_found

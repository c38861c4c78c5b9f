"""Example projections of your own (see projections.custom). Try one:

journey replay --projection projections.examples:PricingInterest --once
journey view pricing_interest
"""

from __future__ import annotations

from typing import Any

from projections.custom import Projection, TouchpointState


class PricingInterest(Projection):
    """How often each customer looked at pricing, and when first and last."""

    name = "pricing_interest"

    def evolve(self, state: dict[str, Any], touchpoint: TouchpointState) -> None:
        if touchpoint["attributes"].get("page") != "pricing":
            return
        at = touchpoint["occurred_at"]
        state["views"] = state.get("views", 0) + 1
        state["first"] = min(state.get("first", at), at)
        state["last"] = max(state.get("last", at), at)


class ChannelMix(Projection):
    """Touchpoints per channel for each customer, and the channel they used first."""

    name = "channel_mix"

    def evolve(self, state: dict[str, Any], touchpoint: TouchpointState) -> None:
        channel, at = touchpoint["channel"], touchpoint["occurred_at"]
        counts = state.setdefault("channels", {})
        counts[channel] = counts.get(channel, 0) + 1
        if at < state.get("first_at", at + 1):
            state["first_at"], state["first_channel"] = at, channel

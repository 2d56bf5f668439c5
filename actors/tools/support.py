"""The example support agent's tools, over a small in-memory shop."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from actors.engine.tools import ToolRegistry, function_tool


class Order(BaseModel):
    order_id: str
    status: Literal["processing", "shipped", "delivered", "cancelled"]
    items: list[str]
    tracking_number: str | None = None


class Shipment(BaseModel):
    tracking_number: str
    carrier: str
    status: Literal["in_transit", "out_for_delivery", "delivered"]
    eta_days: int


ORDERS = {
    "1001": Order(order_id="1001", status="shipped", items=["kettle"], tracking_number="TRK-1001"),
    "1002": Order(order_id="1002", status="processing", items=["mug", "tea"]),
}
SHIPMENTS = {
    "TRK-1001": Shipment(
        tracking_number="TRK-1001", carrier="ParcelCo", status="in_transit", eta_days=2
    )
}


@function_tool
def query_order(order_id: str) -> Order:
    """Looks an order up by its id: status, items and tracking number."""
    if order_id not in ORDERS:
        raise LookupError(f"no order {order_id}")
    return ORDERS[order_id]


@function_tool
def query_logistics(tracking_number: str) -> Shipment:
    """Tells where a shipment is, by the tracking number of its order."""
    if tracking_number not in SHIPMENTS:
        raise LookupError(f"no shipment {tracking_number}")
    return SHIPMENTS[tracking_number]


@function_tool
def cancel_order(order_id: str, reason: str = "") -> dict[str, str]:
    """Cancels an order that has not shipped yet. The support agent asks a person to
    approve every call (see agents/support.json)."""
    order = ORDERS.get(order_id)
    if order is None:
        raise LookupError(f"no order {order_id}")
    if order.status != "processing":
        raise ValueError(f"order {order_id} is {order.status}; only unshipped orders cancel")
    return {"order_id": order_id, "status": "cancelled", "reason": reason}


def register(registry: ToolRegistry) -> None:
    registry.add(query_order)
    registry.add(query_logistics)
    registry.add(cancel_order)

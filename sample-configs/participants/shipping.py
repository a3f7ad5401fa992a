"""Sample shipping service: create a shipment, cancel it; also sends the confirmation."""

from ledger import serve


def create(command, records):
    records[command["order_id"]] = {"address": command["address"], "state": "created"}
    return {"shipment_id": f"shp-{command['order_id']}", "payment_id": command["payment_id"]}


def cancel(command, records):
    record = records.get(command["order_id"])
    if record is None:
        return {"cancelled": False, "note": "no shipment"}
    record["state"] = "cancelled"
    return {"cancelled": True}


def confirm(command, records):
    return {"sent_to": command["customer_id"], "shipment_id": command["shipment_id"]}


serve("shipping", {"create": create, "cancel": cancel, "confirm": confirm})

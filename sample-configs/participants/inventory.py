"""Sample inventory service: reserve items for an order, release them again."""

from ledger import serve


def reserve(command, records):
    records[command["order_id"]] = {"items": command["items"], "state": "reserved"}
    return {"reservation_id": f"res-{command['order_id']}", "items": len(command["items"])}


def release(command, records):
    record = records.get(command["order_id"])
    if record is None:
        return {"released": False, "note": "nothing reserved"}
    record["state"] = "released"
    return {"released": True}


serve("inventory", {"reserve": reserve, "release": release})

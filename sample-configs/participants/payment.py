"""Sample payment service: charge a customer, refund the charge."""

from ledger import serve


def charge(command, records):
    records[command["order_id"]] = {"amount": command["amount"], "state": "charged"}
    return {"payment_id": f"pay-{command['order_id']}", "amount": command["amount"]}


def refund(command, records):
    record = records.get(command["order_id"])
    if record is None:
        return {"refunded": False, "note": "nothing charged"}
    record["state"] = "refunded"
    return {"refunded": True, "amount": record["amount"]}


serve("payment", {"charge": charge, "refund": refund})

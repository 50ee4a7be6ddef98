"""Checkout: the shipping digest is behind a gate the API calls probably launched."""

from statsig import statsig

SHIPPING_DIGEST_GATE = "shipping_email_digest"


def send_digest(user, cart):
    if statsig.check_gate(user, SHIPPING_DIGEST_GATE):
        return cart.digest()
    return None


def gift_offer(user, variant):
    # The gate's name is built at run time: bulkops warns rather than guessing.
    return statsig.check_gate(user, f"recs_gift_{variant}")

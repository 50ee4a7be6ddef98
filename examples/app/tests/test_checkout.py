from statsig import statsig


def test_digest_off():
    statsig.override_gate("shipping_email_digest", False)

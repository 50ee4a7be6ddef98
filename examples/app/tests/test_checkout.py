from statsig import statsig


def test_digest_off():
    statsig.override_gate("wishlist_email_digest", False)

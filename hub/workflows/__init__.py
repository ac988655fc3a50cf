"""Partnership workflows on top of routing: the MARAC flag lifecycle and its follow-ups.

``register``: what the hub remembers about each flag (status, review date, referrals);
``referral``: SafeLives referral criteria, checked before a flag is shared;
``marac``: the sweep (reviews due, expiries, overdue acknowledgements, repeat referrals) and
the status report a MARAC coordinator reads.
"""

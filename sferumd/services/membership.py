"""The membership state machine. Everything that decides a membership transition is here.

States: none (never in the room), invite, join, leave, ban, knock (asked to join by an
invite link that needs approval, Matrix-style). Actions come from the ops of the same names;
``knock`` is made by joining through such a link, ``accept`` and ``refuse`` by the
``accept_knock`` and ``refuse_knock`` ops (services.invites). ``TRANSITIONS`` is the whole
table; anything not in it is refused with the reason from ``REFUSALS`` (or a generic one
naming the state).
"""

from __future__ import annotations

from protocol.errors import ErrorCode, ProtocolError

NONE, INVITE, JOIN, LEAVE, BAN = "none", "invite", "join", "leave", "ban"
KNOCK = "knock"

# (action, target's current membership) -> new membership
TRANSITIONS: dict[tuple[str, str], str] = {
    ("invite", NONE): INVITE,
    ("invite", LEAVE): INVITE,
    ("join", INVITE): JOIN,
    ("join", NONE): JOIN,  # public rooms or an invite link only: checked by the caller
    ("join", LEAVE): JOIN,  # public rooms or an invite link only
    ("leave", INVITE): LEAVE,  # declining an invite
    ("leave", JOIN): LEAVE,
    ("kick", INVITE): LEAVE,  # withdrawing an invite
    ("kick", JOIN): LEAVE,
    ("ban", NONE): BAN,
    ("ban", INVITE): BAN,
    ("ban", JOIN): BAN,
    ("ban", LEAVE): BAN,
    ("unban", BAN): LEAVE,
    # Knocking: asking to join through a link that needs an admin's approval.
    ("knock", NONE): KNOCK,
    ("knock", LEAVE): KNOCK,  # again after leaving, or after a refusal
    ("accept", KNOCK): JOIN,  # an admin lets the user in
    ("refuse", KNOCK): LEAVE,  # an admin turns the request down
    ("leave", KNOCK): LEAVE,  # the user withdraws the request
    ("kick", KNOCK): LEAVE,  # like refuse
    ("ban", KNOCK): BAN,
    ("invite", KNOCK): INVITE,  # an invite answers the request too
    ("join", KNOCK): JOIN,  # public rooms or an invite link without approval only
}

REFUSALS: dict[tuple[str, str], tuple[ErrorCode, str]] = {
    ("invite", INVITE): (ErrorCode.MEMBERSHIP, "the user is already invited"),
    ("invite", JOIN): (ErrorCode.MEMBERSHIP, "the user is already a member"),
    ("invite", BAN): (ErrorCode.BANNED, "the user is banned from this room"),
    ("join", BAN): (ErrorCode.BANNED, "you are banned from this room"),
    ("leave", NONE): (ErrorCode.NOT_MEMBER, "you are not in this room"),
    ("leave", LEAVE): (ErrorCode.NOT_MEMBER, "you are not in this room"),
    ("leave", BAN): (ErrorCode.NOT_MEMBER, "you are not in this room"),
    ("kick", NONE): (ErrorCode.MEMBERSHIP, "the user is not in this room"),
    ("kick", LEAVE): (ErrorCode.MEMBERSHIP, "the user is not in this room"),
    ("kick", BAN): (ErrorCode.MEMBERSHIP, "the user is banned; unban instead"),
    ("ban", BAN): (ErrorCode.MEMBERSHIP, "the user is already banned"),
    ("knock", KNOCK): (ErrorCode.MEMBERSHIP, "you have asked to join already"),
    ("knock", INVITE): (ErrorCode.MEMBERSHIP, "you are invited: join instead"),
    ("knock", JOIN): (ErrorCode.MEMBERSHIP, "you are already a member"),
    ("knock", BAN): (ErrorCode.BANNED, "you are banned from this room"),
    **{
        (action, state): (ErrorCode.MEMBERSHIP, "the user has not asked to join")
        for action in ("accept", "refuse")
        for state in (NONE, INVITE, JOIN, LEAVE, BAN)
    },
}


def transition(action: str, current: str) -> str:
    new = TRANSITIONS.get((action, current))
    if new is not None:
        return new
    code, message = REFUSALS.get(
        (action, current),
        (ErrorCode.MEMBERSHIP, f"{action} is not possible from membership {current}"),
    )
    raise ProtocolError(code, message)

"""The content rules of rich messages, pure: reaction keys, poll questions and options, vote
choices, edit texts (protocol.rich) and the replies and mentions of a send
(services.messages.message_refs). Hypothesis feeds them hostile input: whatever comes in,
the answer is the accepted value, with every documented property, or a coded refusal."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ErrorCode, Limits, ProtocolError, rich
from protocol import frames as f
from protocol.validate import EVENT_ID, USER_ID, parse
from sferumd.services.messages import MessageRefs, message_refs

LIMITS = Limits()
SMALL = Limits(
    max_reaction_key_chars=3,
    max_poll_options=3,
    max_poll_option_chars=4,
    max_poll_question_chars=5,
    max_mentions=2,
    max_body_chars=6,
)
R, E = "!room", "$1-abc"
BAD_CATEGORIES = {"Cc", "Cs", "Co", "Cn", "Zl", "Zp"}


def refused(call: Any, *args: Any) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        call(*args)
    assert info.value.message
    return info.value.code


def visible(text: str, spaces: bool) -> bool:
    """Independently of protocol.rich: nothing hidden in the text (see its module doc)."""
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in BAD_CATEGORIES or (cat == "Zs" and not spaces):
            return False
        if cat == "Cf" and ch != "\u200d" and not 0xE0020 <= ord(ch) <= 0xE007F:
            return False
    first = text[0]
    return unicodedata.category(first) not in ("Mn", "Mc", "Me") and first not in (
        "\u200d",
        *(chr(c) for c in range(0xE0020, 0xE0080)),
    )


# -- reaction keys --------------------------------------------------------------------------

GOOD_KEYS = [
    "👍",
    "❤️",  # with a variation selector
    "👍🏽",  # with a skin tone
    "👨‍👩‍👧‍👦",  # a family: 7 code points joined by ZWJ
    "🏳️‍🌈",
    "🇷🇺",  # a flag: two regional indicators
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland: tag chars
    "+1",
    "ok",
    "да",
    "1️⃣",  # a keycap: digit, VS16, enclosing mark
]
BAD_KEYS = {
    "": ErrorCode.INVALID_FIELD,
    " ": ErrorCode.INVALID_FIELD,
    "a b": ErrorCode.INVALID_FIELD,
    "👍 ": ErrorCode.INVALID_FIELD,
    "\u202e👍": ErrorCode.INVALID_FIELD,  # a right-to-left override
    "\u200b": ErrorCode.INVALID_FIELD,  # a zero-width space
    "\u200d": ErrorCode.INVALID_FIELD,  # a lone joiner
    "\u200d👍": ErrorCode.INVALID_FIELD,
    "\ufe0f": ErrorCode.INVALID_FIELD,  # a lone variation selector
    "\u0301a": ErrorCode.INVALID_FIELD,  # starts with a combining accent
    "\U000e0067": ErrorCode.INVALID_FIELD,  # a lone tag character
    "a\x00": ErrorCode.INVALID_FIELD,
    "\n": ErrorCode.INVALID_FIELD,
    "\ud83d": ErrorCode.INVALID_FIELD,  # half a surrogate pair
    "\ue000": ErrorCode.INVALID_FIELD,  # private use
    "\u2028": ErrorCode.INVALID_FIELD,  # line separator
    "x" * 17: ErrorCode.TOO_LARGE,
    "👍" * 17: ErrorCode.TOO_LARGE,
}


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_emoji_and_short_words_are_reaction_keys(key: str) -> None:
    assert rich.reaction_key("key", key, LIMITS) == unicodedata.normalize("NFC", key)


@pytest.mark.parametrize("key", sorted(BAD_KEYS))
def test_hidden_blank_or_long_keys_are_refused(key: str) -> None:
    assert refused(rich.reaction_key, "key", key, LIMITS) is BAD_KEYS[key]


@pytest.mark.parametrize("value", [None, 5, True, ["👍"], {"k": "👍"}, b"\xf0\x9f\x91\x8d"])
def test_a_key_must_be_a_string(value: Any) -> None:
    assert refused(rich.reaction_key, "key", value, LIMITS) is ErrorCode.INVALID_FIELD


def test_keys_are_compared_in_nfc() -> None:
    assert rich.reaction_key("key", "e\u0301", LIMITS) == "\u00e9"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=20), st.sampled_from([LIMITS, SMALL]))
def test_any_text_is_a_visible_short_key_or_refused(text: str, limits: Limits) -> None:
    try:
        key = rich.reaction_key("key", text, limits)
    except ProtocolError as err:
        assert err.code in (ErrorCode.INVALID_FIELD, ErrorCode.TOO_LARGE)
        if err.code is ErrorCode.TOO_LARGE:
            assert len(text) > limits.max_reaction_key_chars
        return
    assert 0 < len(text) <= limits.max_reaction_key_chars
    assert key == unicodedata.normalize("NFC", text)
    assert visible(key, spaces=False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["👍", "\u200d", "\ufe0f", "🏽", "\U000e0067", "a", "\u0301", " "]),
        min_size=1,
        max_size=8,
    ).map("".join)
)
def test_joined_emoji_pieces_in_any_order(text: str) -> None:
    try:
        key = rich.reaction_key("key", text, LIMITS)
    except ProtocolError as err:
        assert err.code is ErrorCode.INVALID_FIELD
        assert not visible(unicodedata.normalize("NFC", text), spaces=False)
        return
    assert visible(key, spaces=False)


# -- polls ----------------------------------------------------------------------------------


def test_poll_question_is_trimmed_and_bounded() -> None:
    assert rich.poll_question("question", "  Когда контрольная?  ", LIMITS) == (
        "Когда контрольная?"
    )
    assert refused(rich.poll_question, "question", "   ", LIMITS) is ErrorCode.INVALID_FIELD
    assert refused(rich.poll_question, "question", "x" * 301, LIMITS) is ErrorCode.TOO_LARGE
    assert refused(rich.poll_question, "question", "a\nb", LIMITS) is ErrorCode.INVALID_FIELD


@pytest.mark.parametrize(
    ("options", "code"),
    [
        (["да"], ErrorCode.INVALID_FIELD),
        ([], ErrorCode.INVALID_FIELD),
        (["да", "да"], ErrorCode.INVALID_FIELD),
        (["да", " да "], ErrorCode.INVALID_FIELD),  # the same once trimmed
        (["да", ""], ErrorCode.INVALID_FIELD),
        (["да", 5], ErrorCode.INVALID_FIELD),
        (["да", None], ErrorCode.INVALID_FIELD),
        (["да", "\u202eнет"], ErrorCode.INVALID_FIELD),
        (["да", "н" * 101], ErrorCode.TOO_LARGE),
        ([str(i) for i in range(13)], ErrorCode.TOO_LARGE),
        ([str(i) for i in range(100_000)], ErrorCode.TOO_LARGE),
        ("да,нет", ErrorCode.INVALID_FIELD),
        ({"0": "да", "1": "нет"}, ErrorCode.INVALID_FIELD),
    ],
)
def test_bad_poll_options(options: Any, code: ErrorCode) -> None:
    assert refused(rich.poll_options, "options", options, LIMITS) is code


def test_poll_options_are_trimmed() -> None:
    assert rich.poll_options("options", [" да", "нет ", "🤷"], LIMITS) == ["да", "нет", "🤷"]
    twelve = [f"вариант {i}" for i in range(12)]
    assert rich.poll_options("options", twelve, LIMITS) == twelve


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(max_size=6) | st.integers() | st.none(), max_size=15)
    | st.text(max_size=5)
    | st.integers(),
    st.sampled_from([LIMITS, SMALL]),
)
def test_any_option_list_is_a_valid_poll_or_refused(value: Any, limits: Limits) -> None:
    try:
        options = rich.poll_options("options", value, limits)
    except ProtocolError as err:
        assert err.code in (ErrorCode.INVALID_FIELD, ErrorCode.TOO_LARGE)
        return
    assert 2 <= len(options) <= limits.max_poll_options
    assert len(set(options)) == len(options)
    for text in options:
        assert text == text.strip() and 0 < len(text) <= limits.max_poll_option_chars
        assert visible(text, spaces=True)


@pytest.mark.parametrize(
    ("choices", "code"),
    [
        ([], ErrorCode.INVALID_FIELD),
        ([-1], ErrorCode.INVALID_FIELD),
        ([12], ErrorCode.INVALID_FIELD),
        ([0, 0], ErrorCode.INVALID_FIELD),
        ([True], ErrorCode.INVALID_FIELD),
        ([0.0], ErrorCode.INVALID_FIELD),
        (["0"], ErrorCode.INVALID_FIELD),
        (list(range(13)), ErrorCode.TOO_LARGE),
        (list(range(10**5)), ErrorCode.TOO_LARGE),
        (0, ErrorCode.INVALID_FIELD),
    ],
)
def test_bad_vote_choices(choices: Any, code: ErrorCode) -> None:
    assert refused(rich.vote_choices, "choices", choices, LIMITS) is code


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-3, 15) | st.booleans() | st.text(max_size=2), max_size=16),
    st.sampled_from([LIMITS, SMALL]),
)
def test_any_choice_list_is_a_sorted_set_of_options_or_refused(
    value: list[Any], limits: Limits
) -> None:
    try:
        choices = rich.vote_choices("choices", value, limits)
    except ProtocolError as err:
        assert err.code in (ErrorCode.INVALID_FIELD, ErrorCode.TOO_LARGE)
        return
    assert choices == sorted(set(value)) and len(choices) == len(value) >= 1
    assert all(type(c) is int and 0 <= c < limits.max_poll_options for c in choices)


def test_edit_body() -> None:
    assert rich.edit_body("body", "  новый текст ", LIMITS) == "  новый текст "
    assert refused(rich.edit_body, "body", " \n\t", LIMITS) is ErrorCode.INVALID_FIELD
    assert refused(rich.edit_body, "body", "б" * 16_001, LIMITS) is ErrorCode.TOO_LARGE
    assert refused(rich.edit_body, "body", None, LIMITS) is ErrorCode.INVALID_FIELD


# -- through validate.parse: the request id is kept, the dataclass gets the clean value -------


def test_parse_answers_rich_refusals_by_id() -> None:
    frame = {"id": 7, "op": "react", "room_id": R, "event_id": E, "key": "\u202e"}
    with pytest.raises(ProtocolError) as info:
        parse(frame, LIMITS)
    assert (info.value.code, info.value.request_id) == (ErrorCode.INVALID_FIELD, 7)
    poll = {"id": "p", "op": "poll", "room_id": R, "question": " Q ", "options": [" a", "b "]}
    assert parse(poll, LIMITS).request == f.CreatePoll(R, "Q", ["a", "b"])
    vote = {"id": 1, "op": "vote", "room_id": R, "event_id": E, "choices": [3, 1]}
    assert parse(vote, LIMITS).request == f.Vote(R, E, [1, 3])


# -- replies and mentions in a send's content -------------------------------------------------


def test_plain_content_has_no_refs() -> None:
    assert message_refs({"body": "hi"}, LIMITS) is None
    assert message_refs({}, LIMITS) is None


def test_refs_are_read() -> None:
    refs = message_refs({"body": "hi", "reply_to": E, "mentions": ["@a", "@b"]}, LIMITS)
    assert refs == MessageRefs(E, ("@a", "@b"))
    assert message_refs({"mentions": []}, LIMITS) == MessageRefs(None, ())


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ({"reply_to": "1-abc"}, ErrorCode.INVALID_FIELD),
        ({"reply_to": "$"}, ErrorCode.INVALID_FIELD),
        ({"reply_to": "$a b"}, ErrorCode.INVALID_FIELD),
        ({"reply_to": "$a\n"}, ErrorCode.INVALID_FIELD),
        ({"reply_to": "$" + "a" * 200}, ErrorCode.INVALID_FIELD),
        ({"reply_to": None}, ErrorCode.INVALID_FIELD),
        ({"reply_to": ["$a"]}, ErrorCode.INVALID_FIELD),
        ({"reply_to": 5}, ErrorCode.INVALID_FIELD),
        ({"mentions": "@a"}, ErrorCode.INVALID_FIELD),
        ({"mentions": ["a"]}, ErrorCode.INVALID_FIELD),
        ({"mentions": ["@a", "@a"]}, ErrorCode.INVALID_FIELD),
        ({"mentions": ["@a", None]}, ErrorCode.INVALID_FIELD),
        ({"mentions": {"@a": True}}, ErrorCode.INVALID_FIELD),
        ({"mentions": [f"@u{i}" for i in range(51)]}, ErrorCode.TOO_LARGE),
        ({"edited": {"event_id": E, "ts": 1}}, ErrorCode.INVALID_FIELD),
        ({"forwarded_from": {"room_id": R}}, ErrorCode.INVALID_FIELD),
        ({"poll": {"question": "q", "options": ["a", "b"]}}, ErrorCode.INVALID_FIELD),
    ],
)
def test_bad_refs(content: dict[str, Any], code: ErrorCode) -> None:
    assert refused(message_refs, {"body": "x", **content}, LIMITS) is code


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["body", "reply_to", "mentions", "edited", "x"]),
        st.none()
        | st.integers()
        | st.text(max_size=10)
        | st.text(alphabet="$@aZ09_- ", max_size=12)
        | st.lists(st.text(alphabet="$@aZ09_-", max_size=6) | st.integers(), max_size=4),
        max_size=4,
    ),
    st.sampled_from([LIMITS, SMALL]),
)
def test_any_content_gives_well_formed_refs_or_a_refusal(
    content: dict[str, Any], limits: Limits
) -> None:
    try:
        refs = message_refs(content, limits)
    except ProtocolError as err:
        assert err.code in (ErrorCode.INVALID_FIELD, ErrorCode.TOO_LARGE)
        return
    assert "edited" not in content
    if refs is None:
        assert "reply_to" not in content and "mentions" not in content
        return
    if refs.reply_to is not None:
        assert EVENT_ID.fullmatch(refs.reply_to)
    assert len(refs.mentions) <= limits.max_mentions
    assert len(set(refs.mentions)) == len(refs.mentions)
    assert all(USER_ID.fullmatch(u) for u in refs.mentions)

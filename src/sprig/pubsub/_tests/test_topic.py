from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sprig.pubsub.topic import InvalidTopic, Topic, TopicFilter


@pytest.mark.parametrize(("filt", "topic", "expected"), [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/+", "a/b", True),
    ("a/+", "a/b/c", False),
    ("a/+", "a/", True),            # empty level
    ("+/+", "/x", True),
    ("+", "/x", False),
    ("a/#", "a", True),             # parent level
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("#", "a/b", True),
    ("#", "$SYS/x", False),         # $ topics are not matched by leading wildcards
    ("+/x", "$aws/x", False),
    ("$aws/#", "$aws/things/t/shadow", True),
    ("$aws/+/t", "$aws/things/t", True),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
])
def test_matches(filt: str, topic: str, expected: bool) -> None:
    assert TopicFilter(filt).matches(topic) is expected
    assert TopicFilter(filt).matches(Topic(topic)) is expected


@pytest.mark.parametrize("bad", ["a/#/b", "a#", "a/b#", "a+/b", "a/+b", "", "a\x00b"])
def test_bad_filters_name_topic_and_rule(bad: str) -> None:
    with pytest.raises(InvalidTopic) as ei:
        TopicFilter(bad)
    text = str(ei.value)
    assert "topicFilter" in text and repr(bad) in text


@pytest.mark.parametrize("bad", ["a/+", "a/#", "#", "", "x\x00"])
def test_bad_topics(bad: str) -> None:
    with pytest.raises(InvalidTopic) as ei:
        Topic(bad)
    assert "topic" in str(ei.value)


def test_length_limit_in_utf8_bytes() -> None:
    Topic("é" * (65535 // 2))
    with pytest.raises(InvalidTopic, match="65535"):
        Topic("é" * 32768)      # 65536 bytes
    with pytest.raises(InvalidTopic, match="65535"):
        TopicFilter("a" * 65536)


def test_parse_reports_given_path() -> None:
    with pytest.raises(InvalidTopic, match=r"^pubsubTopics\[0\]\.topic: "):
        TopicFilter.parse("a/#/b", path="pubsubTopics[0].topic")


level = st.text(alphabet=st.sampled_from("ab$/é"), max_size=3).map(lambda s: s.replace("/", ""))
topics = st.lists(level, min_size=1, max_size=5).map("/".join).filter(lambda s: s != "")


@given(topics)
def test_every_topic_matches_itself_and_hash(t: str) -> None:
    assert TopicFilter(t).matches(t)
    assert TopicFilter("#").matches(t) is (not t.startswith("$"))


@given(topics, st.data())
def test_plus_replacing_any_level_still_matches(t: str, data: st.DataObject) -> None:
    levels = t.split("/")
    i = data.draw(st.integers(0, len(levels) - 1))
    filt = "/".join([*levels[:i], "+", *levels[i + 1:]])
    assert TopicFilter(filt).matches(t) is not (i == 0 and t.startswith("$"))
    # a prefix followed by '#' matches too
    pre = "/".join([*levels[:i + 1], "#"])
    assert TopicFilter(pre).matches(t)


@given(topics, topics)
def test_filter_without_wildcards_is_equality(a: str, b: str) -> None:
    assert TopicFilter(a).matches(b) is (a == b)

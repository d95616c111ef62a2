import json

from dify_lambda import wire


def test_envelope_puts_type_and_action_inside_data() -> None:
    env = wire.build_envelope("invoke_llm", {"provider": "p"}, user_id="u1", session_id="s1")
    assert "type" not in env and "action" not in env
    assert env["data"] == {"user_id": "u1", "type": "model", "action": "invoke_llm", "provider": "p"}
    assert env["event"] == "request" and env["session_id"] == "s1"


def test_event_lines_are_compact_and_delimited() -> None:
    line = wire.end_line("s1")
    assert line == b'{"event":"session","session_id":"s1","data":{"type":"end","data":{}}}\n\n'
    assert json.loads(line)["data"]["type"] == "end"


def test_every_dispatch_path_maps_back_to_its_action() -> None:
    for action, spec in wire.MODEL_ACTIONS.items():
        assert wire.ACTIONS_BY_DISPATCH_PATH[spec.dispatch_path].action == action
    assert len(wire.MODEL_ACTIONS) == 16


def test_identity_tags_and_provider_lists_round_trip() -> None:
    tags = wire.identity_tags(
        plugin_id="acme/kit",
        unique_identifier="acme/kit:1.0.0@" + "a" * 64,
        checksum="a" * 64,
        providers=["p1", "p2"],
    )
    assert tags[wire.TAG_MANAGED] == "true"
    assert tags[wire.TAG_PLUGIN_ID] == "acme/kit"
    assert wire.TAG_AUTH not in tags  # the caller decides: literal (deployer) or template reference (SAM)
    # AWS tag values may not contain commas; the list travels space separated and splits back.
    assert "," not in tags[wire.TAG_PROVIDERS]
    assert wire.split_providers(tags[wire.TAG_PROVIDERS]) == ["p1", "p2"]
    assert wire.split_providers("p1, p2") == ["p1", "p2"]
    assert wire.split_providers("") == []

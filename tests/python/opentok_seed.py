"""The Python OpenTok SDK (PyPI `opentok`) pointed at Camerata, only the URL changed.

`create`: runs the SDK's documented create-session examples, checks each session through the
OpenVidu REST API, mints tokens (JWT and T1, every role) and prints them as JSON for the Node
suite to join with. `calls SESSION CONNECTION`: signals, stream and archive lists, force mute,
force disconnect, and the errors the SDK raises.
"""

import json
import os
import sys
import time

import requests
from opentok import (
    ArchiveModes,
    Client,
    MediaModes,
    OpenTokException,
    Roles,
)
from opentok.exceptions import RequestError

URL = os.environ["CAMERATA_URL"]
KEY = os.environ["OPENTOK_KEY"]
SECRET = os.environ["OPENTOK_SECRET"]
OV_SECRET = os.environ["OPENVIDU_SECRET"]

opentok = Client(KEY, SECRET, api_url=URL)


def openvidu_session(session_id):
    r = requests.get(
        f"{URL}/openvidu/api/sessions/{session_id}",
        auth=("OPENVIDUAPP", OV_SECRET),
        timeout=10,
    )
    assert r.status_code == 200, (session_id, r.status_code, r.text)
    return r.json()


def expect(exc, f, *args, **kwargs):
    try:
        f(*args, **kwargs)
    except exc as e:
        return str(e)
    raise AssertionError(f"{f.__name__} did not raise {exc.__name__}")


def create():
    examples = [
        ({}, "RELAYED", "MANUAL"),
        ({"media_mode": MediaModes.routed}, "ROUTED", "MANUAL"),
        ({"location": "12.34.56.78"}, "RELAYED", "MANUAL"),
        ({"media_mode": MediaModes.routed, "archive_mode": ArchiveModes.always}, "ROUTED", "ALWAYS"),
        (
            {
                "media_mode": MediaModes.routed,
                "archive_mode": ArchiveModes.always,
                "archive_name": "my_archive",
                "archive_resolution": "1920x1080",
            },
            "ROUTED",
            "ALWAYS",
        ),
        ({"media_mode": MediaModes.routed, "e2ee": True}, "ROUTED", "MANUAL"),
    ]
    sessions = []
    for options, media, recording in examples:
        session = opentok.create_session(**options)
        ov = openvidu_session(session.session_id)
        assert ov["mediaMode"] == media, (options, ov["mediaMode"])
        assert ov["recordingMode"] == recording, (options, ov["recordingMode"])
        sessions.append(session.session_id)
    named = openvidu_session(sessions[4])["defaultRecordingProperties"]
    assert named["name"] == "my:archive", named
    assert named["resolution"] == "1920x1080", named

    # The SDK's own checks, and a wrong secret reaching the server.
    expect(OpenTokException, opentok.create_session, location="nowhere")
    expect(
        OpenTokException,
        opentok.create_session,
        media_mode=MediaModes.relayed,
        archive_mode=ArchiveModes.always,
    )
    # The SDK wraps the 403 it reads (an AuthError) in a RequestError.
    bad = Client(KEY, "not-the-secret-of-this-project-at-all-00", api_url=URL)
    assert "invalid credentials" in expect(RequestError, bad.create_session)

    routed = sessions[1]
    session = opentok.create_session(media_mode=MediaModes.routed)
    tokens = {
        "jwt_default": session.generate_token(),
        "jwt_moderator": session.generate_token(
            role=Roles.moderator,
            expire_time=int(time.time()) + 600,
            data="name=Johnny",
            initial_layout_class_list=["focus"],
        ),
        "t1_subscriber": opentok.generate_token(
            session.session_id, role=Roles.subscriber, use_jwt=False
        ),
        "t1_publisheronly": opentok.generate_token(
            session.session_id, role=Roles.publisher_only, data="a b", use_jwt=False
        ),
    }
    print(json.dumps({"sessions": sessions, "routed": routed, "session": session.session_id, "tokens": tokens}))


def calls(session_id, connection_id):
    opentok.signal(session_id, {"type": "py", "data": "from python"})
    opentok.signal(session_id, {"type": "py", "data": "to one"}, connection_id)
    streams = opentok.list_streams(session_id)
    assert streams.count == 0 and list(streams.items) == [], streams
    archives = opentok.list_archives(session_id=session_id)
    assert archives.count == 0, archives
    opentok.mute_all(session_id, [])
    opentok.disable_force_mute(session_id)
    expect(OpenTokException, opentok.get_archive, "no-such-archive")
    opentok.force_disconnect(session_id, connection_id)
    expect(OpenTokException, opentok.force_disconnect, session_id, connection_id)
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    if sys.argv[1] == "create":
        create()
    else:
        calls(sys.argv[2], sys.argv[3])

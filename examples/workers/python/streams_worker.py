"""python3 streams_worker.py [group] [consumer]: reads every call's audio from a gateway in Streams mode
(REDIS_TRANSPORT=streams; docs/redis-contract.md, "Streams mode"), in a consumer group, and prints one line per
frame and per call end. Workers of one group share the calls; one restarted under the same consumer name goes on
where it stopped. Env: REDIS_URL, REDIS_PREFIX, WORKER_GROUP, WORKER_CONSUMER, EVENTS_FROM ($: calls that start
from now on, the default; 0: every call the events stream still holds). Needs redis-py (pip install redis)."""
import json
import os
import socket
import sys
import time

import redis

group = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WORKER_GROUP", "asr")
consumer = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("WORKER_CONSUMER", socket.gethostname())
events = f"{os.environ.get('REDIS_PREFIX', 'rtaa:')}calls".encode()
# Bytes in, bytes out: decode_responses=True would decode the PCM as text.
r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
calls = {}  # audio stream key -> (the call.start event, its entry id on the events stream)


def say(*words):
    print(*words, flush=True)


def create_group(key, start_id):
    """Creates a consumer group on a stream; False when it exists already (BUSYGROUP), and then it keeps its place."""
    try:
        return r.xgroup_create(key, group, start_id, mkstream=True)
    except redis.ResponseError as err:
        if str(err).startswith("BUSYGROUP"):
            return False
        raise


def read_pending(key):
    """Reads one stream's entries this consumer was given earlier and never acknowledged (it died, or was killed)."""
    after = b"0"
    while True:
        [[_, entries]] = r.xreadgroup(group, consumer, {key: after}, count=100)
        if not entries:
            return
        for entry_id, fields in entries:
            handle(key, entry_id, fields, True)
        after = entries[-1][0]


def handle(key, entry_id, fields, pending):
    if key == events:
        return handle_event(entry_id, json.loads(fields[b"event"]), pending)
    start, start_id = calls[key]
    call = f"{start['tenant_id'] or '-'} {start['interaction_id']}"
    if b"end" in fields:
        say("end", call, fields[b"end"].decode(), int(fields[b"frames"]), int(fields[b"frames_lost"]))
        del calls[key]
        # The call is done: its last entry and its call.start are acknowledged together.
        r.pipeline().xack(key, group, entry_id).xack(events, group, start_id).execute()
        return
    # fields[b"pcm"] is raw PCM s16le mono at fields[b"sample_rate"]: hand it to the recogniser here. (An entry
    # trimmed away while pending comes back without fields.)
    if b"pcm" in fields:
        say("frame", call, int(fields[b"seq"]), len(fields[b"pcm"]))
    r.xack(key, group, entry_id)


def handle_event(entry_id, event, pending):
    call = f"{event['tenant_id'] or '-'} {event['interaction_id']}"
    if event["type"] != "call.start" or event["audio_stream"] is None:
        say("event", event["type"], call)
        r.xack(events, group, entry_id)
        return
    key = event["audio_stream"].encode()
    # A call.start read long after its call ended (EVENTS_FROM=0, or a worker down for long) may have outlived its
    # audio, deleted REDIS_STREAM_TTL_S after the call: MKSTREAM would make an empty stream that never ends.
    if not r.exists(key) and time.time() * 1000 - event["ts"] > 60_000:
        say("gone", call)
        r.xack(events, group, entry_id)
        return
    # The consumer that creates the call's group, from its first frame, takes the call. One that finds the group made
    # has it already (its own call.start, read again after a restart) or has a repeat of the event (events repeat after
    # a Redis failure): two readers in one group would split the call's frames, so a repeat is skipped.
    if not create_group(key, "0") and not pending:
        say("repeat", call)
        r.xack(events, group, entry_id)
        return
    # The call.start stays pending until the call's end has been handled: a restart finds the call again there.
    say("start", call, key.decode())
    calls[key] = (event, entry_id)
    read_pending(key)


create_group(events, os.environ.get("EVENTS_FROM", "$"))
read_pending(events)  # calls this consumer had started: reopened, with their unacknowledged frames
say("ready", group, consumer)
while True:
    # One blocking read for the events and the audio of every open call; '>' is what no consumer has been given.
    streams = {events: ">", **{key: ">" for key in calls}}
    for key, entries in r.xreadgroup(group, consumer, streams, count=100, block=5000):
        for entry_id, fields in entries:
            handle(key, entry_id, fields, False)

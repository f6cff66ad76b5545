"""python3 cluster_worker.py [group] [consumer]: reads every call's audio from a gateway on a Redis Cluster in Streams
mode (REDIS_CLUSTER_NODES set and REDIS_TRANSPORT=streams; docs/redis-contract.md, "Redis Cluster"), in a consumer
group, and prints one line per frame and per call end. A call's stream lives on the shard of its slot, the events
stream on another, so each call is read by a thread of its own. Env: REDIS_CLUSTER_NODES (host:port,… of some
masters), REDIS_PREFIX, WORKER_GROUP, WORKER_CONSUMER, EVENTS_FROM ($ or 0, as in streams_worker.py).

Streams rather than sharded pub/sub: redis-py has SSUBSCRIBE from version 5.0 only, and Debian 12 ships 4.3.4."""
import json
import os
import socket
import sys
import threading
import time

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError, RedisClusterException

group = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WORKER_GROUP", "asr")
consumer = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("WORKER_CONSUMER", socket.gethostname())
events = f"{os.environ.get('REDIS_PREFIX', 'rtaa:')}calls"
seeds = [node.rsplit(":", 1) for node in os.environ.get("REDIS_CLUSTER_NODES", "127.0.0.1:7000").split(",")]
# Bytes in, bytes out (no decode_responses: the PCM is binary). For a password or TLS: password=…, ssl=True.
r = RedisCluster(startup_nodes=[ClusterNode(host, int(port)) for host, port in seeds])
printing = threading.Lock()
following = set()  # the audio streams a thread of ours reads


def say(*words):
    with printing:
        print(*words, flush=True)


def create_group(key, start_id):
    """Creates a consumer group on a stream; False when it exists already (BUSYGROUP), and then it keeps its place."""
    try:
        return r.xgroup_create(key, group, start_id, mkstream=True)
    except redis.ResponseError as err:
        if str(err).startswith("BUSYGROUP"):
            return False
        raise


def read(key, handle):
    """Hands `handle` one stream's entries, and whether it had been given them before, until it returns True. One
    stream per command: on a cluster, streams in other slots cannot be read together."""
    while True:
        try:
            # First the entries this consumer was given earlier and never acknowledged (it died, was killed, or lost
            # a reply with its connection)...
            after = b"0"
            while entries := r.xreadgroup(group, consumer, {key: after}, count=100)[0][1]:
                for entry_id, fields in entries:
                    if handle(entry_id, fields, True):
                        return
                after = entries[-1][0]
            # ...then those no consumer of the group has been given.
            while True:
                for _, entries in r.xreadgroup(group, consumer, {key: ">"}, count=100, block=5000):
                    for entry_id, fields in entries:
                        if handle(entry_id, fields, False):
                            return
        except (redis.ConnectionError, redis.TimeoutError, ClusterError, RedisClusterException) as err:
            # A shard failing over (a few seconds): read again, from the pending entries.
            print(f"{key}: {err!r}; reading again in 1 s", file=sys.stderr, flush=True)
            time.sleep(1)


def follow(start, start_id):
    """Reads one call's audio stream, from its first frame, until its end entry."""
    key = start["audio_stream"]
    call = f"{start['tenant_id'] or '-'} {start['interaction_id']}"

    def handle(entry_id, fields, _pending):
        if b"end" in fields:
            say("end", call, fields[b"end"].decode(), int(fields[b"frames"]), int(fields[b"frames_lost"]))
            # Two shards, two XACKs: the call.start first, so a crash in between leaves only the end entry pending,
            # in a stream that expires anyway, and never a call reopened that waits for an end already read.
            r.xack(events, group, start_id)
            r.xack(key, group, entry_id)
            return True
        # fields[b"pcm"] is raw PCM s16le mono at fields[b"sample_rate"]: hand it to the recogniser here.
        if b"pcm" in fields:
            say("frame", call, int(fields[b"seq"]), len(fields[b"pcm"]))
        r.xack(key, group, entry_id)
        return False

    read(key, handle)
    following.discard(key)


def handle_event(entry_id, fields, pending):
    event = json.loads(fields[b"event"])
    call = f"{event['tenant_id'] or '-'} {event['interaction_id']}"
    if event["type"] != "call.start" or event["audio_stream"] is None:
        say("event", event["type"], call)
        r.xack(events, group, entry_id)
        return False
    # A call.start read long after its call ended may have outlived its audio (see streams_worker.py).
    if not r.exists(event["audio_stream"]) and time.time() * 1000 - event["ts"] > 60_000:
        say("gone", call)
        r.xack(events, group, entry_id)
        return False
    # The consumer that creates the call's group (from its first frame, however late) takes the call; a repeat of the
    # event is skipped (see streams_worker.py).
    if not create_group(event["audio_stream"], "0") and not pending:
        say("repeat", call)
        r.xack(events, group, entry_id)
        return False
    # The call.start stays pending until the call's end has been handled: a restart finds the call again there (and
    # so does this loop when it reads its pending entries again after a failover, while the call's thread reads on).
    if event["audio_stream"] not in following:
        following.add(event["audio_stream"])
        say("start", call, event["audio_stream"])
        threading.Thread(target=follow, args=(event, entry_id), daemon=True).start()
    return False


create_group(events, os.environ.get("EVENTS_FROM", "$"))
say("ready", group, consumer)
read(events, handle_event)
